"""Comet distillation: losses against hand computations, gradient flow, projections by name, students saved and
loaded with their tokenizer, the study's profiles, notes, data and run, and the bench's JSON contract, on tiny
models and a small AfriSenti-shaped tree (seconds)."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from workbench.encoders import added_symbols
from workbench.methods.comet import (
    DistillConfig,
    StudentSpec,
    StudentWithProjection,
    agnostic_loss_fn,
    agnostic_targets,
    attention_layer_index,
    attention_mse,
    build_student,
    distillation_loss_fn,
    fine_tune_teacher,
    hybrid_loss,
    kd_loss,
    kd_reverse_loss,
    load_classifier,
    load_mlm_teacher,
    load_teacher,
    mask_tokens,
    mlm_head_in_checkpoint,
    mlm_head_of,
    projection_parameters,
    run_distillation,
    save_model,
    student_mlm_head,
    teacher_targets,
)
from workbench.profiles import ParameterError
from workbench.registry import UnknownNameError, build, get, names
from workbench.studies import comet as study
from workbench.training import TrainConfig


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


def test_losses_and_projections_are_registered_by_name():
    assert get("loss", "kd") is kd_loss and get("loss", "kd_reverse") is kd_reverse_loss
    assert get("loss", "attention_mse") is attention_mse
    assert {"identity", "faithful", "low_rank"} <= set(names("projection"))
    with pytest.raises(UnknownNameError, match="unknown projection 'dense'.*identity"):
        build("projection", "dense", 4)


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
    projection = build("projection", "identity", 4)
    loss, parts = hybrid_loss(s_logits, t_logits, s_map, t_map, mask, projection, temperature=1.5, alpha=0.3)
    kd = kd_loss(s_logits, t_logits, 1.5).item()
    mse = attention_mse(s_map * (mask[:, :, None] & mask[:, None, :]), t_map, mask).item()
    assert parts == pytest.approx({"kd": kd, "attention": mse})
    assert loss.item() == pytest.approx(0.3 * kd + 0.7 * mse, rel=1e-6)
    kd_only, parts = hybrid_loss(s_logits, t_logits, None, None, mask, projection, temperature=1.5, alpha=1.0)
    assert set(parts) == {"kd"} and kd_only.item() == pytest.approx(kd, rel=1e-6)
    reverse, _ = hybrid_loss(
        s_logits, t_logits, None, None, mask, projection, temperature=1.5, alpha=1.0, kd="kd_reverse"
    )
    assert reverse.item() == pytest.approx(kd_reverse_loss(s_logits, t_logits, 1.5).item(), rel=1e-6)
    with pytest.raises(ValueError, match="attention maps"):
        hybrid_loss(s_logits, t_logits, None, None, mask, projection, alpha=0.5)


@pytest.mark.parametrize("kind", names("projection"))
def test_projections_start_at_identity_and_count_parameters(kind):
    projection = build("projection", kind, 5, 3)
    flat = torch.rand(2, 25)
    assert torch.allclose(projection(flat), flat)
    assert sum(p.numel() for p in projection.parameters()) == projection_parameters(kind, 5, 3)


def test_faithful_projection_is_268m_parameters_at_the_papers_length():
    assert projection_parameters("faithful", 128) == 128**4 + 128**2  # the paper's (L^2)^2 weights, plus bias


def test_distill_config_rejects_impossible_recipes():
    spec = StudentSpec(1, 16, 2)
    with pytest.raises(ValueError, match="alpha"):
        DistillConfig("x", spec, alpha=1.5)
    with pytest.raises(ValueError, match="temperature"):
        DistillConfig("x", spec, temperature=0.0)
    with pytest.raises(ValueError, match="stage2"):
        DistillConfig("x", spec, stage2="distill")
    with pytest.raises(ValueError, match="stage1"):
        DistillConfig("x", spec, stage1="mlm")
    assert (DistillConfig("x", spec).stage1, DistillConfig("x", spec).stage2) == ("task-specific", "ce")


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
    config = study.base_config(study.PROFILES.resolve("smoke", projection="faithful", student_layers=1))
    student = build_student(teacher, config.student)
    model = StudentWithProjection(student, build("projection", "faithful", 8), 0)
    batch = targets.dataset("final", [0, 1, 2, 0]).tensors
    loss = distillation_loss_fn(config, with_ce=True)(model, batch)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert model.projection.linear.weight.grad.abs().sum() > 0
    assert student.base_model.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0
    assert student.base_model.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    teacher.eval()


def test_student_saves_and_loads_with_its_tokenizer(tiny_teacher, tmp_path):
    tokenizer, teacher = tiny_teacher
    student = build_student(teacher, StudentSpec(1, 16, 2)).eval()
    save_model(StudentWithProjection(student, build("projection", "identity", 8), 0), tmp_path, tokenizer)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "config.json").is_file()
    loaded_tokenizer, loaded = load_classifier(tmp_path)
    assert loaded.config.hidden_size == 16 and loaded.config.num_hidden_layers == 1
    ids = tokenizer(["habari ya leo"], return_tensors="pt")
    assert loaded_tokenizer("habari ya leo")["input_ids"] == ids["input_ids"][0].tolist()
    with torch.no_grad():
        assert torch.allclose(student(**ids).logits, loaded(**ids).logits, atol=1e-6)
    bare = tmp_path / "bare"
    student.save_pretrained(bare)  # no tokenizer: a clear error, not a Hub lookup of the folder's name
    assert AutoModelForSequenceClassification.from_pretrained(bare) is not None
    with pytest.raises(FileNotFoundError, match="no tokenizer"):
        load_classifier(bare)


# ---------------------------------------------------------------------------------------------------------------
# The study: profiles, recipes, notes
# ---------------------------------------------------------------------------------------------------------------


def test_profiles_check_values_and_name_every_knob():
    quick, paper = study.PROFILES.resolve("quick"), study.PROFILES.resolve("paper")
    assert (paper["student_layers"], paper["student_hidden"], paper["student_heads"]) == (6, 256, 8)
    assert paper["temperature"] == study.PAPER["temperature"] and paper["alpha"] == study.PAPER["alpha"]
    assert quick["teacher"] == "minilm" and paper["projection"] == "faithful"
    with pytest.raises(ParameterError, match="'dense' is not allowed"):
        study.PROFILES.resolve("quick", projection="dense")
    with pytest.raises(ParameterError, match="did you mean 'temperature'"):
        study.PROFILES.resolve("quick", temprature=3)
    with pytest.raises(ParameterError, match="not allowed"):
        study.PROFILES.resolve("quick", sweeps=["width"])
    assert study.PROFILES.resolve("quick", alphas="[0.1, 0.9]")["alphas"] == [0.1, 0.9]


def test_sweep_covers_every_experiment_once():
    configs = study.sweep_configs(study.PROFILES.resolve("quick", sweeps=list(study.SWEEPS)))
    names_ = {c.name for _, c in configs}
    assert {"hybrid", "kd_only", "attention_only", "T=1", "T=4", "alpha=0.3", "alpha=0.7"} <= names_
    assert {"layer=upper_middle", "projection=faithful", "projection=low_rank", "student=1L-64H-2A"} <= names_
    by_name = {c.name: c for _, c in configs}
    assert (by_name["hybrid"].stage1, by_name["hybrid"].stage2) == ("task-specific", "ce")  # stage 2: CE only
    assert by_name["stage2=ce+kd"].stage2 == "ce+kd" and by_name["stage1=task-agnostic"].stage1 == "task-agnostic"
    label_only = by_name["label_only"]
    assert (label_only.stage1, label_only.stage2) == ("none", "ce") and label_only.student == by_name["hybrid"].student
    paper = {c.name: c for _, c in study.sweep_configs(study.PROFILES.resolve("paper"))}
    assert paper["hybrid"].stage1 == "task-agnostic" and paper["stage1=task-specific"].stage1 == "task-specific"
    repeats = study.seed_repeats(study.PROFILES.resolve("quick"))
    assert [(e, c.name, s) for e, c, s in repeats] == [
        ("ablation", "hybrid", 1),
        ("label_only", "label_only", 1),
        ("ablation", "hybrid", 2),
        ("label_only", "label_only", 2),
    ]  # with the sweep's seed 0: three seeds of each arm
    assert study.seed_repeats(study.PROFILES.resolve("quick", sweeps=["ablation"])) == []
    assert "T=2" not in names_ and "alpha=0.5" not in names_  # those are the base recipe itself
    assert [e for e, _ in configs][0] == "ablation" and configs[0][1].name == "hybrid"
    assert {e for e, _ in configs} == set(study.SWEEPS)
    quick = {e for e, _ in study.sweep_configs(study.PROFILES.resolve("quick"))}
    assert quick == set(study.QUICK_SWEEPS) and {"label_only", "stage2"} <= quick  # the arms the claims read
    only_base = study.sweep_configs(study.PROFILES.resolve("quick", sweeps=[]))
    assert [c.name for _, c in only_base] == ["hybrid"]
    temperature = study.sweep_configs(study.PROFILES.resolve("quick", sweeps=["temperature"]))
    assert [c.name for _, c in temperature] == ["hybrid", "T=1", "T=1.5", "T=3", "T=4"]


def test_train_configs_come_from_the_parameters():
    params = study.PROFILES.resolve("quick", seed=7, batch_size=16)
    configs = study.train_configs(params)
    assert (configs["teacher"].epochs, configs["teacher"].lr) == (params["teacher_epochs"], params["teacher_lr"])
    assert (configs["teacher"].schedule, configs["teacher"].warmup_ratio) == ("linear", 0.1)
    assert configs["stage2"].schedule == "constant"  # the students keep their own settings
    assert (configs["stage2"].epochs, configs["stage2"].lr) == (params["stage2_epochs"], params["stage2_lr"])
    assert {c.seed for c in configs.values()} == {7} and {c.batch_size for c in configs.values()} == {16}


def test_teacher_vs_tfidf_bar_is_judged_from_the_rows():
    rows = pd.DataFrame(
        [
            {"model": "teacher", "config": "teacher", "language": "aa", "macro_f1": 0.70},
            {"model": "teacher", "config": "teacher", "language": "bb", "macro_f1": 0.50},
            {"model": "tfidf", "config": "tfidf", "language": "aa", "macro_f1": 0.65},
            {"model": "tfidf", "config": "tfidf", "language": "bb", "macro_f1": 0.55},
            {"model": "student", "config": "hybrid", "language": "aa", "macro_f1": 0.99},
            {"model": "teacher", "kind": "efficiency", "language": None, "macro_f1": None},
        ]
    )
    bar = study.teacher_vs_tfidf(rows)
    assert bar["teacher_minus_tfidf"].round(3).to_dict() == {"aa": 0.05, "bb": -0.05}
    assert bar["teacher_at_or_above_tfidf"].to_dict() == {"aa": True, "bb": False}
    params = study.PROFILES.resolve("quick")
    missed = study.tfidf_bar_verdict(bar, params)
    assert "aa 0.700 vs 0.650, bb 0.500 vs 0.550" in missed and "NOT met on bb (by 0.050" in missed
    assert "afro-xlmr" in missed and "600 per language" in missed and "What might close it" in missed
    met = study.tfidf_bar_verdict(bar.loc[["aa"]], params)
    assert "Bar met" in met and "NOT" not in met and "Blended" not in met  # no blend rows: no blend sentence
    assert study.teacher_vs_tfidf(rows[rows.model != "tfidf"]).empty
    blend = pd.DataFrame(
        [
            {"model": study.BLEND, "config": study.BLEND, "language": "aa", "macro_f1": 0.72, "blend_weight": 0.7}
            | {"minus_tfidf_low": 0.02, "minus_tfidf_high": 0.12},
            {"model": study.BLEND, "config": study.BLEND, "language": "bb", "macro_f1": 0.54, "blend_weight": 0.7}
            | {"minus_tfidf_low": -0.04, "minus_tfidf_high": 0.02},
        ]
    )
    with_blend = study.teacher_vs_tfidf(pd.concat([rows, blend]))
    assert with_blend["blend_minus_tfidf"].round(3).to_dict() == {"aa": 0.07, "bb": -0.01}
    verdict = study.tfidf_bar_verdict(with_blend, params)
    assert "weight 0.7 on TF-IDF" in verdict and "aa 0.720, bb 0.540" in verdict
    assert "at or above the bar on 1 of 2 language(s), +0.030 over it on average" in verdict
    assert with_blend["blend_versus_tfidf"].to_dict() == {"aa": "above", "bb": "inconclusive"}
    assert "paired-bootstrap interval over the test tweets: 1 above, 1 inconclusive." in verdict


def test_notes_follow_the_parameters():
    quick = " ".join(study.notes(study.PROFILES.resolve("quick")))
    paper = " ".join(study.notes(study.PROFILES.resolve("paper")))
    smoke = " ".join(study.notes(study.PROFILES.resolve("smoke")))
    assert "not the paper's AfroXLMR-large (559M" in quick and "(paper: 6L-256H-8A, 69M" in quick
    assert "the paper's AfroXLMR-large" in paper and "not the paper's" not in paper
    assert "6L-256H-8A as in the paper" in paper
    assert "end to end, word embeddings included" in quick and "frozen" not in quick + paper
    frozen = " ".join(study.notes(study.PROFILES.resolve("quick", teacher_freeze_embeddings=True)))
    assert "word embeddings stay frozen" in frozen and "end to end" not in frozen
    assert "linear schedule after 10% warm-up" in quick and "rows `tfidf`" in quick
    assert "Stratified subsets" in quick and "All AfriSenti rows" in paper
    assert f"{128**4 + 128**2:,} parameters" in paper and "faithful projection has" not in quick
    assert "mean nothing" in smoke and "mean nothing" not in quick
    assert "hau, ibo, kin, pcm, yor" in quick and "first 3 AfriSenti languages" in smoke
    assert "Peak memory not measured" in smoke and "Peak memory not measured" not in quick
    # profile, stage-1 kind, stage 2 and the label-only seeds, from the parameters
    assert "Profile quick" in quick and "Profile paper" in paper
    assert "Stage 1 is task-specific (not the paper's kind)" in quick
    assert "Stage 1 is task-agnostic (the paper's kind): KD on the pretrained teacher's masked-LM logits" in paper
    assert "15% masked tokens" in paper and "20% masked" in " ".join(
        study.notes(study.PROFILES.resolve("paper", mask_probability=0.2))
    )
    # MiniLM ships without MLM head weights: the task-agnostic arm matches hidden states, and the notes say so
    assert "'minilm' has no masked-LM head weights" in quick and "no masked-LM head weights" not in paper
    assert "cross-entropy alone, as the paper describes" in quick and "cross-entropy alone, as the paper" in paper
    assert "seeds [0, 1, 2]" in quick and "seeds [0, 1]" in smoke
    assert "Label-only" not in " ".join(study.notes(study.PROFILES.resolve("quick", sweeps=["ablation"])))
    changed = " ".join(study.notes(study.PROFILES.resolve("quick", kd="kd_reverse", stage2="ce+kd", temperature=4)))
    assert "literal KL(p_student || p_teacher)" in changed and "plus the task-specific distillation loss" in changed
    assert "T = 4, alpha = 0.5 (paper: T = 2" in changed
    only_t = study.notes(study.PROFILES.resolve("quick", sweeps=["temperature"]))
    assert (
        "Sweeps not run: ablation, label_only, stage1, stage2, alpha, attention_layer, projection, student_size."
        in only_t
    )
    assert "Sweeps not run: temperature, alpha, attention_layer, projection." in study.notes(
        study.PROFILES.resolve("quick")
    )
    assert not any("Sweeps not run" in line for line in study.notes(study.PROFILES.resolve("smoke")))


# ---------------------------------------------------------------------------------------------------------------
# Data, two-stage loop, the whole run and the bench, on a small AfriSenti-shaped tree
# ---------------------------------------------------------------------------------------------------------------

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
    zero_shot = root / "afrisenti" / "orm"  # released with a header-only train file, like the real one
    zero_shot.mkdir()
    (zero_shot / "train.tsv").write_text("tweet\tlabel\n")
    for split in ("dev", "test"):
        (zero_shot / f"{split}.tsv").write_text("tweet\tlabel\nx\tneutral\n")


@pytest.fixture(scope="module")
def afrisenti_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    _write_afrisenti(root)
    mp = pytest.MonkeyPatch()
    mp.setenv("WORKBENCH_DATA", str(root))
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def tiny_run(afrisenti_root):
    params = study.PROFILES.resolve("smoke", languages=["aaa"], train_rows=100, dev_rows=100, test_rows=100)
    data = study.load(params)
    tokenizer, teacher = load_teacher("tiny")
    config = TrainConfig(epochs=1, lr=1e-3, batch_size=32, patience=1, progress=False)
    fine_tune_teacher(teacher, tokenizer, data.train["aaa"], data.dev["aaa"], config, int(params["max_length"]))
    targets = teacher_targets(teacher, tokenizer, data.corpus["text"].tolist(), int(params["max_length"]))
    return params, data, tokenizer, teacher, targets


def test_study_data_keeps_evaluation_text_out_of_training(tiny_run):
    params, data, *_ = tiny_run
    assert data.languages == ["aaa"]
    assert "shared text also in test" not in set(data.corpus["text"])
    assert set(data.corpus["language"]) == {"aaa", "bbb"}  # unlabelled corpus: every language with train rows
    assert len(data.train["aaa"]) == 40 and list(data.train_index["aaa"]) == list(range(40))
    assert data.train["aaa"].attrs["dropped"]["text also in evaluation set"] == 1


def test_study_data_subsets_are_stratified(afrisenti_root):
    data = study.load(study.PROFILES.resolve("smoke", languages=["aaa", "bbb"], train_rows=21, test_rows=9))
    for lang in ("aaa", "bbb"):
        assert np.bincount(data.train[lang]["label"], minlength=3).tolist() == [7, 7, 7]  # 14/13/13 rows -> 7 each
        assert len(data.test[lang]) == 9 and data.test[lang].attrs["dropped"]["subsampled away"] == 16 - 9
    again = study.load(study.PROFILES.resolve("smoke", languages=["aaa", "bbb"], train_rows=21, test_rows=9))
    assert again.train["aaa"]["text"].tolist() == data.train["aaa"]["text"].tolist()  # seeded
    with pytest.raises(ValueError, match="no AfriSenti training data for \\['orm'\\]"):
        study.load(study.PROFILES.resolve("smoke", languages=["orm"]))


def test_two_stage_distillation_is_deterministic(tiny_run):
    params, data, tokenizer, teacher, targets = tiny_run
    configs = study.train_configs(params)
    kwargs = dict(
        train=data.train,
        dev=data.dev,
        test=data.test,
        target_rows=data.train_index,
        stage1=configs["stage1"],
        stage2=configs["stage2"],
        max_length=int(params["max_length"]),
        seed=3,
    )
    config = study.base_config(params)
    first = run_distillation(config, teacher, tokenizer, targets, **kwargs)
    second = run_distillation(config, teacher, tokenizer, targets, **kwargs)
    assert [r["language"] for r in first.scores] == ["aaa"]
    assert 0.0 <= first.scores[0]["macro_f1"] <= 1.0
    assert first.scores == second.scores
    assert {"stage1_kd", "stage1_attention"} <= set(first.loss_terms) and first.stage1_signal == "sentiment-logits"
    assert "stage2_ce" not in first.loss_terms  # the default stage 2: cross-entropy only, no distillation term
    assert all(p.grad is None or not p.requires_grad for p in teacher.parameters())
    with_kd = run_distillation(replace(config, stage2="ce+kd"), teacher, tokenizer, targets, **kwargs)
    assert {"stage2_ce", "stage2_kd", "stage1_kd"} <= set(with_kd.loss_terms)
    label_only = run_distillation(replace(config, stage1="none"), teacher, tokenizer, targets, **kwargs)
    assert label_only.loss_terms == {} and label_only.stage1_signal == "none"
    assert label_only.student_params == first.student_params


def test_mask_tokens_masks_real_non_special_tokens_only():
    ids = torch.tensor([[101, 5, 6, 7, 8, 9, 10, 102, 0, 0], [101, 11, 102, 0, 0, 0, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    masked, positions = mask_tokens(ids, mask, [0, 101, 102, 103], 103, 200, probability=0.3, seed=1)
    assert positions.shape == (2, 3)  # ceil(0.3 x 10) slots
    assert positions[0].tolist().count(-1) == 1 and positions[1].tolist() == [1, -1, -1]  # round(0.3 x 6) = 2; >= 1
    for row, where in zip(range(2), positions):
        for p in where[where >= 0].tolist():
            assert ids[row, p] not in (0, 101, 102)
    untouched = torch.ones_like(ids, dtype=torch.bool)
    untouched[0, positions[0][positions[0] >= 0]] = False
    untouched[1, 1] = False
    assert torch.equal(masked[untouched], ids[untouched])  # only the chosen positions may change
    again, same = mask_tokens(ids, mask, [0, 101, 102, 103], 103, 200, probability=0.3, seed=1)
    assert torch.equal(again, masked) and torch.equal(same, positions)
    many = torch.randint(1000, 2000, (400, 40))
    masked, positions = mask_tokens(many, torch.ones_like(many), [], 3, 50, seed=0)
    chosen = positions[positions >= 0]
    rows = torch.arange(400)[:, None].expand_as(positions)[positions >= 0]
    share = (masked[rows, chosen] == 3).float().mean().item()
    assert 0.75 < share < 0.85  # BERT's 80% [MASK] (10% random, 10% kept)


def test_mlm_head_check_reads_the_checkpoint_keys():
    assert mlm_head_in_checkpoint("minilm") is False  # a sentence encoder: saved as BertModel, no cls.* weights
    assert mlm_head_in_checkpoint("tiny") is True
    assert mlm_head_in_checkpoint("some-org/not-here") is None
    model, missing = load_mlm_teacher("minilm")
    assert missing and all(k.startswith("cls.") for k in missing)  # the head would be newly initialised
    assert not any(p.requires_grad for p in model.parameters())
    _, none_missing = load_mlm_teacher("tiny")
    assert none_missing == []


def test_task_agnostic_stage_1_matches_mlm_logits_or_falls_back_to_hidden_states(tiny_teacher):
    tokenizer, teacher = tiny_teacher
    mlm_teacher, _ = load_mlm_teacher("tiny", seed=0)
    texts = ["sannu da zuwa @user", "ina son wannan sosai", "ba na so ba", "mu je gida yanzu"] * 3
    mlm = agnostic_targets(mlm_teacher, tokenizer, texts, 12, seed=0)
    assert mlm.signal == "mlm-logits" and mlm.head is mlm_head_of(mlm_teacher)
    assert mlm.hidden.shape == (12, 2, teacher.config.hidden_size) and mlm.maps["final"].shape == (12, 12, 12)
    assert (mlm.input_ids == tokenizer.mask_token_id).any()
    hidden = agnostic_targets(mlm_teacher, tokenizer, texts, 12, use_mlm=False)
    assert hidden.signal == "hidden-states" and hidden.head is None
    assert torch.equal(hidden.positions >= 0, hidden.attention_mask.bool())  # every real token
    spec = StudentSpec(1, 16, 2)
    student = build_student(teacher, spec)
    head = student_mlm_head(student)
    assert head.predictions.decoder.weight is student.get_input_embeddings().weight  # tied, as in pretraining
    model = StudentWithProjection(student, build("projection", "identity", 12), 0)
    model.stage1_head = head
    config = DistillConfig("a", spec, stage1="task-agnostic")
    loss = agnostic_loss_fn(config, mlm.head)(model, mlm.dataset("final").tensors)
    loss.backward()
    assert student.get_input_embeddings().weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in mlm_teacher.parameters())
    frame = pd.DataFrame({"text": texts, "label": [0, 1, 2] * 4})
    train = TrainConfig(epochs=1, lr=1e-3, batch_size=4, patience=1, progress=False)
    targets = teacher_targets(teacher, tokenizer, texts, 12)
    kwargs = dict(
        train={"aa": frame},
        dev={"aa": frame},
        test={"aa": frame},
        target_rows={"aa": np.arange(12)},
        stage1=train,
        stage2=train,
        max_length=12,
    )
    with_mlm = run_distillation(config, teacher, tokenizer, targets, agnostic=mlm, **kwargs)
    assert with_mlm.stage1_signal == "mlm-logits" and {"stage1_mlm_kd", "stage1_attention"} <= set(with_mlm.loss_terms)
    fallback = run_distillation(config, teacher, tokenizer, targets, agnostic=hidden, **kwargs)
    assert fallback.stage1_signal == "hidden-states" and "stage1_hidden" in fallback.loss_terms
    assert fallback.students["aa"].stage1_head is None  # only the encoder and its classifier go on to stage 2
    with pytest.raises(ValueError, match="needs `agnostic`"):
        run_distillation(config, teacher, tokenizer, targets, **kwargs)


@pytest.fixture(scope="module")
def study_run(afrisenti_root, tmp_path_factory):
    params = study.PROFILES.resolve("smoke", sweeps=["ablation"], bench_rounds=1)
    result = study.run(params, progress=False)
    report = tmp_path_factory.mktemp("report")
    result.save(report)
    return result, report


def test_run_rows_tables_and_saved_models(study_run):
    result, report = study_run
    metrics = result.metrics
    assert result.frames.languages == ["aaa", "bbb"]
    students = metrics[(metrics.model == "student") & metrics.language.notna()]
    assert set(students.config) == {"hybrid", "kd_only", "attention_only"} and len(students) == 6
    assert (metrics.model == "teacher").sum() == 2 + 1  # two languages' scores + the efficiency row
    tfidf = metrics[metrics.model == "tfidf"]  # the bar, one row per language, on the teacher's train / test rows
    assert sorted(tfidf.language) == ["aaa", "bbb"] and set(tfidf.config) == {"tfidf"}
    assert tfidf.macro_f1.between(0, 1).all() and (tfidf.seed == result.params["seed"]).all()
    bar = study.teacher_vs_tfidf(metrics)
    assert list(bar.index) == ["aaa", "bbb"]
    assert bar.loc["aaa", "tfidf_macro_f1"] == pytest.approx(tfidf.set_index("language").loc["aaa", "macro_f1"])
    assert result.headline["tfidf_macro_f1"] == pytest.approx(tfidf.macro_f1.mean())
    assert result.headline["teacher_at_or_above_tfidf"] is None  # smoke: no verdict on the bar
    assert "no verdict on the bar" in result.tfidf_verdict and result.tfidf_verdict in result.notes
    blended = metrics[metrics.model == study.BLEND]  # the teacher + TF-IDF blend, one row per language
    assert sorted(blended.language) == ["aaa", "bbb"] and blended.macro_f1.between(0, 1).all()
    assert blended.blend_weight.nunique() == 1 and blended.blend_weight.iloc[0] in study.BLEND_WEIGHTS
    assert bar["blend_macro_f1"].to_dict() == blended.set_index("language").macro_f1.to_dict()
    assert (blended.minus_tfidf_low <= blended.minus_tfidf_high).all() and bar["blend_versus_tfidf"].notna().all()
    assert set(metrics[metrics.kind == "efficiency"].model) == {"teacher", "1L-16H-2A"}
    tables = study.tables(result)
    assert {"data", "teacher", "efficiency", "ablation", "per_language", "paper", "loss_terms"} <= set(tables)
    assert "tfidf" in tables["per_language"].index and tables["teacher_vs_tfidf"].equals(bar)
    paper = tables["paper"]
    assert paper.loc["average F1 (x100; ours macro-F1)", "paper student"] == study.PAPER["student_f1"]
    assert paper.loc["parameters", "our ratio"] == pytest.approx(
        result.efficiency.loc["1L-16H-2A", "params"] / result.efficiency.loc["teacher", "params"]
    )
    hybrid = result.summary.set_index("config").loc["hybrid"]
    assert result.headline["retention"] == pytest.approx(hybrid["retention"])
    assert result.notes[: len(study.notes(result.params))] == study.notes(result.params)
    assert result.verdict in result.notes
    tokens, maps = study.attention_maps(result)
    assert maps["teacher"].shape == maps["student"].shape == (len(tokens), len(tokens))
    saved = json.loads((report / "results.json").read_text())
    assert saved["study"] == "comet" and saved["parameters"]["sweeps"] == ["ablation"]
    for name in ("teacher", "student-aaa", "student-bbb", "size-1L-16H-2A"):
        tokenizer, model = load_classifier(report / "models" / name)
        assert model.config.num_labels == 3 and tokenizer("x")["input_ids"]
    result.save(report)  # a second save replaces the models folder
    assert sorted(p.name for p in (report / "models").iterdir()) == [
        "size-1L-16H-2A",
        "student-aaa",
        "student-bbb",
        "teacher",
    ]


def test_run_rows_name_stage_1_stage_2_and_the_label_only_student(afrisenti_root, monkeypatch):
    real = study.load_mlm_teacher

    def headless(name, seed=0):  # a checkpoint without MLM head weights, like the MiniLM sentence encoder
        model, _ = real(name, seed)
        return model, ["cls.predictions.transform.dense.weight"]

    monkeypatch.setattr(study, "load_mlm_teacher", headless)
    params = study.PROFILES.resolve("smoke", languages=["aaa"], sweeps=["label_only", "stage1", "stage2"])
    with pytest.warns(UserWarning, match="falls back to hidden-state"):
        result = study.run(params, progress=False)
    students = result.metrics[(result.metrics.model == "student") & result.metrics.language.notna()]
    arms = {(r.config, r.stage1, r.stage2, r.stage1_signal) for r in students.itertuples()}
    assert arms == {
        ("hybrid", "task-specific", "ce", "sentiment-logits"),
        ("label_only", "none", "ce", "none"),
        ("stage1=task-agnostic", "task-agnostic", "ce", "hidden-states"),
        ("stage2=ce+kd", "task-specific", "ce+kd", "sentiment-logits"),
    }
    seeds = students.groupby("config")["seed"].apply(set).to_dict()
    assert seeds == {"hybrid": {0, 1}, "label_only": {0, 1}, "stage1=task-agnostic": {0}, "stage2=ce+kd": {0}}
    assert set(result.student_rows["seed"]) == {0} and "label_only" in set(result.summary["config"])
    assert any("falls back to hidden-state + attention matching" in line for line in result.notes)
    tables = study.tables(result)
    assert set(tables["stages"]["config"]) == {"hybrid", "stage1=task-agnostic", "stage2=ce+kd"}
    per_seed = students[students.config.isin(["hybrid", "label_only"])].pivot_table(
        index="seed", columns="config", values="macro_f1"
    )
    effect = tables["label_only_effect"].iloc[0]
    assert effect["effect"] == pytest.approx(100 * (per_seed["hybrid"] - per_seed["label_only"]).mean())
    assert tables["label_only"].loc["label_only", "seeds"] == 2
    arms = students[students.config.isin(["hybrid", "label_only"])]
    assert arms.student_params.nunique() == 1  # the same student, with and without distillation
    assert (arms.groupby(["config", "language", "seed"]).size() == 1).all()  # one row per language and seed
    scores = study.per_language_scores(result.metrics)  # the run's own seed, although hybrid ran at two
    assert scores.loc["aaa", "student_macro_f1"] == pytest.approx(result.headline["student_macro_f1"])


def test_bench_reads_the_runs_scores_and_times_its_models(study_run, capsys):
    from workbench.bench.distill import main
    from workbench.methods.comet import peak_memory_mib

    result, report = study_run
    assert main(["--from", str(report), "--json", "--rounds", "1", "--no-memory"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("teacher_params", "student_params", "teacher_seq_per_s", "student_seq_per_s", "speedup"):
        assert out[key] > 0
    assert out["student_params"] < out["teacher_params"] and out["student_disk_mib"] < out["teacher_disk_mib"]
    assert out["teacher_peak_mib"] is None  # not measured: null, not NaN, in the JSON
    assert out["speedup"] == pytest.approx(out["student_seq_per_s"] / out["teacher_seq_per_s"])
    assert out["retention"] == pytest.approx(result.headline["retention"])  # the run's scores, not re-measured
    assert out["student_macro_f1"] == pytest.approx(result.headline["student_macro_f1"])
    assert out["languages"] == ["aaa", "bbb"] and set(out["per_language"]) == {"aaa", "bbb"}
    assert peak_memory_mib(report / "models" / "teacher", batch_size=4, max_length=8) > 0


def test_bench_without_a_saved_run_runs_the_study(afrisenti_root, tmp_path, capsys):
    from workbench.bench.distill import main

    args = ["--reports", str(tmp_path), "--json", "--rounds", "1", "--no-memory", "--profile", "smoke"]
    assert main([*args, "-p", "languages=[bbb]"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "run now (profile smoke)" and out["languages"] == ["bbb"]
    assert 0 <= out["retention"] and out["student_params"] < out["teacher_params"]


@pytest.mark.parametrize("teacher_threads", [None, 1])
def test_the_teacher_works_on_the_run_s_thread_budget_and_the_students_on_torch_threads(
    afrisenti_root, monkeypatch, teacher_threads
):
    """The teacher (fine-tuning, targets) uses every thread the run was given (None) or `teacher_threads`; the
    students train on `torch_threads`; the notes give the counts of the run."""
    from workbench.runtime import torch_threads

    seen: dict[str, list[int]] = {"fine_tune_teacher": [], "teacher_targets": [], "run_distillation": []}
    for name in seen:
        original = getattr(study, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            seen[_name].append(torch.get_num_threads())
            return _original(*args, **kwargs)

        monkeypatch.setattr(study, name, spy)
    params = {**study.PROFILES.resolve("smoke", sweeps=[], bench_rounds=1, torch_threads=1)}
    params["teacher_threads"] = teacher_threads
    with torch_threads(2):
        result = study.run(params, progress=False)
    expected = 2 if teacher_threads is None else 1
    assert seen["fine_tune_teacher"] == [expected] and set(seen["teacher_targets"]) == {expected}
    assert seen["run_distillation"] and set(seen["run_distillation"]) == {1}
    assert (
        f"Torch threads (2 available to the run): the teacher's fine-tuning, scoring and targets {expected}, the "
        "students' training 1." in result.notes
    )


def test_student_arms_give_the_same_rows_and_students_in_two_worker_processes(afrisenti_root):
    """The recipes x seeds trained side by side (`workers=2`) give the same metric rows, the same default-recipe
    students and the same size students as one after the other; the notes say how the arms ran."""
    params = study.PROFILES.resolve("smoke", sweeps=["label_only", "student_size"], bench_rounds=1)
    results = {n: study.run({**params, "workers": n}, progress=False) for n in (1, 2)}
    serial, side_by_side = (
        r.metrics[r.metrics["kind"].ne("efficiency")]
        .drop(columns=["speedup", "latency_speedup"])
        .filter(regex="^(?!.*seconds$)")
        for r in results.values()
    )
    assert (serial["model"] == "student").sum() >= 3 * 3  # hybrid, label_only, a size, + seed repeats
    pd.testing.assert_frame_equal(serial, side_by_side)
    one, two = results[1], results[2]
    assert list(two.students) == list(one.students) == one.frames.languages
    for lang, student in one.students.items():
        for (name, a), b in zip(student.state_dict().items(), two.students[lang].state_dict().values()):
            assert torch.equal(a, b), name
    assert list(two.size_students) == list(one.size_students) and len(one.size_students) == 2
    assert any("one after the other" in line for line in one.notes)
    assert any("side by side in 2 worker processes" in line for line in two.notes)
    assert {k for k in two.timings if k.startswith("distill:")} == {k for k in one.timings if k.startswith("distill:")}


# ---------------------------------------------------------------------------------------------------------------
# A teacher shared between runs (`teacher_dir`), and the paper path's dry run
# ---------------------------------------------------------------------------------------------------------------


def test_teacher_dir_shares_one_fine_tuned_teacher_between_runs(afrisenti_root, tmp_path, monkeypatch):
    folder = tmp_path / "teacher"
    folder.mkdir()  # empty: the first run fine-tunes the teacher and saves it there
    params = study.PROFILES.resolve("smoke", sweeps=[], bench_rounds=1, teacher_dir=str(folder))
    first = study.run(params, progress=False)
    assert (folder / study.TEACHER_CARD).is_file() and load_classifier(folder)[1].config.num_labels == 3
    assert any("saved to" in line for line in first.notes) and "teacher_fine_tune" in first.timings

    def refuse(*args, **kwargs):
        raise AssertionError("the saved teacher must be loaded, not built and fine-tuned again")

    monkeypatch.setattr(study, "fine_tune_teacher", refuse)
    monkeypatch.setattr(study, "load_teacher", refuse)
    second = study.run(params, progress=False)
    assert any("loaded from" in line for line in second.notes)
    assert "teacher_load" in second.timings and "teacher_fine_tune" not in second.timings
    pd.testing.assert_frame_equal(second.teacher_scores, first.teacher_scores)  # the same teacher metrics
    pd.testing.assert_frame_equal(second.teacher_history, first.teacher_history)
    assert not any(p.requires_grad for p in second.teacher_model.parameters())
    scores = ["language", "config", "macro_f1", "weighted_f1", "accuracy"]
    pd.testing.assert_frame_equal(second.student_rows[scores], first.student_rows[scores])  # same students too

    with pytest.raises(ValueError, match="train_rows: saved 24, this run 20"):
        study.run(study.PROFILES.resolve("smoke", sweeps=[], teacher_dir=str(folder), train_rows=20), progress=False)
    stranger = tmp_path / "not-a-teacher"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(FileNotFoundError, match="neither empty nor a teacher"):
        study.run(study.PROFILES.resolve("smoke", sweeps=[], teacher_dir=str(stranger)), progress=False)
    assert (stranger / "notes.txt").read_text() == "mine"  # nothing overwritten


def test_a_shared_teacher_serves_only_runs_that_fine_tune_in_the_same_arithmetic(tmp_path, monkeypatch):
    """teacher_precision is resolved on this machine before it is compared ('auto' is bf16 on an AMX CPU, fp32
    elsewhere); a card saved before the setting existed stands for an fp32 teacher."""
    import workbench.runtime as runtime

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "native_bf16", lambda: True)
    params = study.PROFILES.resolve("smoke", teacher_precision="auto")
    assert study.train_configs(params)["teacher"].precision == "auto"
    assert study.teacher_settings(params)["teacher_precision"] == "bf16"
    settings = study.teacher_settings({**params, "teacher_precision": "no"})
    del settings["teacher_precision"]  # a card written before the setting existed
    (tmp_path / study.TEACHER_CARD).write_text(json.dumps({"settings": settings, "history": []}))
    with pytest.raises(ValueError, match="teacher_precision: saved 'no', this run 'bf16'"):
        study.saved_teacher(tmp_path, params)
    monkeypatch.setattr(runtime, "native_bf16", lambda: False)  # the same 'auto' on a CPU without AMX: fp32
    with pytest.raises(OSError):  # past the settings check: the (absent) weights are what is missing
        study.saved_teacher(tmp_path, params)
    assert "fp32 (teacher_precision='auto': this CPU has no native bf16" in " ".join(study.notes(params))


TINY_XLMR = dict(
    model_type="xlm-roberta",
    vocab_size=30522,
    hidden_size=32,
    num_hidden_layers=3,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=66,
    type_vocab_size=1,
    pad_token_id=1,
)


@pytest.fixture
def dry_run_env(monkeypatch):
    """Inside a `--dry-run`, with a tiny XLM-R architecture registered as a paper model (the real one is 560M)."""
    from workbench.paper_models import PAPER_ARCHITECTURES

    monkeypatch.setenv("WORKBENCH_DRY_RUN", "1")
    monkeypatch.setitem(PAPER_ARCHITECTURES, "test/tiny-xlmr", TINY_XLMR)


def test_dry_run_builds_a_paper_teacher_from_its_config_offline(dry_run_env, monkeypatch):
    import transformers

    def no_hub(*args, **kwargs):
        raise AssertionError("a dry run downloads nothing")

    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", no_hub)
    tokenizer, teacher = load_teacher("test/tiny-xlmr", num_labels=3, seed=5)
    _, again = load_teacher("test/tiny-xlmr", num_labels=3, seed=5)
    assert type(teacher).__name__ == "XLMRobertaForSequenceClassification" and teacher.config.num_labels == 3
    assert teacher.config.num_hidden_layers == 3 and teacher.config._attn_implementation == "eager"
    assert all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(), again.state_dict().values()))
    assert tokenizer.vocab_size <= teacher.config.vocab_size  # the MiniLM stand-in's ids fit the vocabulary


def test_dry_run_caps_the_paper_profile_and_says_so(dry_run_env):
    paper = study.PROFILES.resolve("paper")
    assert paper["dry_run"] is True and paper["teacher"] == "Davlan/afro-xlmr-large"
    assert (paper["student_layers"], paper["student_hidden"], paper["student_heads"]) == (6, 256, 8)  # not shrunk
    assert paper["teacher_epochs"] == paper["stage1_epochs"] == paper["stage2_epochs"] == 1
    assert paper["train_rows"] <= 32 and paper["max_length"] <= 32 and paper["bench_rounds"] == 1
    text = " ".join(study.notes(paper))
    assert "DRY RUN: the teacher 'Davlan/afro-xlmr-large' has its published architecture but random weights" in text
    assert "the numbers mean nothing" in text and "word embeddings stay frozen" in text


def test_dry_run_distils_an_xlmr_teacher_and_claims_no_target(afrisenti_root, dry_run_env):
    params = study.PROFILES.resolve("smoke", teacher="test/tiny-xlmr", sweeps=["ablation"])
    result = study.run(params, progress=False)
    assert type(result.teacher_model).__name__ == "XLMRobertaForSequenceClassification"
    assert result.teacher_history["epoch"].tolist() == [0]
    assert result.headline["dry_run"] is True and result.headline["best_config"] is None
    assert result.verdict.startswith("Figures not meaningful") and "recipe(s) reach" not in " ".join(result.notes)
    assert set(result.student_rows["config"]) == {"hybrid", "kd_only", "attention_only"}
    assert result.notes[0].startswith("DRY RUN")


def test_dry_run_task_agnostic_stage_1_reads_an_xlmr_masked_lm_head(afrisenti_root, dry_run_env):
    assert mlm_head_in_checkpoint("test/tiny-xlmr") is True  # built whole from its config
    model, missing = load_mlm_teacher("test/tiny-xlmr", seed=1)
    assert type(model).__name__ == "XLMRobertaForMaskedLM" and missing == []
    params = study.PROFILES.resolve("smoke", teacher="test/tiny-xlmr", stage1="task-agnostic", sweeps=["stage1"])
    result = study.run(params, progress=False)
    rows = result.student_rows.set_index("config")
    assert rows.loc["hybrid", "stage1_signal"] == "mlm-logits" and rows.loc["hybrid", "stage1"] == "task-agnostic"
    assert rows.loc["stage1=task-specific", "stage1_signal"] == "sentiment-logits"
    assert rows.loc["hybrid", "stage1_mlm_kd"] > 0


def test_symbol_tokens_reach_the_teacher_the_task_agnostic_teacher_and_the_students(tmp_path, monkeypatch):
    _write_afrisenti(tmp_path)
    for split in ("train", "dev", "test"):  # an emoji per tweet, by label, like real tweets
        path = tmp_path / "afrisenti" / "aaa" / f"{split}.tsv"
        header, *lines = path.read_text().splitlines()
        emoji = {"negative": "😡", "neutral": "🤔", "positive": "😂"}
        lines = [f"{text}{emoji[label]}\t{label}" for text, label in (line.split("\t") for line in lines)]
        path.write_text("\n".join([header, *lines]) + "\n")
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    params = study.PROFILES.resolve("smoke", languages=["aaa"], sweeps=["stage1"], symbol_tokens=1, bench_rounds=1)
    result = study.run(params, progress=False)
    symbols = added_symbols(result.tokenizer)
    assert sorted(symbols) == sorted("😡🤔😂")  # the fixture tweets' emoji
    vocabulary = len(result.tokenizer)
    assert result.teacher_model.config.vocab_size == vocabulary
    assert result.teacher_model.get_input_embeddings().weight.shape[0] == vocabulary
    students = [model for name, model in result.trained_models.items() if name.startswith("student-")]
    assert students and all(s.model.config.vocab_size == vocabulary for s in students)
    note = next(line for line in result.notes if line.startswith("Symbol tokens:"))
    assert f"{len(symbols)} emoji / symbols" in note and "at least 1 times" in note
    plain = study.run(study.PROFILES.resolve("smoke", languages=["aaa"], sweeps=[], bench_rounds=1), progress=False)
    assert added_symbols(plain.tokenizer) == [] and not any(line.startswith("Symbol tokens:") for line in plain.notes)
