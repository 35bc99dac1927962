"""Comet distillation: losses against hand computations, gradient flow, student save/load, the two-stage loop and
the bench's JSON contract, on tiny models and a small AfriSenti-shaped tree (seconds)."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from workbench.distill import (
    DEFAULTS,
    PROJECTIONS,
    StudentSpec,
    StudentWithProjection,
    attention_layer_index,
    attention_mse,
    base_config,
    build_student,
    distillation_loss_fn,
    fine_tune_teacher,
    hybrid_loss,
    kd_loss,
    kd_reverse_loss,
    load_study_data,
    load_teacher,
    make_projection,
    projection_parameters,
    run_distillation,
    save_models,
    save_student,
    sweep_configs,
    teacher_targets,
)
from workbench.profiles import resolve_parameters


def _softmax(row, t):
    exps = [math.exp(v / t) for v in row]
    return [e / sum(exps) for e in exps]


def test_kd_loss_equals_hand_computation():
    student = [[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]]
    teacher = [[0.0, 1.0, 0.0], [2.0, -1.0, 0.5]]
    t = 2.0
    expected = 0.0
    for s_row, t_row in zip(student, teacher):
        p_s, p_t = _softmax(s_row, t), _softmax(t_row, t)
        expected += sum(pt * (math.log(pt) - math.log(ps)) for pt, ps in zip(p_t, p_s))  # KL(p_t || p_s)
    expected = expected / len(student) * t**2
    got = kd_loss(torch.tensor(student), torch.tensor(teacher), t)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    reverse = sum(
        sum(ps * (math.log(ps) - math.log(pt)) for pt, ps in zip(_softmax(t_row, t), _softmax(s_row, t)))
        for s_row, t_row in zip(student, teacher)
    )
    got_reverse = kd_reverse_loss(torch.tensor(student), torch.tensor(teacher), t)
    assert got_reverse.item() == pytest.approx(reverse / len(student) * t**2, rel=1e-5)
    assert got_reverse.item() != pytest.approx(got.item(), rel=1e-3)


def test_attention_mse_ignores_padding_pairs():
    projected = torch.tensor([[[0.5, 0.5], [9.0, 9.0]]])
    teacher = torch.tensor([[[0.25, 0.75], [0.0, 0.0]]])
    mask = torch.tensor([[True, False]])  # only the pair (0, 0) is real
    assert attention_mse(projected, teacher, mask).item() == pytest.approx((0.5 - 0.25) ** 2)
    full = torch.tensor([[True, True]])
    expected = ((0.5 - 0.25) ** 2 + (0.5 - 0.75) ** 2 + 9.0**2 + 9.0**2) / 4
    assert attention_mse(projected, teacher, full).item() == pytest.approx(expected)


def test_hybrid_loss_is_the_weighted_sum_of_its_terms():
    g = torch.Generator().manual_seed(0)
    s_logits, t_logits = torch.randn(3, 3, generator=g), torch.randn(3, 3, generator=g)
    s_map = torch.softmax(torch.randn(3, 4, 4, generator=g), -1)
    t_map = torch.softmax(torch.randn(3, 4, 4, generator=g), -1)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]]).bool()
    projection = make_projection("identity", 4)
    loss, parts = hybrid_loss(s_logits, t_logits, s_map, t_map, mask, projection, temperature=1.5, alpha=0.3)
    kd = kd_loss(s_logits, t_logits, 1.5).item()
    mse = attention_mse(s_map * (mask[:, :, None] & mask[:, None, :]), t_map, mask).item()
    assert parts == pytest.approx({"kd": kd, "attention": mse})
    assert loss.item() == pytest.approx(0.3 * kd + 0.7 * mse, rel=1e-6)
    kd_only, parts = hybrid_loss(s_logits, t_logits, None, None, mask, projection, temperature=1.5, alpha=1.0)
    assert set(parts) == {"kd"} and kd_only.item() == pytest.approx(kd, rel=1e-6)
    with pytest.raises(ValueError, match="attention maps"):
        hybrid_loss(s_logits, t_logits, None, None, mask, projection, alpha=0.5)


@pytest.mark.parametrize("kind", sorted(PROJECTIONS))
def test_projections_start_at_identity_and_count_parameters(kind):
    projection = make_projection(kind, 5, rank=3)
    flat = torch.rand(2, 25)
    assert torch.allclose(projection(flat), flat)
    assert sum(p.numel() for p in projection.parameters()) == projection_parameters(kind, 5, 3)


def test_faithful_projection_is_268m_parameters_at_the_papers_length():
    assert projection_parameters("faithful", 128) == 128**4 + 128**2  # the paper's (L^2)^2 weights, plus bias
    with pytest.raises(ValueError, match="unknown projection"):
        make_projection("dense", 4)


def test_attention_layer_choice():
    assert attention_layer_index(6, "final") == 5 and attention_layer_index(6, "upper_middle") == 3
    assert attention_layer_index(2, "final") == 1 and attention_layer_index(2, "upper_middle") == 0
    with pytest.raises(ValueError):
        attention_layer_index(6, "middle")


@pytest.fixture(scope="module")
def tiny_teacher():
    return load_teacher("tiny", seed=0)


def test_student_follows_spec_and_pca_initialisation(tiny_teacher):
    _, teacher = tiny_teacher
    student = build_student(teacher, StudentSpec(1, 16, 2), init="pca")
    assert type(student) is type(teacher)
    assert (student.config.num_hidden_layers, student.config.hidden_size) == (1, 16)
    assert student.config.num_attention_heads == 2 and student.config.vocab_size == teacher.config.vocab_size
    variance = student.base_model.embeddings.word_embeddings.weight.detach().var(0)
    assert variance[0] > variance[-1]  # principal components come in decreasing variance
    same_width = build_student(teacher, StudentSpec(1, 32, 2), init="auto")
    picked = teacher.base_model.encoder.layer[1].attention.self.query.weight  # linspace(0, 1, 1) -> layer 0
    copied = same_width.base_model.encoder.layer[0].attention.self.query.weight
    assert torch.equal(copied, teacher.base_model.encoder.layer[0].attention.self.query.weight)
    assert not torch.equal(copied, picked)
    with pytest.raises(ValueError, match="divisible"):
        build_student(teacher, StudentSpec(1, 10, 3))


def test_gradients_reach_student_and_projection_not_teacher(tiny_teacher):
    tokenizer, teacher = tiny_teacher
    teacher = teacher.train()
    for p in teacher.parameters():
        p.requires_grad_(True)  # even a trainable teacher must get no gradient
    texts = ["sannu da zuwa @user", "ina son wannan sosai", "ba na so ba", "mu je gida yanzu"]
    targets = teacher_targets(teacher, tokenizer, texts, max_length=8)
    config = base_config(resolve_parameters(DEFAULTS, "smoke", projection="faithful", student_layers=1))
    student = build_student(teacher, config.student)
    model = StudentWithProjection(student, make_projection("faithful", 8), 0)
    batch = targets.dataset("final", [0, 1, 2, 0]).tensors
    loss = distillation_loss_fn(config, with_ce=True)(model, batch)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert model.projection.linear.weight.grad.abs().sum() > 0
    assert student.base_model.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0
    assert student.base_model.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    teacher.eval()


def test_student_saves_and_loads_with_pretrained_api(tiny_teacher, tmp_path):
    tokenizer, teacher = tiny_teacher
    student = build_student(teacher, StudentSpec(1, 16, 2)).eval()
    save_student(StudentWithProjection(student, make_projection("identity", 8), 0), tmp_path, tokenizer)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "config.json").is_file()
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert loaded.config.hidden_size == 16 and loaded.config.num_hidden_layers == 1
    ids = tokenizer(["habari ya leo"], return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(student(**ids).logits, loaded(**ids).logits, atol=1e-6)


def test_sweep_covers_every_experiment_once():
    configs = sweep_configs(DEFAULTS["quick"])
    names = {c.name for _, c in configs}
    assert {"hybrid", "kd_only", "attention_only", "T=1", "T=4", "alpha=0.3", "alpha=0.7"} <= names
    assert {"layer=upper_middle", "projection=faithful", "projection=low_rank"} <= names
    assert "T=2" not in names and "alpha=0.5" not in names  # those are the base recipe itself
    assert {e for e, _ in configs} >= {"ablation", "temperature", "alpha", "attention_layer", "projection"}


WORDS = {0: ["mugu", "bad", "wahala"], 1: ["dey", "go", "market"], 2: ["sweet", "good", "love"]}


def _write_afrisenti(root, languages=("aaa", "bbb")):
    rng = random.Random(0)
    for lang in languages:
        for split, rows in (("train", 40), ("dev", 15), ("test", 15)):
            folder = root / "afrisenti" / lang
            folder.mkdir(parents=True, exist_ok=True)
            lines = ["tweet\tlabel"]
            for i in range(rows):
                label = i % 3
                words = rng.choices(WORDS[label], k=4) + rng.choices(sum(WORDS.values(), []), k=2)
                lines.append(f"{lang} {split} {i} {' '.join(words)}\t{['negative', 'neutral', 'positive'][label]}")
            if split == "train":
                lines.append("shared text also in test\tneutral")
            if split == "test":
                lines.append("shared text also in test\tneutral")
            (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    (root / "afrisenti" / "zzz").mkdir()
    (root / "afrisenti" / "zzz" / "train.tsv").write_text("tweet\tlabel\n")  # an empty (zero-shot) language
    (root / "afrisenti" / "zzz" / "test.tsv").write_text("tweet\tlabel\nx\tneutral\n")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    _write_afrisenti(root)
    mp = pytest.MonkeyPatch()
    mp.setenv("WORKBENCH_DATA", str(root))
    params = resolve_parameters(DEFAULTS, "smoke", languages=["aaa"], train_rows=100, dev_rows=100, test_rows=100)
    data = load_study_data(params)
    tokenizer, teacher = load_teacher("tiny")
    fine_tune_teacher(teacher, tokenizer, data, params, progress=False)
    targets = teacher_targets(teacher, tokenizer, data.corpus["text"].tolist(), int(params["max_length"]))
    yield params, data, tokenizer, teacher, targets, root
    mp.undo()


def test_study_data_keeps_evaluation_text_out_of_training(tiny_run):
    params, data, *_ = tiny_run
    assert data.languages == ["aaa"]
    assert "shared text also in test" not in set(data.corpus["text"])
    assert set(data.corpus["language"]) == {"aaa", "bbb"}  # unlabelled corpus: every language with train rows
    assert len(data.train["aaa"]) == 40 and list(data.train_index["aaa"]) == list(range(40))


def test_two_stage_distillation_is_deterministic(tiny_run):
    params, data, tokenizer, teacher, targets, _ = tiny_run
    config = base_config(params)
    first = run_distillation(config, teacher, tokenizer, data, targets, params, seed=3)
    second = run_distillation(config, teacher, tokenizer, data, targets, params, seed=3)
    assert [r["language"] for r in first.scores] == ["aaa"]
    assert 0.0 <= first.scores[0]["macro_f1"] <= 1.0
    assert first.scores == second.scores
    assert {"stage1_kd", "stage1_attention", "stage2_ce"} <= set(first.loss_terms)
    assert all(p.grad is None or not p.requires_grad for p in teacher.parameters())


def test_bench_json_has_the_contract_keys(tiny_run, tmp_path, capsys):
    from workbench.bench.distill import main, peak_memory_mib

    params, data, tokenizer, teacher, targets, _ = tiny_run
    run = run_distillation(base_config(params), teacher, tokenizer, data, targets, params)
    save_models(tmp_path / "models", teacher, tokenizer, run)
    parameters = {**{k: v for k, v in params.items()}, "seed": 0}
    (tmp_path / "results.json").write_text(json.dumps({"study": "comet", "profile": "smoke", "parameters": parameters}))
    assert main(["--from", str(tmp_path), "--json", "--rounds", "1", "--no-memory"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("teacher_params", "student_params", "teacher_seq_per_s", "student_seq_per_s", "speedup"):
        assert result[key] > 0
    assert result["student_params"] < result["teacher_params"]
    assert result["speedup"] == pytest.approx(result["student_seq_per_s"] / result["teacher_seq_per_s"])
    f1 = np.mean([v["student_macro_f1"] for v in result["per_language"].values()])
    assert result["student_macro_f1"] == pytest.approx(f1)
    assert result["retention"] == pytest.approx(result["student_macro_f1"] / result["teacher_macro_f1"])
    assert result["student_disk_mib"] < result["teacher_disk_mib"]
    assert peak_memory_mib(tmp_path / "models" / "teacher", batch_size=4, max_length=8) > 0
