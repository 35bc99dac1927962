"""Faster CPU runtimes for a BERT-family encoder, the peers a pruned model must beat: PyTorch dynamic int8
quantization of the linear layers, and ONNX Runtime (fp32, and int8 by dynamic quantization of the exported graph).

Every runtime runs the same computation, `LayerPooler`: the encoder plus, per layer, the mean over the real tokens
of that layer's output, and the final [CLS] state, so that any pooling of `workbench.methods.spatten.pool_layers`
(final-layer mean, last-k-layer mean, all-layer mean, [CLS]) comes out of one call and a linear head trained on fp32
features can score every runtime's features. ONNX Runtime is optional (`pip install workbench[onnx]`):
`runtime_problem` says why a runtime cannot run here instead of failing later.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

RUNTIMES = ("torch_int8", "onnx_fp32", "onnx_int8", "pruned_int8")
RUNTIME_TEXT = {
    "torch_int8": "PyTorch dynamic int8 quantization of every linear layer (weights int8, activations quantized "
    "per batch)",
    "onnx_fp32": "ONNX Runtime, fp32 graph exported with torch.onnx (graph optimisations on)",
    "onnx_int8": "ONNX Runtime, int8 dynamic quantization of the exported graph's MatMul weights",
    "pruned_int8": "each cascade-pruned schedule on the int8-quantized encoder (the two combined)",
}


def runtime_problem(name: str) -> str | None:
    """Why the runtime `name` cannot run in this environment (None when it can): an unknown name, a missing optional
    package, or a PyTorch build without a quantized CPU engine."""
    if name not in RUNTIMES:
        return f"unknown runtime {name!r}; expected one of {', '.join(RUNTIMES)}"
    if name.startswith("onnx"):
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            return f"{name} needs ONNX Runtime: pip install 'workbench[onnx]' (onnx, onnxruntime)"
        return None
    if not {"x86", "fbgemm", "qnnpack", "onednn"} & set(torch.backends.quantized.supported_engines):
        return f"{name} needs a PyTorch build with a quantized CPU engine (fbgemm / x86 / qnnpack)"
    return None


class LayerPooler(nn.Module):
    """A Hugging Face encoder that returns (per-layer token means (B, N, d), final [CLS] state (B, d)).

    The mean of layer l is over the real (non-padding) tokens of layer l's output; the embedding output is left out,
    as in `CascadePruner`'s `layer_means`, so that dense features match the pruned path's at keep 1.0."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        kwargs = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, **kwargs)
        hidden = torch.stack(out.hidden_states[1:], 1)  # (B, N, L, d)
        mask = attention_mask[:, None, :, None].to(hidden.dtype)
        means = (hidden * mask).sum(2) / mask.sum(2).clamp(min=1)
        return means, out.last_hidden_state[:, 0]


def quantize_linear_int8(model: nn.Module) -> nn.Module:
    """A copy of `model` with every `nn.Linear` replaced by PyTorch's dynamic int8 linear layer (weights int8 per
    tensor, activations quantized on the fly); embeddings and layer norms stay fp32. The model itself is unchanged."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # torch.ao eager quantization is deprecated in favour of torchao (not installed)
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8)


def export_onnx(model: nn.Module, batch: Mapping[str, torch.Tensor], path: str | Path, opset: int = 17) -> Path:
    """Export `LayerPooler(model)` to ONNX with dynamic batch and sequence axes, traced on `batch` (a tokenizer's
    output: `input_ids`, `attention_mask`, optionally `token_type_ids`). Uses the TorchScript exporter
    (`dynamo=False`), which needs no extra package."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch]
    axes = {k: {0: "batch", 1: "sequence"} for k in names}
    axes.update(layer_means={0: "batch"}, cls={0: "batch"})
    wrapper = LayerPooler(model).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            tuple(batch[k] for k in names),
            str(path),
            input_names=names,
            output_names=["layer_means", "cls"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    return path


def quantize_onnx_int8(source: str | Path, target: str | Path) -> Path:
    """ONNX Runtime's dynamic int8 quantization of an exported graph (MatMul weights int8, signed)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # onnxruntime warns "consider pre-processing" on the root logger
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)  # never leave a global side effect behind
    return Path(target)


class OnnxPooler:
    """An ONNX Runtime session over a `LayerPooler` graph: call it with a tokenized batch (torch tensors) and get
    (layer means, [CLS]) as torch tensors. `threads` intra-op threads (default: torch's current count), so that it
    competes with PyTorch on equal terms."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, **batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feed = {name: batch[name].cpu().numpy().astype(np.int64) for name in self.inputs}
        means, cls = self.session.run(None, feed)
        return torch.from_numpy(means), torch.from_numpy(cls)


def dense_runners(
    model: nn.Module,
    runtimes: list[str],
    sample: Mapping[str, torch.Tensor],
    workdir: str | Path,
    say: Callable[[str], None] | None = None,
) -> dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]]:
    """Name -> callable(**tokenized batch) -> (layer means, [CLS]) for the dense runtimes among `runtimes`
    (`torch_int8`, `onnx_fp32`, `onnx_int8`; `pruned_int8` is the pruner's business). A runtime that cannot run here
    is skipped and `say` is told why. ONNX files go to `workdir`."""
    out: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {}
    for name in runtimes:
        if name == "pruned_int8":
            continue
        problem = runtime_problem(name)
        if problem:
            if say:
                say(f"skipped {name}: {problem}")
            continue
        if name == "torch_int8":
            out[name] = LayerPooler(quantize_linear_int8(model)).eval()
        elif name == "onnx_fp32" or name == "onnx_int8":
            fp32 = Path(workdir) / "encoder.onnx"
            if not fp32.is_file():
                export_onnx(model, sample, fp32)
            path = fp32 if name == "onnx_fp32" else quantize_onnx_int8(fp32, Path(workdir) / "encoder-int8.onnx")
            out[name] = OnnxPooler(path)
    return out


__all__ = [
    "RUNTIMES",
    "RUNTIME_TEXT",
    "LayerPooler",
    "OnnxPooler",
    "dense_runners",
    "export_onnx",
    "quantize_linear_int8",
    "quantize_onnx_int8",
    "runtime_problem",
]
