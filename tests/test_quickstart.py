"""The quickstart study on the fixture data: held-out rows never trained on, same seed gives the same numbers."""

from __future__ import annotations

from workbench.profiles import resolve_parameters
from workbench.quickstart import DEFAULTS, run_quickstart


def test_quickstart_is_deterministic_and_holds_out_its_test_rows(fixture_data_dir, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(fixture_data_dir))
    params = resolve_parameters(DEFAULTS, "smoke")
    first, second = run_quickstart(params, seed=1), run_quickstart(params, seed=1)
    assert first.metrics == second.metrics
    assert (first.predictions == second.predictions).all()
    assert not set(first.train["text"].str.strip()) & set(first.test["text"].str.strip())
    assert {row["test_variety"] for row in first.metrics} == {"all", "en-AU", "en-UK"}
    assert set(first.test["variety"]) == {"en-AU", "en-UK"} and set(first.test["source"]) == {"Google"}
    assert first.metrics[0]["n_test"] == len(first.test)
