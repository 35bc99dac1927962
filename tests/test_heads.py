"""Classification heads: every registered head runs forward and backward, ignores padding, and plugs into a
transformer for end-to-end fine-tuning."""

from __future__ import annotations

import pytest
import torch

from workbench.methods.heads import (
    SequenceClassifier,
    collate_token_ids,
    collate_token_states,
    masked_mean,
    token_state_dataset,
)
from workbench.registry import UnknownNameError, build, names

HEADS = names("head")

HIDDEN = 12
SMALL = {"cnn": {"channels": 8}, "bilstm": {"lstm_hidden": 6}, "crosstalk": {"channels": 8, "task_dim": 6, "layers": 2}}


def _batch(batch: int = 4, length: int = 7, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    states = torch.randn(batch, length, HIDDEN, generator=generator)
    lengths = torch.tensor([length, 3, 1, 5][:batch])
    mask = torch.arange(length)[None, :] < lengths[:, None]
    return states, mask


def _as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_every_head_runs_forward_and_backward(name):
    torch.manual_seed(0)
    head = build("head", name, HIDDEN, 3, **SMALL.get(name, {}))
    states, mask = _batch()
    states.requires_grad_(True)
    outputs = _as_tuple(head(states, mask))
    assert len(outputs) == getattr(head, "num_tasks", 1)
    for logits in outputs:
        assert logits.shape == (4, 3)
        assert torch.isfinite(logits).all()
    sum(o.sum() for o in outputs).backward()
    assert states.grad is not None and torch.isfinite(states.grad).all()
    for pname, param in head.named_parameters():
        assert param.grad is not None, f"{name}.{pname} got no gradient"
    # padding carries no gradient: nothing after a text's last real token influences its logits
    assert torch.all(states.grad[~mask] == 0) or name == "linear"


@pytest.mark.parametrize("name", sorted(HEADS))
def test_padding_does_not_change_the_logits(name):
    torch.manual_seed(0)
    head = build("head", name, HIDDEN, 2, **SMALL.get(name, {})).eval()
    states, mask = _batch()
    padded_states = torch.cat([states, 100 * torch.ones(4, 5, HIDDEN)], 1)
    padded_mask = torch.cat([mask, torch.zeros(4, 5, dtype=torch.bool)], 1)
    with torch.no_grad():
        for a, b in zip(_as_tuple(head(states, mask)), _as_tuple(head(padded_states, padded_mask))):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_the_study_heads_are_registered_and_unknown_names_are_listed():
    assert {"linear", "cnn", "bilstm", "crosstalk"} <= set(HEADS)
    with pytest.raises(
        UnknownNameError, match=r"unknown head 'mlp'; registered: (.+, )?linear, cnn, bilstm, crosstalk"
    ):
        build("head", "mlp", HIDDEN)


def test_linear_head_rejects_an_unknown_pooling():
    with pytest.raises(ValueError, match="pooling must be 'cls' or 'mean'"):
        build("head", "linear", HIDDEN, 2, pooling="max")


def test_masked_mean_ignores_padding():
    values = torch.tensor([[[1.0], [3.0], [100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert masked_mean(values, mask).item() == pytest.approx(2.0)


def test_collate_trims_padding_columns_and_casts_to_float32():
    states = torch.randn(3, 10, HIDDEN).half().numpy()
    mask = torch.zeros(3, 10, dtype=torch.bool)
    mask[0, :4], mask[1, :2], mask[2, :1] = True, True, True
    data = token_state_dataset(states, mask.numpy(), [0, 1, 1])
    batch_states, batch_mask, labels = collate_token_states([data[i] for i in range(3)])
    assert batch_states.dtype == torch.float32 and batch_states.shape == (3, 4, HIDDEN)
    assert batch_mask.shape == (3, 4) and labels.tolist() == [0, 1, 1]


def test_collate_token_ids_trims_padding_columns():
    ids = torch.arange(30).reshape(3, 10)
    mask = torch.zeros(3, 10, dtype=torch.long)
    mask[0, :2], mask[1, :5], mask[2, :1] = 1, 1, 1
    batch_ids, batch_mask, labels = collate_token_ids([(ids[i], mask[i], torch.tensor(i)) for i in range(3)])
    assert batch_ids.shape == (3, 5) and torch.equal(batch_ids, ids[:, :5]) and labels.tolist() == [0, 1, 2]
    assert torch.equal(batch_mask, mask[:, :5])


@pytest.mark.parametrize("name,layers", [("linear", 1), ("crosstalk", 2)])
def test_sequence_classifier_fine_tunes_the_encoder_with_the_head(name, layers):
    from workbench.encoders import load_encoder

    encoder = load_encoder("tiny", device="cpu")
    head = build("head", name, encoder.hidden_size, 2, **SMALL.get(name, {}))
    model = SequenceClassifier(encoder.model, head, layers=layers)
    batch = encoder.tokenize(["a good day", "a very bad and long day indeed"], max_length=16)
    outputs = _as_tuple(model(batch["input_ids"], batch["attention_mask"]))
    assert all(o.shape == (2, 2) for o in outputs) and len(outputs) == model.num_tasks
    sum(o.sum() for o in outputs).backward()
    assert encoder.model.embeddings.word_embeddings.weight.grad is not None
