"""One registry convention: every registered part builds by name and runs forward and backward on a tiny input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench import registry
from workbench.methods.fusion import ModalityTransformerConfig
from workbench.training import TrainConfig

ENTRIES = [(kind, name) for kind in registry.kinds() for name in registry.names(kind)]
B, L, H = 3, 5, 8


def _grad_flows(module: torch.nn.Module, output: torch.Tensor) -> None:
    output.float().pow(2).mean().backward()
    grads = [p.grad for p in module.parameters() if p.requires_grad]
    assert grads and any(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def _head(name: str) -> None:
    head = registry.build("head", name, H, 2)
    states, mask = torch.randn(B, L, H), torch.ones(B, L, dtype=torch.bool)
    out = head(states, mask)
    outputs = out if isinstance(out, tuple) else (out,)
    assert all(o.shape == (B, 2) for o in outputs)
    _grad_flows(head, torch.cat(outputs, 1))


def _text_model(name: str) -> None:
    model = registry.build(
        "text_model",
        name,
        50,
        2,
        d_model=8,
        num_layers=1,
        num_heads=2,
        d_ff=16,
        window=2,
        max_length=L,
        bottleneck_ratio=2,
    )
    ids, mask = torch.randint(1, 50, (B, L)), torch.ones(B, L, dtype=torch.long)
    logits = model(ids, mask)
    assert logits.shape == (B, 2)
    _grad_flows(model, logits)


def _fusion(name: str) -> None:
    config = ModalityTransformerConfig(hidden=8, layers=1, heads=2, feedforward=16, max_positions=L)
    dims = {"text": 6, "audio": 4, "visual": 3}
    model = registry.build("fusion", name, dims, 3, config, False)
    features = {m: torch.randn(B, L, d) for m, d in dims.items()}
    masks = {m: torch.ones(B, L, dtype=torch.bool) for m in dims}
    out = model(features, masks)
    assert out.logits.shape == (B, 3)
    _grad_flows(model, out.logits)


def _projection(name: str) -> None:
    projection = registry.build("projection", name, L, 2)
    flat = torch.randn(B, L * L, requires_grad=True)
    out = projection(flat)
    assert out.shape == flat.shape
    out.pow(2).mean().backward()
    assert flat.grad is not None and flat.grad.abs().sum() > 0


def _loss(name: str) -> None:
    if name == "attention_mse":
        projected, teacher = torch.rand(B, L, L, requires_grad=True), torch.rand(B, L, L)
        value = registry.build("loss", name, projected, teacher, torch.ones(B, L, dtype=torch.bool))
        wrt = projected
    elif name == "hidden_mse":
        projected, teacher, mask = torch.rand(B, L, 8, requires_grad=True), torch.rand(B, L, 8), torch.ones(B, L) > 0
        value = registry.build("loss", name, projected, teacher, mask)
        assert float(registry.build("loss", name, teacher, teacher, mask)) == pytest.approx(0.0, abs=1e-6)
        wrt = projected
    else:
        student, teacher = torch.randn(B, 3, requires_grad=True), torch.randn(B, 3)
        value = registry.build("loss", name, student, teacher, 2.0)
        assert float(registry.build("loss", name, teacher, teacher, 2.0)) == pytest.approx(0.0, abs=1e-6)
        wrt = student
    assert value.ndim == 0 and float(value.detach()) >= 0
    value.backward()
    assert wrt.grad is not None and wrt.grad.abs().sum() > 0


def _augmenter(name: str) -> None:
    training = TrainConfig(epochs=1, batch_size=8, progress=False)
    kwargs = {} if name == "linear" else {"training": training}
    kwargs.update({"ae": {"bottleneck": 4}, "dae": {"bottleneck": 4}, "vae": {"latent": 4}}.get(name, {}))
    augmenter = registry.build("augmenter", name, **kwargs)
    embeddings = np.random.default_rng(0).normal(size=(16, H)).astype(np.float32)
    augmenter.fit(embeddings)
    sampled = augmenter.sample(embeddings, seed=1)
    assert sampled.shape == embeddings.shape and np.isfinite(sampled).all()
    assert not np.allclose(sampled, embeddings), "an augmenter makes new views"


EXERCISE = {
    "head": _head,
    "text_model": _text_model,
    "fusion": _fusion,
    "projection": _projection,
    "loss": _loss,
    "augmenter": _augmenter,
}


def test_every_kind_has_an_exercise():
    assert set(registry.kinds()) == set(EXERCISE)


@pytest.mark.parametrize("kind, name", ENTRIES, ids=[f"{k}:{n}" for k, n in ENTRIES])
def test_every_registered_part_builds_and_trains(kind: str, name: str):
    torch.manual_seed(0)
    EXERCISE[kind](name)


@pytest.mark.parametrize("kind", sorted(EXERCISE))
def test_an_unknown_name_lists_the_registered_ones(kind: str):
    with pytest.raises(registry.UnknownNameError) as err:
        registry.build(kind, "no-such-part")
    message = str(err.value)
    assert f"unknown {kind} 'no-such-part'" in message and all(n in message for n in registry.names(kind))
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)


def test_registering_a_name_twice_is_an_error():
    registry.register("head", "linear")(registry.get("head", "linear"))  # the same factory again is fine
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("head", "linear")(object)
