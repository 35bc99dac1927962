"""The training core: class weights, metrics, determinism, early stopping, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.methods.probe import EmbeddingClassifier, tensor_dataset, train_probe
from workbench.training import (
    TrainConfig,
    class_weights,
    classification_metrics,
    evaluate,
    fit,
    load_checkpoint,
    save_checkpoint,
)


def _blobs(n: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 8)).astype(np.float32) + np.eye(3, 8, dtype=np.float32)[y] * 3
    return x, y


def test_class_weights_are_inverse_frequency():
    weights = class_weights([0, 0, 0, 1], 3)
    assert torch.allclose(weights, torch.tensor([4 / 6, 4 / 2, 0.0]))


def test_classification_metrics_known_values():
    m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1])
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert m["recall"] == pytest.approx(0.75)


def test_fit_learns_and_is_deterministic():
    x, y = _blobs()
    config = TrainConfig(epochs=5, lr=1e-2, batch_size=16, seed=3, progress=False)
    scores = []
    for _ in range(2):
        torch.manual_seed(0)
        model = EmbeddingClassifier(8, 3)
        history = fit(model, tensor_dataset(x, y), tensor_dataset(x, y), config)
        scores.append((evaluate(model, tensor_dataset(x, y)), [e["train_loss"] for e in history.epochs]))
    assert scores[0] == scores[1]
    assert scores[0][0]["accuracy"] > 0.9
    assert scores[0][1][-1] < scores[0][1][0]


def test_early_stopping_restores_the_best_epoch():
    x, y = _blobs(120)
    config = TrainConfig(epochs=40, lr=5e-2, batch_size=16, patience=2, seed=0, progress=False)
    model, history = train_probe(x, y, 3, config)
    assert len(history.epochs) < 40
    best = history.epochs[history.best_epoch]["dev_macro_f1"]
    assert best == max(e["dev_macro_f1"] for e in history.epochs) == history.best_score


def test_checkpoint_round_trip(tmp_path):
    model = EmbeddingClassifier(8, 3, hidden_dim=4)
    save_checkpoint(model, tmp_path / "ckpt", {"input_dim": 8, "num_classes": 3, "hidden_dim": 4})
    assert (tmp_path / "ckpt" / "model.safetensors").is_file() and (tmp_path / "ckpt" / "config.json").is_file()
    clone = load_checkpoint(EmbeddingClassifier(8, 3, hidden_dim=4), tmp_path / "ckpt")
    x = torch.randn(5, 8)
    model.eval()
    assert torch.equal(model(x), clone(x))


class _TinyFineTune(torch.nn.Module):
    """Encoder + linear head on [CLS], fed by dict batches as a fine-tuning run would be."""

    def __init__(self, encoder_model, num_classes: int):
        super().__init__()
        self.encoder = encoder_model
        self.head = torch.nn.Linear(encoder_model.config.hidden_size, num_classes)

    def forward(self, input_ids, attention_mask):
        return self.head(self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0])


def test_fine_tuning_with_dict_batches_updates_the_encoder_and_lowers_the_loss(tmp_path):
    from transformers import AutoModel

    from workbench.encoders import load_encoder

    encoder = load_encoder("tiny")
    texts = ["great food and lovely staff", "awful, cold and rude"] * 8
    labels = torch.tensor([1, 0] * 8)
    batch = encoder.tokenize(texts)
    items = [
        {"input_ids": batch["input_ids"][i], "attention_mask": batch["attention_mask"][i], "labels": labels[i]}
        for i in range(16)
    ]
    model = _TinyFineTune(encoder.model, 2)
    before = encoder.model.embeddings.word_embeddings.weight.detach().clone()
    history = fit(model, items, None, TrainConfig(epochs=8, lr=5e-3, batch_size=8, progress=False))
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]
    assert not torch.equal(before, encoder.model.embeddings.word_embeddings.weight)
    save_checkpoint(encoder.model, tmp_path / "enc")
    assert (tmp_path / "enc" / "model.safetensors").is_file()
    reloaded = AutoModel.from_pretrained(tmp_path / "enc").eval()
    encoder.model.eval()
    with torch.no_grad():
        a = encoder.model(**batch).last_hidden_state
        b = reloaded(**batch).last_hidden_state
    assert torch.allclose(a, b, atol=1e-6)


def test_monitoring_the_dev_loss_keeps_the_epoch_with_the_lowest_mean_loss():
    from torch import nn

    from workbench.training import mean_loss

    x, y = _blobs(90)
    data = tensor_dataset(x, y)
    config = TrainConfig(epochs=6, lr=5e-2, batch_size=16, patience=10, seed=0, monitor="loss", progress=False)
    torch.manual_seed(0)
    model = EmbeddingClassifier(8, 3)
    history = fit(model, data, data, config)
    losses = [e["dev_loss"] for e in history.epochs]
    assert history.best_epoch == int(np.argmin(losses)) and history.best_score == -min(losses)
    # the restored weights are those of the best epoch: their dev loss is the recorded minimum
    criterion = nn.CrossEntropyLoss(weight=class_weights(y, 3))
    restored = mean_loss(model, data, lambda m, b: criterion(m(b[0]), b[1]))
    assert restored == pytest.approx(min(losses), rel=1e-5)


# --- fine-tuning: schedules, gradient accumulation, freezing, fused AdamW, batches -------------------------------


def _lr_trace(config: TrainConfig, total_steps: int) -> list[float]:
    """The learning rate before each of `total_steps` steps and after the last one, under `config`'s schedule."""
    from workbench.training import make_scheduler

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=config.lr)
    scheduler = make_scheduler(optimizer, config, total_steps)
    trace = [optimizer.param_groups[0]["lr"]]
    for _ in range(total_steps):
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        trace.append(optimizer.param_groups[0]["lr"])
    return trace


def test_schedules_give_the_known_learning_rates():
    linear = _lr_trace(TrainConfig(lr=1.0, schedule="linear", warmup_steps=2), 10)
    assert linear == pytest.approx([0.0, 0.5, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0.0])
    cosine = _lr_trace(TrainConfig(lr=2.0, schedule="cosine"), 10)
    assert cosine[0] == pytest.approx(2.0) and cosine[5] == pytest.approx(1.0) and cosine[10] == pytest.approx(0.0)
    assert cosine[2] == pytest.approx(1.0 + np.cos(np.pi * 0.2))
    warm = _lr_trace(TrainConfig(lr=1.0, warmup_ratio=0.25), 8)  # ceil(0.25 * 8) = 2 warm-up steps, then constant
    assert warm == pytest.approx([0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert _lr_trace(TrainConfig(lr=0.3), 3) == [0.3] * 4  # the default: no scheduler at all


def test_warmup_steps_follow_the_trainer_ceil_rule_and_override_the_ratio():
    from workbench.training import warmup_steps_of

    assert warmup_steps_of(TrainConfig(warmup_ratio=0.1), 15) == 2
    assert warmup_steps_of(TrainConfig(warmup_ratio=0.1, warmup_steps=0), 15) == 0


def test_fit_applies_the_schedule_over_its_planned_steps():
    x, y = _blobs(64)
    model = EmbeddingClassifier(8, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    config = TrainConfig(epochs=3, lr=0.1, batch_size=16, schedule="linear", warmup_steps=1, progress=False)
    fit(model, tensor_dataset(x, y), None, config, optimizer=optimizer, on_step=lambda s: seen.append(s))
    assert seen == list(range(1, 13))  # 3 epochs x 4 batches
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0)  # decayed to 0 at the 12th step


def _sgd_fit(x, y, batch_size: int, accum: int, steps: int):
    torch.manual_seed(0)
    model = EmbeddingClassifier(8, 3, hidden_dim=16, dropout=0.0)  # no dropout: the same function of the rows
    config = TrainConfig(
        epochs=1,
        batch_size=batch_size,
        grad_accum_steps=accum,
        max_steps=steps,
        seed=5,
        weighted_loss=False,
        max_grad_norm=None,
        progress=False,
    )
    fit(model, tensor_dataset(x, y), None, config, optimizer=torch.optim.SGD(model.parameters(), lr=1.0))
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("rows", [64, 60])  # 60: the last window of each step is 6 rows short
def test_gradient_accumulation_equals_one_step_on_a_k_times_larger_batch(rows):
    x, y = _blobs(rows)
    # SGD with lr 1: the update is the gradient itself (Adam's first step would hide a wrong scale)
    big = _sgd_fit(x, y, batch_size=rows, accum=1, steps=1)
    accumulated = _sgd_fit(x, y, batch_size=8, accum=-(-rows // 8), steps=1)
    assert torch.allclose(big, accumulated, atol=1e-6)
    torch.manual_seed(0)
    start = torch.cat([p.detach().flatten() for p in EmbeddingClassifier(8, 3, 16, dropout=0.0).parameters()])
    assert not torch.allclose(start, big)
    assert not torch.allclose(big, _sgd_fit(x, y, batch_size=8, accum=1, steps=1), atol=1e-6)  # one micro-batch


def test_gradient_accumulation_matches_over_several_steps():
    x, y = _blobs(64)
    assert torch.allclose(_sgd_fit(x, y, 32, 1, 2), _sgd_fit(x, y, 8, 4, 2), atol=1e-6)


def test_accumulation_and_a_backward_hook_do_not_mix():
    x, y = _blobs(16)
    with pytest.raises(ValueError, match="grad_accum_steps"):
        fit(
            EmbeddingClassifier(8, 3),
            tensor_dataset(x, y),
            None,
            TrainConfig(grad_accum_steps=2, progress=False),
            backward=lambda losses, params: None,
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(schedule="step"),
        dict(grad_accum_steps=0),
        dict(warmup_ratio=1.5),
        dict(adamw="apex"),
        dict(precision="fp8"),
    ],
)
def test_invalid_train_configs_are_refused(kwargs):
    with pytest.raises(ValueError, match="TrainConfig"):
        TrainConfig(**kwargs)


def test_adamw_uses_the_fused_kernel_where_torch_has_it():
    from workbench.training import make_optimizer

    params = list(EmbeddingClassifier(8, 3).parameters())
    assert make_optimizer(params, TrainConfig()).defaults["fused"] is True  # float32 on the CPU: torch >= 2.4
    foreach = make_optimizer(params, TrainConfig(adamw="foreach")).defaults
    assert foreach["foreach"] is True and not foreach["fused"]
    ints = [torch.nn.Parameter(torch.zeros(2, dtype=torch.float32)), torch.zeros(2, dtype=torch.complex64)]
    assert make_optimizer(ints, TrainConfig()).defaults["foreach"] is True  # complex: no fused kernel, foreach


def test_fused_and_foreach_adamw_agree_to_rounding():
    x, y = _blobs(64)
    results = []
    for impl in ("fused", "for-loop"):
        torch.manual_seed(0)
        model = EmbeddingClassifier(8, 3)
        fit(
            model, tensor_dataset(x, y), None, TrainConfig(epochs=2, lr=1e-2, batch_size=16, adamw=impl, progress=False)
        )
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-5)


def _tiny_classifier_items(n: int = 24):
    from workbench.methods.finetune import PadCollator, load_classifier, token_items

    model, tokenizer = load_classifier("tiny", num_classes=2, seed=0)
    texts = [
        ("great food and lovely staff " * (1 + i % 4)).strip() if i % 2 else "awful, cold and rude" for i in range(n)
    ]
    items = token_items(tokenizer, texts, [i % 2 for i in range(n)], max_length=32)
    return model, items, PadCollator(tokenizer.pad_token_id)


def _encoder_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.encoder.state_dict().items()}


def test_fine_tuning_changes_the_encoder_and_a_frozen_run_does_not():
    from workbench.methods.finetune import LengthGroupedBatchSampler

    model, items, collate = _tiny_classifier_items()
    before, head = _encoder_state(model), model.head.weight.detach().clone()
    config = TrainConfig(epochs=2, lr=1e-3, batch_size=8, schedule="linear", warmup_ratio=0.2, progress=False)
    sampler = LengthGroupedBatchSampler.for_items(items, 8, seed=0)
    history = fit(model, items, None, config, collate_fn=collate, batch_sampler=sampler)
    after = _encoder_state(model)
    assert len(history.epochs) == 2 and np.isfinite(history.epochs[-1]["train_loss"])
    assert not torch.equal(before["embeddings.word_embeddings.weight"], after["embeddings.word_embeddings.weight"])
    assert not torch.equal(
        before["encoder.layer.0.attention.self.query.weight"], after["encoder.layer.0.attention.self.query.weight"]
    )

    model, items, collate = _tiny_classifier_items()
    before, head = _encoder_state(model), model.head.weight.detach().clone()
    frozen = TrainConfig(epochs=2, lr=1e-3, batch_size=8, freeze_embeddings=True, freeze_layers=2, progress=False)
    fit(model, items, None, frozen, collate_fn=collate)
    after = _encoder_state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(head, model.head.weight)  # the head still trains


def test_freezing_the_lower_layers_leaves_the_upper_ones_trainable():
    from workbench.encoders import freeze_encoder

    model, items, collate = _tiny_classifier_items()
    before = _encoder_state(model)
    fit(
        model,
        items,
        None,
        TrainConfig(epochs=1, lr=1e-3, batch_size=8, freeze_layers=1, progress=False),
        collate_fn=collate,
    )
    after = _encoder_state(model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("encoder.layer.1.", "embeddings.")) for k in changed)
    assert not any(k.startswith("encoder.layer.0.") for k in changed)
    with pytest.raises(ValueError, match="cannot freeze 3 layers"):
        freeze_encoder(model, layers=3)
    with pytest.raises(ValueError, match="no Hugging Face encoder"):
        freeze_encoder(EmbeddingClassifier(8, 3), embeddings=True)


def test_fit_reports_each_epoch_to_the_tracker(monkeypatch):
    import workbench.tracking

    calls = []
    monkeypatch.setattr(workbench.tracking, "log_epoch", lambda metrics, step: calls.append((step, metrics)))
    x, y = _blobs(48)
    fit(
        EmbeddingClassifier(8, 3),
        tensor_dataset(x, y),
        tensor_dataset(x, y),
        TrainConfig(epochs=3, batch_size=16, patience=5, progress=False),
    )
    assert [step for step, _ in calls] == [0, 1, 2]
    assert {"train_loss", "dev_macro_f1"} <= set(calls[0][1]) and "epoch" not in calls[0][1]


def test_length_grouped_batches_cover_every_item_once_with_less_padding():
    from workbench.methods.finetune import LengthGroupedBatchSampler, padding_fraction

    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 120, size=203).tolist()
    sampler = LengthGroupedBatchSampler(lengths, 16, seed=1, pool_batches=4)
    first, second = list(sampler), list(sampler)
    assert sorted(i for b in first for i in b) == list(range(203)) == sorted(i for b in second for i in b)
    assert len(first) == len(sampler) == 13 and first != second  # a new order every epoch
    assert LengthGroupedBatchSampler(lengths, 16, seed=1, pool_batches=4).batches(1) == second  # ... but seeded
    shuffled = [rng.permutation(203)[i : i + 16].tolist() for i in range(0, 203, 16)]
    assert padding_fraction(first, lengths) < padding_fraction(shuffled, lengths) / 2  # pools of 4 batches
    by_length = np.argsort(lengths, kind="stable")
    least = [by_length[i : i + 16].tolist() for i in range(0, 203, 16)]  # one pool: batches of the sorted order
    one_pool = LengthGroupedBatchSampler(lengths, 16).batches(0)
    assert padding_fraction(one_pool, lengths) == pytest.approx(padding_fraction(least, lengths))
    dropped = LengthGroupedBatchSampler(lengths, 16, seed=1, pool_batches=4, drop_last=True)
    assert all(len(b) == 16 for b in dropped) and len(list(dropped)) == len(dropped)


def test_pad_collator_pads_to_the_longest_item_and_masks_the_padding():
    from workbench.methods.finetune import PadCollator

    items = [
        {"input_ids": torch.tensor([5, 6, 7]), "labels": torch.tensor(1)},
        {"input_ids": torch.tensor([8]), "labels": 0},
    ]
    batch = PadCollator(pad_id=0)(items)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [1, 0]


def test_encoder_classifier_returns_the_loss_for_the_trainer():
    model, items, collate = _tiny_classifier_items(4)
    batch = collate(items)
    model.eval()  # no dropout: the two calls see the same logits
    out = model(**batch)
    assert out.logits.shape == (4, 2)
    assert torch.allclose(out.loss, torch.nn.functional.cross_entropy(out.logits, batch["labels"]))
    assert model(**{k: v for k, v in batch.items() if k != "labels"}).loss is None


def test_bench_train_prints_one_json_object_with_both_throughputs(monkeypatch, tmp_path, capsys):
    import json

    from workbench.cli import main

    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))  # no data: synthetic sentences
    args = ["bench", "train", "--json", "--encoder", "tiny", "--steps", "2", "--warmup", "1", "--rounds", "1"]
    assert main([*args, "--texts", "32", "--batch-size", "8", "--max-length", "32"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # stdout is one JSON object
    assert captured.err.startswith("NOTE: figures not meaningful") and result["meaningful"] is False
    assert result["ours_seq_per_s"] > 0 and result["trainer_seq_per_s"] > 0
    assert result["ratio"] == pytest.approx(result["ours_seq_per_s"] / result["trainer_seq_per_s"])
    assert result["ratio_low"] is None and result["reading"] == "one round: no interval"  # one round: no interval
    assert result["timed_rows"] == 16 and result["data"].startswith("synthetic")


def test_finetune_classifier_learns_and_scores_in_the_callers_order():
    from workbench.methods.finetune import classifier_logits, finetune_classifier

    texts = ["good great fine"] * 12 + ["bad awful terrible and far too long to be good"] * 12
    labels = [1] * 12 + [0] * 12
    config = TrainConfig(epochs=3, lr=1e-3, batch_size=6, schedule="linear", warmup_ratio=0.1, progress=False)
    model, tokenizer, history = finetune_classifier("tiny", texts, labels, texts, labels, 2, config)
    mixed = [texts[0], texts[-1], texts[1]]  # short, long, short: scored in length order, returned in this order
    logits = classifier_logits(model, tokenizer, mixed, batch_size=2)
    assert logits.shape == (3, 2) and history.best_epoch >= 0
    assert logits.argmax(1).tolist() == [1, 0, 1]
    assert np.allclose(logits[0], logits[2], atol=1e-5)


def test_auto_precision_autocasts_in_bf16_only_where_the_cpu_has_native_bf16(monkeypatch):
    import workbench.runtime as runtime
    from workbench.training import make_accelerator

    for native, expected in ((True, "bf16"), (False, "no")):
        monkeypatch.setattr(runtime, "native_bf16", lambda native=native: native)
        accelerator = make_accelerator(TrainConfig(precision="auto", device="cpu", progress=False))
        assert accelerator.mixed_precision == expected
        with accelerator.autocast():
            out = torch.ones(2, 2) @ torch.ones(2, 2)
        assert out.dtype == (torch.bfloat16 if native else torch.float32)


def test_bench_train_ratio_interval_is_the_t_interval_of_the_log_ratios_and_reads_parity_when_it_spans_one():
    from scipy import stats

    from workbench.bench.train import ratio_interval, ratio_reading

    ratios = [0.92, 1.02, 0.96, 1.01, 0.99]
    logs = np.log(ratios)
    half = stats.t.ppf(0.975, len(ratios) - 1) * logs.std(ddof=1) / np.sqrt(len(ratios))
    low, high = ratio_interval(ratios)
    assert (low, high) == pytest.approx((np.exp(logs.mean() - half), np.exp(logs.mean() + half)))
    assert ratio_reading(low, high) == "parity"
    assert ratio_reading(*ratio_interval([1.10, 1.12, 1.11])) == "ours faster"
    assert ratio_reading(*ratio_interval([0.90, 0.91, 0.92])) == "Trainer faster"
    assert ratio_reading(*ratio_interval([1.05])) == "one round: no interval"
