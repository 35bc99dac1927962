"""The benchmarks (`workbench bench pruning | distill | notebooks`) on fixture data and tiny models: the fields they
print, a fresh clone with no reports, a missing optional runtime, smoke runs marked as not meaningful everywhere."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

from workbench.profiles import ParameterError


def test_pruning_bench_json_has_the_reference_peers_and_goals(fixture_data_dir, monkeypatch, capsys, tmp_path):
    from workbench.bench.pruning import main

    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    pytest.importorskip("onnxruntime")
    args = ["--profile", "smoke", "--json", "-p", "keeps=[[0.2, 0.5], [0.5, 1.0]]", "-p", "repeats=1"]
    args += ["-p", "poolings=[mean, mean_last2, cls]", "-p", "runtimes=[torch_int8, onnx_int8, pruned_int8]"]
    args += ["-p", "finetune=false", "-p", "save_models=false"]
    assert main(args) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # stdout is one JSON object
    assert captured.err.splitlines()[0].startswith("NOTE: figures not meaningful")
    for key in ("dense_reference", "dense_macro_f1", "dense_by_pooling", "schedule", "speedup", "pruned_macro_f1",
                "dense_seq_per_s", "pruned_seq_per_s"):  # fmt: skip
        assert key in result, key
    for runtime in ("torch_int8", "onnx_int8", "pruned_int8"):
        assert result[f"{runtime}_seq_per_s"] > 0 and 0 <= result[f"{runtime}_macro_f1"] <= 1
    assert "onnx_fp32_seq_per_s" not in result  # not asked for
    assert set(result["dense_by_pooling"]) == {"mean", "mean_last2", "cls"}
    best_dev = max(result["dense_by_pooling"].items(), key=lambda kv: kv[1]["dev_macro_f1"])[0]
    assert result["dense_reference"] == best_dev
    assert result["dense_macro_f1"] == pytest.approx(result["dense_by_pooling"][best_dev]["macro_f1"], abs=1e-4)
    assert result["meaningful"] is False and result["target_met"] is None and result["int8_target_met"] is None
    assert result["dense_seq_per_s"] > 0 and result["repeats"] == 1 and result["profile"] == "smoke"
    assert [row["schedule"] for row in result["curve"][::2]] == ["dense", "spatten t0.2 h0.5", "spatten t0.5 h1"]
    assert all(0.0 <= row["macro_f1"] <= 1.0 for row in result["curve"])
    with pytest.raises(ParameterError, match="did you mean 'repeats'"):
        main(["--profile", "smoke", "-p", "repeat=1"])


def test_pruning_bench_skips_a_missing_runtime_with_a_message(fixture_data_dir, monkeypatch, capsys, tmp_path):
    from workbench.bench.pruning import main

    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the optional extra were not installed
    args = ["--profile", "smoke", "-p", "keeps=[[0.2, 1.0]]", "-p", "repeats=1", "-p", "poolings=[mean]"]
    args += ["-p", "runtimes=[onnx_fp32, torch_int8]", "-p", "finetune=false", "-p", "save_models=false"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("NOTE: figures not meaningful")
    assert "skipped onnx_fp32: onnx_fp32 needs ONNX Runtime: pip install 'workbench[onnx]'" in out
    assert "torch_int8:" in out and "goal >=" not in out and " met" not in out  # no verdict on a smoke run


def test_distill_bench_from_a_fresh_clone_trains_saves_and_reloads(fixture_data_dir, monkeypatch, capsys, tmp_path):
    from workbench.bench.distill import main

    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    empty = tmp_path / "reports"
    empty.mkdir()
    assert main(["--reports", str(empty), "--profile", "smoke", "--json", "--no-memory", "--rounds", "1"]) == 0
    captured = capsys.readouterr()
    first = captured.err.splitlines()[0]
    assert "smoke" in first and "not meaningful" in first
    result = json.loads(captured.out)
    for key in ("teacher_macro_f1", "student_macro_f1", "retention", "speedup", "student_int8_macro_f1",
                "student_int8_seq_per_s", "student_int8_retention"):  # fmt: skip
        assert key in result, key
    assert 0 <= result["teacher_macro_f1"] <= 1 and result["speedup"] > 0 and result["teacher"] == "tiny"
    assert result["tokenizers_match"] is True and result["meaningful"] is False and "note" in result
    assert result["source"] == "run now (profile smoke)" and not any(empty.iterdir())


def test_distill_bench_defaults_to_quick_and_fails_cleanly_without_data(monkeypatch, capsys, tmp_path):
    from workbench.cli import main

    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "no-data"))
    (tmp_path / "no-data").mkdir()
    assert main(["bench", "distill", "--reports", str(tmp_path), "--json"]) == 2
    captured = capsys.readouterr()
    assert "training the quick profile" in captured.err and "error: no AfriSenti training data" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def _tiny_notebook(folder: Path) -> Path:
    """A notebook the runner accepts (parameters cell, writes results.json) that holds ~200 MB for a moment."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "quick"\nreport_dir = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Tiny"),
        params,
        nbformat.v4.new_code_cell(
            "import numpy as np\nblock = np.ones(200 * 2**20 // 8)\n"
            "from workbench.results import save_results\n"
            "save_results(report_dir, study='tiny', profile=profile, parameters={}, data=[], metrics=[])"
        ),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "00_tiny.ipynb"
    nbformat.write(nb, path)
    return path


def test_measure_command_sees_the_memory_of_the_whole_process_tree():
    from workbench.bench.notebooks import measure_command

    child = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import numpy as np, time; " \
            "a = np.ones(150 * 2**20 // 8); time.sleep(1.0)'])"  # fmt: skip
    seconds, tree, process, code, _ = measure_command([sys.executable, "-c", child], dict(__import__("os").environ))
    assert code == 0 and seconds >= 1.0
    assert process >= 150 and tree >= 150  # the grandchild's 150 MiB block counts


def test_notebook_cost_table_markdown_and_rows_that_accumulate_across_runs():
    from workbench.bench.notebooks import SPEED, Measurement, markdown, merge

    info = {"cpu": "test", "cores": 2, "memory": "1 GiB"}
    first = [
        Measurement(
            "00_quickstart",
            "quick",
            "cold",
            612.4,
            1834.2,
            1201.0,
            True,
            "",
            "2026-12-05 12:00 UTC",
            0.1,
            "workbench bench notebooks --only 00_quickstart",
        ),
        Measurement("00_quickstart", "quick", "warm", 95.2, 1500.0, 1100.0, True, "", "2026-12-05 12:10 UTC", 1.25),
        Measurement("04_spatten", "quick", "cold", 9.5, 800.0, 600.0, False, "error: boom | x"),
    ]
    page = markdown(first, info)
    assert (
        "| 00_quickstart | quick | 612 | 95 | 1,834 (1,201) | 1,500 (1,100) | 0.10 / 1.25 | 2026-12-05 12:00 UTC | ok |"
        in page
    )
    assert "| 04_spatten | quick | 9.5 | - | 800 (600) | - | ? / - | ? | failed: error: boom / x |" in page
    assert "- `workbench bench notebooks --only 00_quickstart`" in page and "Smoke-profile" not in page

    stored = {"machine": info, "rows": [r.__dict__ for r in first]}
    again = [Measurement("04_spatten", "quick", "cold", 300.0, 900.0, 700.0, True)]
    merged = merge(stored, again, info)
    assert [(r.notebook, r.cache, r.seconds) for r in merged] == [
        ("00_quickstart", "cold", 612.4),
        ("00_quickstart", "warm", 95.2),
        ("04_spatten", "cold", 300.0),
    ]  # the re-measured notebook replaced, the other kept
    assert merge(stored, again, {**info, "cores": 16}) == again  # another machine: old rows are not comparable
    probed = {**stored, "machine": {**info, SPEED: 40.0}}
    assert len(merge(probed, again, {**info, SPEED: 44.0})) == 3  # the same speed, within the probe's noise
    assert merge(probed, again, {**info, SPEED: 22.0}) == again  # the same CPU name, another speed: another machine
    assert merge(stored, again, {**info, SPEED: 22.0}) == again  # a page measured before the probe: speed unknown


def test_notebooks_bench_warns_before_replacing_another_machines_page(tmp_path, monkeypatch, capsys):
    from workbench.bench import notebooks as bench
    from workbench.bench.notebooks import SPEED, Measurement

    here = {"cpu": "AMD EPYC", "cores": 2, "memory": "23.5 GiB", SPEED: 96.0}
    out = tmp_path / "page.md"
    old = Measurement("03_besstie", "quick", "cold", 1440.0, 9478.0, 7542.0, True)
    xeon = {"cpu": "Intel Xeon", "cores": 2, "memory": "23.6 GiB", SPEED: 122.0}
    out.with_suffix(".json").write_text(json.dumps({"machine": xeon, "rows": [old.__dict__]}))
    _tiny_notebook(tmp_path / "notebooks")
    monkeypatch.setattr(bench, "machine", lambda: here)
    new = Measurement("00_tiny", "quick", "cold", 5.0, 300.0, 200.0, True)
    monkeypatch.setattr(bench, "measure_notebook", lambda *args, **kwargs: [new])

    assert bench.main(["--only", "00_tiny", "--notebooks-dir", str(tmp_path / "notebooks"), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "holds 1 row(s) measured on another machine (Intel Xeon, 122.0 GFLOP/s" in err and "--out" in err
    assert [r["notebook"] for r in json.loads(out.with_suffix(".json").read_text())["rows"]] == ["00_tiny"]
    bench.main(["--only", "00_tiny", "--notebooks-dir", str(tmp_path / "notebooks"), "--out", str(out)])
    assert "another machine" not in capsys.readouterr().err  # the page is this machine's now


def test_the_speed_probe_reports_a_plausible_figure():
    from workbench.bench.notebooks import SPEED, machine, matmul_speed

    assert 0.5 < matmul_speed(size=256, repeats=3) < 10_000  # GFLOP/s of one CPU thread
    assert machine()[SPEED] > 0


@pytest.mark.slow
def test_notebooks_bench_runs_cold_and_warm_and_writes_the_table(tmp_path, capsys):
    from workbench.bench.notebooks import main

    _tiny_notebook(tmp_path / "notebooks")
    out = tmp_path / "notebooks.md"
    code = main(["--only", "00_tiny", "--notebooks-dir", str(tmp_path / "notebooks"), "--out", str(out), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert [(r["notebook"], r["cache"], r["ok"]) for r in result["rows"]] == [("00_tiny", "cold", True),
                                                                           ("00_tiny", "warm", True)]  # fmt: skip
    assert all(r["seconds"] > 0 and r["peak_tree_mib"] >= 200 for r in result["rows"])
    assert "| 00_tiny | quick |" in out.read_text()


def test_smoke_results_are_marked_not_meaningful_in_results_and_index(tmp_path):
    from workbench.results import figures_meaningful, save_results
    from workbench.runner import RUN_FILE, write_index

    assert figures_meaningful("quick", {"encoder": "minilm"})
    assert not figures_meaningful("smoke", {}) and not figures_meaningful("quick", {"dry_run": True})
    assert not figures_meaningful("quick", {"teacher": "tiny"})
    for name, profile in (("a-smoke", "smoke"), ("b-quick", "quick")):
        path = save_results(tmp_path / name, study="x", profile=profile, parameters={}, data=[], metrics=[],
                            headline={"speedup": 2.5})  # fmt: skip
        assert json.loads(path.read_text())["meaningful"] is (profile == "quick")
        (tmp_path / name / RUN_FILE).write_text(json.dumps({"status": "ok", "profile": profile, "seconds": 1}))
    page = write_index(tmp_path).read_text()
    smoke_row = next(row for row in page.split("<tr>") if "a-smoke" in row)
    quick_row = next(row for row in page.split("<tr>") if "b-quick" in row)
    assert "NOT MEANINGFUL" in smoke_row and "NOT MEANINGFUL" not in quick_row


def test_teacher_timing_plan_warms_on_the_median_batch_then_times_the_epochs_quantile_batches_twice():
    from workbench.bench.teachers import timing_plan
    from workbench.methods.finetune import LengthGroupedBatchSampler

    lengths = [1 + (7 * i) % 50 for i in range(200)]
    epoch = LengthGroupedBatchSampler(lengths, 10, seed=3).batches(0)  # 20 batches, as the teacher draws them

    def size(batch):
        return len(batch) * max(lengths[i] for i in batch)

    sizes = sorted(size(b) for b in epoch)
    plan = timing_plan(lengths, 10, seed=3, steps=4, warmup=2)
    assert len(plan) == 2 + 4 + 4 and plan[0] == plan[1] and size(plan[0]) == sizes[10]
    assert plan[2:6] == plan[6:] and all(b in epoch for b in plan)
    assert [size(b) for b in plan[6:]] == [sizes[2], sizes[7], sizes[12], sizes[17]]  # quantiles 1/8, 3/8, 5/8, 7/8


def test_architecture_only_builds_hub_teachers_from_their_config_and_restores_the_environment(monkeypatch):
    from workbench.bench.teachers import CANDIDATES, architecture_only
    from workbench.paper_models import PAPER_ARCHITECTURES, dry_run

    monkeypatch.delenv("WORKBENCH_DRY_RUN", raising=False)
    assert all(name in PAPER_ARCHITECTURES for name in CANDIDATES if name != "minilm")
    with architecture_only("Davlan/afro-xlmr-mini") as random_weights:
        assert random_weights and dry_run()
    assert not dry_run()
    with architecture_only("minilm") as random_weights:
        assert not random_weights and not dry_run()


def test_teachers_bench_times_each_candidate_through_the_comet_teacher_path(fixture_data_dir, monkeypatch, capsys):
    import math

    import transformers

    from workbench.bench.teachers import main
    from workbench.paper_models import PAPER_ARCHITECTURES, dry_run
    from workbench.studies import comet

    tiny_xlmr = dict(model_type="xlm-roberta", vocab_size=30522, hidden_size=32, num_hidden_layers=3,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=66, type_vocab_size=1,
                     pad_token_id=1)  # fmt: skip
    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    monkeypatch.delenv("WORKBENCH_DRY_RUN", raising=False)
    monkeypatch.setitem(PAPER_ARCHITECTURES, "test/tiny-xlmr", tiny_xlmr)

    def no_hub(*args, **kwargs):
        raise AssertionError("the benchmark downloads nothing")

    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", no_hub)
    argv = ["--profile", "smoke", "--teachers", "tiny", "test/tiny-xlmr", "--steps", "2", "--warmup", "1"]
    assert main([*argv, "--target-rows", "8", "--json"]) == 0
    captured = capsys.readouterr()
    assert "not meaningful" in captured.err and not dry_run()
    result = json.loads(captured.out)
    params = comet.PROFILES.resolve("smoke")
    data = comet.load(params)
    train = sum(len(f) for f in data.train.values())
    dev, test = sum(len(f) for f in data.dev.values()), sum(len(f) for f in data.test.values())
    assert result["meaningful"] is False and result["train_rows"] == train
    tiny, xlmr = result["teachers"]
    assert [tiny["teacher"], xlmr["teacher"]] == ["tiny", "test/tiny-xlmr"]
    assert xlmr["weights"] == "published architecture, random weights" and tiny["weights"].startswith("random")
    assert (xlmr["layers"], xlmr["hidden"], xlmr["heads"], xlmr["vocab"]) == (3, 32, 2, 30522)
    epochs = int(params["teacher_epochs"])
    for row in (tiny, xlmr):
        assert len(row["step_seconds_each"]) == 2 and all(s > 0 for s in row["step_seconds_each"])
        assert row["fine_tune_steps"] == epochs * math.ceil(train / int(params["batch_size"]))
        assert row["forward_rows"] == (epochs + 1) * dev + test + len(data.corpus)
        work = row["fine_tune_steps"] * row["step_seconds"] + row["forward_rows"] * row["forward_row_ms"] / 1000
        assert row["projected_minutes"] == pytest.approx(work / 60)
    assert tiny["projected_vs_first"] == 1 and xlmr["projected_vs_first"] > 0
