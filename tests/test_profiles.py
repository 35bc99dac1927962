"""Typed profiles: base values, per-profile differences, one decoder, errors that say what is allowed."""

from __future__ import annotations

import pytest

from workbench.profiles import Param, ParameterError, Profiles, decode_value

TOY = Profiles(
    {
        "encoder": Param("minilm", "encoder name"),
        "epochs": Param(10, "epochs", minimum=1),
        "lr": Param(1e-3, "learning rate", minimum=0),
        "heads": Param(["linear"], "heads to train", choices=("linear", "cnn")),
        "max_rows": Param(None, "cap on rows", kind="int", minimum=0),
        "finetune": Param(False, "fine-tune the encoder"),
    },
    smoke={"encoder": "tiny", "epochs": 1},
    paper={"finetune": True},
)


def test_profiles_are_base_plus_differences():
    assert TOY.resolve("smoke") == {
        "profile": "smoke",
        "encoder": "tiny",
        "epochs": 1,
        "lr": 1e-3,
        "heads": ["linear"],
        "max_rows": None,
        "finetune": False,
    }
    assert TOY.resolve("quick")["encoder"] == "minilm" and TOY.resolve("paper")["finetune"] is True
    assert TOY.names == ("encoder", "epochs", "lr", "heads", "max_rows", "finetune")


def test_overrides_are_decoded_and_checked():
    params = TOY.resolve("quick", epochs="3", lr=1, heads="[cnn, linear]", max_rows=None, finetune="true")
    assert params["epochs"] == 3 and params["lr"] == 1.0 and isinstance(params["lr"], float)
    assert params["heads"] == ["cnn", "linear"] and params["finetune"] is True and params["max_rows"] is None
    assert TOY.resolve("quick", encoder="123")["encoder"] == "123", "a str knob keeps its text"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epoch": 3}, "unknown parameter 'epoch' for this study; did you mean 'epochs'"),
        ({"epochs": "abc"}, "parameter 'epochs': 'abc' is a str, expected int"),
        ({"epochs": True}, "expected int"),
        ({"epochs": 0}, "below the minimum 1"),
        ({"heads": ["linear", "gru"]}, "'gru' is not allowed; allowed: 'linear', 'cnn'"),
        ({"max_rows": -5}, "below the minimum"),
        ({"lr": "[1"}, "not valid YAML"),
    ],
)
def test_bad_values_name_the_parameter_and_what_is_allowed(overrides, message):
    with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace("[", r"\[")):
        TOY.resolve("quick", **overrides)


def test_unknown_profile_and_bad_profile_tables_are_errors():
    with pytest.raises(ParameterError, match="unknown profile 'fast'"):
        TOY.resolve("fast")
    with pytest.raises(ParameterError, match="did you mean 'epochs'"):
        Profiles({"epochs": Param(1)}, smoke={"epoch": 2})


def test_table_lists_every_knob_per_profile():
    rows = {r["name"]: r for r in TOY.table()}
    assert rows["encoder"]["smoke"] == "tiny" and rows["encoder"]["paper"] == "minilm"
    assert rows["max_rows"]["type"] == "int or None" and rows["heads"]["help"] == "heads to train"


def test_decode_value_is_yaml():
    assert decode_value("[0, 1]") == [0, 1] and decode_value("none") is None and decode_value(3) == 3
    assert decode_value("0.5") == 0.5 and decode_value("hau") == "hau"


def test_the_committed_parameter_spec_is_current():
    import json

    from workbench.studies import spec

    committed = json.loads(spec.SPEC_FILE.read_text(encoding="utf-8"))
    assert committed == spec.build(), "workbench/studies/parameters.json is stale: python -m workbench.studies.spec"


def test_bad_parameters_are_rejected_from_the_spec_without_importing_torch(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from workbench.runner import check_parameters\n"
        "from workbench.studies.spec import static_profiles\n"
        "assert static_profiles('01_mage') is not None, 'the spec is stale'\n"
        "for nb, params in [('01_mage', {'langauges': ['hau']}), ('04_spatten', {'max_train_rows': 'abc'})]:\n"
        "    try:\n"
        "        check_parameters(Path(f'notebooks/{nb}.ipynb'), params)\n"
        "    except Exception as err:\n"
        "        print(type(err).__name__, err)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].startswith("ParameterError 01_mage: unknown parameter 'langauges'") and "'languages'" in out[0]
    assert out[1].startswith("ParameterError 04_spatten: parameter 'max_train_rows'")
    assert out[2] == "False"


def test_a_stale_spec_is_ignored(monkeypatch):
    from workbench.studies import spec

    monkeypatch.setattr(spec, "package_fingerprint", lambda: "changed")
    assert spec.static_profiles("01_mage") is None
