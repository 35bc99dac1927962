"""Trained models in Hugging Face form: every model a run trains can be loaded again, shared and served.

Two kinds of model, one folder layout (`<report_dir>/models/<name>/`):

- our own modules inherit `HubModule` (`huggingface_hub.PyTorchModelHubMixin`): `save_pretrained` writes the
  constructor arguments to `config.json` and the weights to `model.safetensors`, and `Class.from_pretrained(folder)`
  rebuilds the model from the class alone. Arguments that are dataclasses, our own modules or Hugging Face models
  (a fine-tuned encoder inside a head) are stored as plain JSON and rebuilt on load (the encoder from its config,
  its weights from the safetensors file); nothing is unpickled and no code is read from the folder;
- fine-tuned Hugging Face classifiers (`PreTrainedModel`) use their own `save_pretrained`, with the tokenizer, and
  load with `AutoModelForSequenceClassification.from_pretrained(folder)`.

Each folder also holds `test_logits.safetensors` (up to 32 test inputs and the logits the run computed for them, so
that a reload can be checked bit for bit: `check_saved`) and a `README.md` model card written from the run's
`results.json` (study, profile, data, the model's metric rows, how the run differs from the paper).

A study hands its trained models to its result as `TrainedModel`s (`StudyResult.trained_models`, when its
`save_models` parameter is on); `StudyResult.save` lists them in `results.json` and calls `write_models`.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from workbench.runtime import atomic_directory

MODELS_DIR = "models"
TEST_LOGITS = "test_logits.safetensors"
CLASS_KEY = "workbench_class"  # extra key in a HubModule's config.json: the class that reads it
MAX_TEST_ROWS = 32
_MODULE = "__workbench_module__"
_TRANSFORMERS = "__transformers_model__"
_CLASSES: dict[str, type] = {}  # qualified name -> HubModule subclass: the only classes a config can name


def class_name(cls: type) -> str:
    """`module.QualName` of a class (what `config.json` and `results.json` record)."""
    return f"{cls.__module__}.{cls.__qualname__}"


def hub_class(name: str) -> type:
    """The `HubModule` subclass called `name` (a `class_name`); only workbench modules are ever imported for it."""
    parts = name.split(".")
    for stop in range(len(parts) - 1, 1, -1):  # the longest module path that imports (a class may be nested)
        if name in _CLASSES or parts[0] != "workbench":
            break
        try:
            importlib.import_module(".".join(parts[:stop]))
        except ImportError:
            continue
    if name not in _CLASSES:
        raise ValueError(f"{name!r} is not a saved-model class of the workbench (a HubModule subclass)")
    return _CLASSES[name]


def _is_transformers_model(value: object) -> bool:
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is a dependency
        return False
    return isinstance(value, PreTrainedModel)


def _encode(value: object) -> object:
    """A JSON form of a constructor argument; TypeError when it has none (it is then left out of the config)."""
    if isinstance(value, HubModule):
        return {_MODULE: class_name(type(value)), "config": value._hub_mixin_config or {}}
    if _is_transformers_model(value):
        return {
            _TRANSFORMERS: type(value).__name__,
            "config": value.config.to_dict(),
            "attn_implementation": value.config._attn_implementation,
            # BERT-like encoders built without their pooler (`add_pooling_layer=False`) are rebuilt without it
            "add_pooling_layer": getattr(value, "pooler", True) is not None,
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{type(value).__name__} has no JSON form")


def _build_transformers_model(spec: Mapping[str, object]) -> nn.Module:
    """A Hugging Face model of the recorded class, built from its recorded config (weights come later)."""
    import transformers

    cls = getattr(transformers, str(spec[_TRANSFORMERS]), None)
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        raise ValueError(f"{spec[_TRANSFORMERS]!r} is not a transformers model class")
    values = dict(spec["config"])
    config = transformers.AutoConfig.for_model(values.pop("model_type"), **values)
    kwargs = {} if spec.get("add_pooling_layer", True) else {"add_pooling_layer": False}
    return cls._from_config(config, attn_implementation=spec.get("attn_implementation"), **kwargs)


def _decode(value: object) -> object:
    """Inverse of `_encode` for the stored modules (dataclasses are decoded from the annotation by the mixin)."""
    if isinstance(value, Mapping):
        if _MODULE in value:
            cls = hub_class(str(value[_MODULE]))
            return cls(**cls._decode_config(dict(value["config"])))
        if _TRANSFORMERS in value:
            return _build_transformers_model(value)
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class HubModule(PyTorchModelHubMixin):
    """Mixin for the workbench's `nn.Module`s (`class Head(nn.Module, HubModule)`): `save_pretrained(folder)` /
    `Head.from_pretrained(folder)` with the constructor arguments in `config.json` and safetensors weights.

    Unlike the plain mixin it keeps every argument, also when one of them is a dataclass called `config`, stores
    modules passed as arguments (our own, or a Hugging Face encoder) as JSON, resolves postponed annotations, and
    loads weights strictly (a missing or unexpected tensor is an error)."""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        try:  # `from __future__ import annotations` leaves strings: resolve them so dataclass arguments decode
            hints = typing.get_type_hints(cls.__init__)
        except Exception:  # noqa: BLE001 - an unresolvable hint only means that argument is not decoded by type
            hints = {}
        cls._hub_mixin_init_parameters = {
            name: p.replace(annotation=hints.get(name, p.annotation))
            for name, p in cls._hub_mixin_init_parameters.items()
        }
        _CLASSES[class_name(cls)] = cls

    def __new__(cls, *args, **kwargs):
        instance = object.__new__(cls)
        names = list(cls._hub_mixin_init_parameters)[1:]
        passed = {**dict(zip(names, args)), **kwargs}
        config = dict(cls._hub_mixin_jsonable_default_values)
        for key, value in passed.items():
            try:
                config[key] = _encode(value)
            except TypeError:  # e.g. arrays that become buffers: loading uses the default, the weights restore them
                config.pop(key, None)
        instance._hub_mixin_config = config
        return instance

    @classmethod
    def _is_jsonable(cls, value: object) -> bool:
        try:
            _encode(value)
        except TypeError:
            return False
        return True

    @classmethod
    def _encode_arg(cls, arg: object) -> object:
        return _encode(arg)

    @classmethod
    def _decode_arg(cls, expected_type, value):
        return super()._decode_arg(expected_type, _decode(value))

    @classmethod
    def _decode_config(cls, config: Mapping[str, object]) -> dict[str, object]:
        """Constructor keyword arguments from a stored config (what `from_pretrained` does before building)."""
        out = {}
        for key, value in config.items():
            parameter = cls._hub_mixin_init_parameters.get(key)
            if parameter is not None:
                out[key] = cls._decode_arg(parameter.annotation, value)
        return out

    def _save_pretrained(self, save_directory: Path) -> None:
        """Weights (safetensors), then `config.json` in argument order (the mixin sorts keys, which would reorder a
        mapping argument such as a fusion's modalities) with the class that reads it (`workbench_class`)."""
        super()._save_pretrained(save_directory)
        config = {**(self._hub_mixin_config or {}), CLASS_KEY: class_name(type(self))}
        (Path(save_directory) / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs,
    ):
        """Build the model from its config, load `model.safetensors` (strictly by default), eval mode."""
        from safetensors.torch import load_model

        model = cls(**model_kwargs)
        path = Path(model_id) / "model.safetensors"
        if not path.is_file():
            from huggingface_hub import hf_hub_download

            path = hf_hub_download(
                repo_id=model_id,
                filename="model.safetensors",
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                token=token,
                local_files_only=local_files_only,
            )
        load_model(model, str(path), strict=strict, device=str(map_location))
        return model.to(map_location).eval()


# ---------------------------------------------------------------------------------------------------------------
# What a study hands over: a trained model, a few test inputs, the logits it computed for them
# ---------------------------------------------------------------------------------------------------------------


def first_rows(value: object, n: int = MAX_TEST_ROWS) -> object:
    """The first `n` rows of every tensor or array in a (nested) tuple / list / dict of inputs, as CPU tensors."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.Tensor):  # a fresh contiguous copy: CPU kernels' sums can depend on layout/alignment
        return value[:n].detach().cpu().contiguous().clone()
    if isinstance(value, Mapping):
        return {k: first_rows(v, n) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(first_rows(v, n) for v in value)
    return value


def _to_device(value: object, device: torch.device) -> object:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, Mapping):
        return {k: _to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    return value


def output_logits(output: object) -> dict[str, torch.Tensor]:
    """The logits in a model's output: a tensor, a tuple of tensors (multitask heads), or an object with `.logits`
    (Hugging Face outputs, fusion outputs), as {name: CPU tensor}."""
    if isinstance(output, torch.Tensor):
        return {"logits": output.detach().cpu()}
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return {"logits": logits.detach().cpu()}
    if isinstance(output, (list, tuple)) and all(isinstance(t, torch.Tensor) for t in output):
        return {f"logits.{i}": t.detach().cpu() for i, t in enumerate(output)}
    raise TypeError(f"cannot find logits in a model output of type {type(output).__name__}")


def _device_of(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


@torch.no_grad()
def compute_logits(model: nn.Module, inputs: tuple | Mapping) -> dict[str, torch.Tensor]:
    """`model(*inputs)` (a tuple) or `model(**inputs)` (a mapping) in eval mode on the model's device; the model's
    train / eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        moved = _to_device(inputs, _device_of(model))
        output = model(**moved) if isinstance(moved, Mapping) else model(*moved)
    finally:
        model.train(was_training)
    return output_logits(output)


@dataclass
class TrainedModel:
    """A model a run trained, to be saved with the run: `inputs` are the forward arguments (a tuple: positional, a
    mapping: keyword) for at most 32 test examples; `rows` selects the run's metric rows that this model produced
    (column -> value, or a list of accepted values); `tokenizer` is saved beside a model that reads token ids.

    The logits for `inputs` are computed when this is built, i.e. from the model exactly as the run evaluated it."""

    model: nn.Module
    inputs: tuple | Mapping
    rows: dict[str, object] = field(default_factory=dict)
    description: str = ""
    tokenizer: object | None = None
    logits: dict[str, torch.Tensor] = field(default_factory=dict)
    device: str = ""

    def __post_init__(self) -> None:
        self.inputs = first_rows(self.inputs)
        if not isinstance(self.inputs, Mapping):
            self.inputs = tuple(self.inputs)
        if not self.logits:
            self.logits = compute_logits(self.model, self.inputs)
        self.device = self.device or str(_device_of(self.model))

    @property
    def format(self) -> str:
        """`transformers` (AutoModelForSequenceClassification and friends) or `hub_mixin` (our own modules)."""
        return "transformers" if _is_transformers_model(self.model) else "hub_mixin"

    @property
    def class_name(self) -> str:
        return class_name(type(self.model))

    @property
    def load_kwargs(self) -> dict[str, object]:
        """What `from_pretrained` needs to rebuild the model exactly as the run had it: a Hugging Face model's
        attention implementation (eager and sdpa round differently); our modules store theirs in config.json."""
        if self.format == "transformers":
            return {"attn_implementation": self.model.config._attn_implementation}
        return {}


_NAME = re.compile(r"[^A-Za-z0-9._+=-]+")


def model_name(*parts: object) -> str:
    """A folder name from parts (`model_name("linear", "Sentiment", "en-AU")` -> `linear-Sentiment-en-AU`)."""
    name = "-".join(_NAME.sub("_", str(p)).strip("_") for p in parts if p is not None and str(p) != "")
    if not name or name.startswith("."):
        raise ValueError(f"not a usable model name: {parts!r}")
    return name


def describe_models(models: Mapping[str, TrainedModel]) -> list[dict[str, object]]:
    """The `models` entries of results.json: name, class, format, folder (relative to the report), metric rows."""
    out = []
    for name, trained in models.items():
        try:
            plain = model_name(name) == name
        except ValueError:
            plain = False
        if not plain:
            raise ValueError(f"model name {name!r} is not a plain folder name; build it with model_name()")
        out.append(
            {
                "name": name,
                "class": trained.class_name,
                "format": trained.format,
                "path": f"{MODELS_DIR}/{name}",
                "rows": dict(trained.rows),
                "load_kwargs": trained.load_kwargs,
                "description": trained.description,
            }
        )
    return out


# ---------------------------------------------------------------------------------------------------------------
# Test inputs and logits in one safetensors file
# ---------------------------------------------------------------------------------------------------------------


def _flatten(value: object, prefix: str, tensors: dict[str, torch.Tensor]) -> object:
    """A JSON description of a nested input whose tensors are moved into `tensors` under dotted keys."""
    if isinstance(value, torch.Tensor):
        tensors[prefix] = value.detach().cpu().contiguous()
        return {"tensor": prefix}
    if isinstance(value, Mapping):
        return {"dict": {str(k): _flatten(v, f"{prefix}.{k}", tensors) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"list": [_flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(value)]}
    return {"value": _encode(value)}


def _unflatten(spec: Mapping[str, object], tensors: Mapping[str, torch.Tensor]) -> object:
    if "tensor" in spec:
        return tensors[spec["tensor"]]
    if "dict" in spec:
        return {k: _unflatten(v, tensors) for k, v in spec["dict"].items()}
    if "list" in spec:
        return tuple(_unflatten(v, tensors) for v in spec["list"])
    return spec["value"]


def write_test_logits(path: str | Path, trained: TrainedModel) -> None:
    """`inputs.*` and `logits*` tensors of a trained model's test examples, with the input structure in the header."""
    tensors: dict[str, torch.Tensor] = {}
    structure = _flatten(trained.inputs, "inputs", tensors)
    for key, value in trained.logits.items():
        tensors[key] = value.contiguous()
    metadata = {
        "inputs": json.dumps(structure),
        "call": "kwargs" if isinstance(trained.inputs, Mapping) else "args",
        "logits": json.dumps(sorted(trained.logits)),
        "device": trained.device,
        "load_kwargs": json.dumps(trained.load_kwargs),
    }
    save_file(tensors, str(path), metadata=metadata)


def read_test_logits(path: str | Path) -> tuple[tuple | dict, dict[str, torch.Tensor]]:
    """(inputs, logits) stored by `write_test_logits`: call the model with `model(*inputs)` or `model(**inputs)`."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    # fresh (aligned) copies: a matrix product's rounding can depend on where its input lies in memory
    tensors = {key: value.clone() for key, value in load_file(str(path)).items()}
    inputs = _unflatten(json.loads(metadata["inputs"]), tensors)
    if metadata.get("call") == "kwargs":
        inputs = dict(inputs)
    return inputs, {key: tensors[key] for key in json.loads(metadata["logits"])}


# ---------------------------------------------------------------------------------------------------------------
# Loading and checking a saved folder
# ---------------------------------------------------------------------------------------------------------------


def load_kwargs(folder: str | Path) -> dict[str, object]:
    """The `from_pretrained` keyword arguments recorded with a saved model (e.g. its attention implementation)."""
    path = Path(folder) / TEST_LOGITS
    if not path.is_file():
        return {}
    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata().get("load_kwargs", "{}"))


def load_saved(folder: str | Path, map_location: str = "cpu") -> nn.Module:
    """A saved model, rebuilt by its own class: `config.json` names it (`workbench_class`, or `architectures` for a
    Hugging Face model, loaded with `AutoModelForSequenceClassification` when it is a sequence classifier, with the
    attention implementation the run used)."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"no saved model in {folder} (config.json missing)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if CLASS_KEY in config:
        return hub_class(str(config[CLASS_KEY])).from_pretrained(folder, map_location=map_location)
    import transformers

    architectures = config.get("architectures") or []
    auto = transformers.AutoModel
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        auto = transformers.AutoModelForSequenceClassification
    return auto.from_pretrained(folder, **load_kwargs(folder)).to(map_location).eval()


def check_saved(folder: str | Path, model: nn.Module | None = None) -> float:
    """Largest absolute difference between the logits stored in `folder/test_logits.safetensors` and those of the
    saved model (reloaded from the folder unless given) on the stored inputs: 0.0 when it reproduces the run."""
    folder = Path(folder)
    model = load_saved(folder) if model is None else model
    inputs, expected = read_test_logits(folder / TEST_LOGITS)
    got = compute_logits(model, inputs)
    if set(got) != set(expected):
        raise ValueError(f"{folder}: the model returns {sorted(got)}, the file holds {sorted(expected)}")
    worst = 0.0
    for key, value in expected.items():
        if got[key].shape != value.shape:
            raise ValueError(f"{folder}: {key} has shape {tuple(got[key].shape)}, stored {tuple(value.shape)}")
        worst = max(worst, float((got[key].float() - value.float()).abs().max()) if value.numel() else 0.0)
    return worst


def check_reports(reports: str | Path) -> list[dict[str, object]]:
    """Every saved model under `reports/<run>/models/<name>/`, reloaded by its own class (`load_saved`): per model
    its run, name, class, the largest logit difference from the run's stored test logits (`max_abs_diff`, 0.0 when
    it reproduces the run exactly), whether it has a model card, and `ok`. A folder that fails to load is reported
    with its `error`, not raised, so one bad folder does not hide the others."""
    out = []
    for folder in sorted(Path(reports).glob(f"*/{MODELS_DIR}/*/")):
        row: dict[str, object] = {"run": folder.parent.parent.name, "model": folder.name, "class": "", "error": ""}
        row["card"] = (folder / "README.md").is_file()
        try:
            model = load_saved(folder)
            row["class"] = class_name(type(model))
            row["max_abs_diff"] = check_saved(folder, model)
        except Exception as err:  # noqa: BLE001 - reported per folder
            row["max_abs_diff"], row["error"] = None, f"{type(err).__name__}: {err}"
        row["ok"] = row["max_abs_diff"] == 0.0 and bool(row["card"])
        out.append(row)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Writing: folders and model cards
# ---------------------------------------------------------------------------------------------------------------


def matching_rows(metrics: Sequence[Mapping[str, object]], selector: Mapping[str, object]) -> list[dict]:
    """The metric rows whose columns equal the selector's values (a list value accepts any of its items)."""

    def accepts(row: Mapping[str, object], key: str, wanted: object) -> bool:
        value = row.get(key)
        return value in wanted if isinstance(wanted, (list, tuple)) else value == wanted

    return [dict(r) for r in metrics if all(accepts(r, k, v) for k, v in selector.items())]


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _markdown_table(rows: Sequence[Mapping[str, object]], limit: int = 40) -> str:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in columns) + " |" for r in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"\n({len(rows) - limit} more rows in results.json)")
    return "\n".join(lines)


def _shapes(value: object, prefix: str) -> list[str]:
    if isinstance(value, torch.Tensor):
        return [f"`{prefix}`: {str(value.dtype).removeprefix('torch.')} {tuple(value.shape)}"]
    if isinstance(value, Mapping):
        return [line for k, v in value.items() for line in _shapes(v, f"{prefix}[{k!r}]")]
    if isinstance(value, (list, tuple)):
        return [line for i, v in enumerate(value) for line in _shapes(v, f"{prefix}[{i}]")]
    return []


def model_card(name: str, trained: TrainedModel, payload: Mapping[str, object], run: str = "") -> str:
    """The README.md of a saved model, written from the run's results.json `payload`."""
    study, profile = payload.get("study", ""), payload.get("profile", "")
    params = payload.get("parameters", {})
    transformers_model = trained.format == "transformers"
    cls = type(trained.model)
    tags = ["workbench", str(study), f"profile-{profile}", "sentiment-analysis"]
    front = ["---", f"library_name: {'transformers' if transformers_model else 'workbench'}", "tags:"]
    front += [f"- {t}" for t in tags]
    if transformers_model:
        front.append("pipeline_tag: text-classification")
    front.append("---")
    out = [*front, "", f"# {study} / {name}", ""]
    if trained.description:
        out += [trained.description, ""]
    out += [f"- Study: **{study}**", f"- Profile: **{profile}**"]
    if run:
        out.append(f"- Run: `{run}` (its `results.json` holds every parameter, data slice and metric row)")
    out.append(f"- Class: `{class_name(cls)}`")
    out.append("")
    if profile == "smoke" or params.get("dry_run"):
        out += [
            "> **Not a usable model.** This run used the smoke profile or a dry run: a tiny or randomly initialised "
            "model on a handful of rows. Its numbers mean nothing; it only shows that saving and loading work.",
            "",
        ]
    out += ["## Load", "", "```python"]
    if transformers_model:
        extra = "".join(f", {k}={v!r}" for k, v in trained.load_kwargs.items())
        out += [
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
            "",
            f'model = AutoModelForSequenceClassification.from_pretrained("path/to/this/folder"{extra})',
            'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
        ]
    else:
        out += [f"from {cls.__module__} import {cls.__qualname__}", ""]
        out.append(f'model = {cls.__qualname__}.from_pretrained("path/to/this/folder")  # eval mode, CPU')
        if trained.tokenizer is not None:
            out += [
                "",
                "from transformers import AutoTokenizer",
                "",
                'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
            ]
    out += ["```", ""]
    call = "model(**inputs)" if isinstance(trained.inputs, Mapping) else "model(*inputs)"
    out += [
        f"Inputs ({call}), as stored for {_rows_in(trained.inputs)} test examples in `{TEST_LOGITS}`:",
        "",
        *[f"- {line}" for line in _shapes(trained.inputs, "inputs")],
        "",
        f"`{TEST_LOGITS}` holds those inputs and the logits this run computed for them (on {trained.device}); "
        "`workbench.saving.check_saved(folder)` reloads the model and returns the largest difference (0.0 when it "
        "reproduces the run).",
        "",
    ]
    out += ["## Data", ""]
    data = [
        {k: d.get(k) for k in ("name", "rows") if k in d} for d in payload.get("data", []) if isinstance(d, Mapping)
    ]
    out += [_markdown_table(data) if data else "(no data slices recorded)", ""]
    rows = matching_rows(payload.get("metrics", []), trained.rows)
    out += ["## Metrics", ""]
    if trained.rows:
        out += ["Rows of `results.json` with " + ", ".join(f"`{k}` = {v!r}" for k, v in trained.rows.items()) + ":"]
        out += ["", _markdown_table(rows) if rows else "(no metric row matches)", ""]
    headline = payload.get("headline") or {}
    if headline:
        out += ["Headline of the run:", "", *[f"- {k}: {_cell(v)}" for k, v in headline.items()], ""]
    notes = payload.get("notes") or []
    out += ["## How this run differs from the paper", ""]
    out += [f"- {n}" for n in notes] if notes else ["(the run recorded no notes)"]
    out += ["", "## Parameters", ""]
    out += [f"- `{k}`: {json.dumps(v)}" for k, v in params.items()]
    return "\n".join(out) + "\n"


def _rows_in(inputs: object) -> int:
    if isinstance(inputs, torch.Tensor):
        return int(inputs.shape[0]) if inputs.dim() else 1
    values = list(inputs.values()) if isinstance(inputs, Mapping) else list(inputs)
    for value in values:
        found = _rows_in(value) if isinstance(value, (torch.Tensor, Mapping, list, tuple)) else 0
        if found:
            return found
    return 0


def save_model(folder: str | Path, trained: TrainedModel, card: str) -> Path:
    """Write one model folder: weights (safetensors) and config, tokenizer if any, test logits, model card."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(card, encoding="utf-8")  # first: the mixin writes no card of its own then
    model = trained.model
    if _is_transformers_model(model):
        model.save_pretrained(folder)
    elif isinstance(model, HubModule):
        model.save_pretrained(folder)
    else:
        raise TypeError(
            f"{class_name(type(model))} cannot be saved in Hugging Face form: make it a HubModule "
            "(class Model(nn.Module, HubModule)) or a transformers PreTrainedModel"
        )
    if trained.tokenizer is not None:
        trained.tokenizer.save_pretrained(folder)
    write_test_logits(folder / TEST_LOGITS, trained)
    return folder


def write_models(report_dir: str | Path, models: Mapping[str, TrainedModel], results_path: str | Path) -> Path:
    """`<report_dir>/models/<name>/` for every trained model, with a card from `results_path` (the run's
    results.json); the `models` folder is replaced as a whole, so it never mixes two runs' models."""
    payload = json.loads(Path(results_path).read_text(encoding="utf-8"))
    report_dir = Path(report_dir)
    target = report_dir / MODELS_DIR
    with atomic_directory(target) as staging:
        for name, trained in models.items():
            save_model(staging / model_name(name), trained, model_card(name, trained, payload, report_dir.name))
    return target


__all__ = [
    "CLASS_KEY",
    "MODELS_DIR",
    "TEST_LOGITS",
    "HubModule",
    "TrainedModel",
    "check_reports",
    "check_saved",
    "class_name",
    "compute_logits",
    "describe_models",
    "first_rows",
    "hub_class",
    "load_kwargs",
    "load_saved",
    "matching_rows",
    "model_card",
    "model_name",
    "output_logits",
    "read_test_logits",
    "save_model",
    "write_models",
    "write_test_logits",
]
