"""Encoders: the registry, pooling, the on-disk cache, attention weights, the offline message."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench import encoders
from workbench.encoders import EncoderUnavailable, embed_texts, encode_tokens, load_encoder

TEXTS = ["the food was lovely", "terrible service, never again", "ok"]


@pytest.fixture(scope="module")
def tiny():
    return load_encoder("tiny", attentions=True)


def test_tiny_encoder_is_small_and_seeded(tiny):
    assert (tiny.num_layers, tiny.hidden_size, tiny.num_heads) == (2, 32, 2)
    other = load_encoder("tiny")
    assert all(torch.equal(a, b) for a, b in zip(tiny.model.state_dict().values(), other.model.state_dict().values()))


def test_mean_and_cls_pooling_match_the_hidden_states(tiny):
    batch = tiny.tokenize(TEXTS)
    with torch.no_grad():
        states = tiny.model(**batch).last_hidden_state
    mask = batch["attention_mask"].bool()
    mean = embed_texts(TEXTS, tiny, pooling="mean", cache=False, progress=False)
    cls = embed_texts(TEXTS, tiny, pooling="cls", cache=False, progress=False)
    assert mean.shape == cls.shape == (3, 32)
    np.testing.assert_allclose(mean[2], states[2][mask[2]].mean(0).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cls[0], states[0, 0].numpy(), rtol=1e-4, atol=1e-5)


def test_cache_avoids_re_encoding(tiny, monkeypatch):
    first = embed_texts(TEXTS, tiny, progress=False)
    calls = []
    monkeypatch.setattr(tiny, "tokenize", lambda *a, **k: calls.append(a) or pytest.fail("re-encoded"))
    again = embed_texts(list(reversed(TEXTS)), tiny, progress=False)
    np.testing.assert_array_equal(again, first[::-1])
    assert not calls


def test_token_states_are_padded_with_a_mask(tiny):
    tokens = encode_tokens(TEXTS, tiny, progress=False)
    lengths = [len(tiny.tokenizer(t)["input_ids"]) for t in TEXTS]
    assert tokens.states.shape == (3, max(lengths), 32)
    assert tokens.mask.sum(1).tolist() == lengths
    assert np.all(tokens.states[~tokens.mask] == 0)


def test_attention_weights_when_asked(tiny):
    out = tiny.model(**tiny.tokenize(TEXTS[:1]), output_attentions=True)
    assert len(out.attentions) == 2 and out.attentions[0].shape[1] == 2
    assert torch.allclose(out.attentions[0].sum(-1), torch.ones(1))


def test_hub_id_offline_names_the_default(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderUnavailable, match="offline default is 'minilm'"):
        load_encoder("no-such-org/no-such-model-for-tests")


def test_minilm_ships_in_its_package():
    assert (encoders.minilm_path() / "config.json").is_file()


def test_layer_mean_states_average_the_top_layers_and_are_cached_apart(tiny):
    batch = tiny.tokenize(TEXTS)
    with torch.no_grad():
        hidden = tiny.model(**batch, output_hidden_states=True).hidden_states
        both = encoders.run_layers(tiny.model, batch, layers=2)
    torch.testing.assert_close(both, (hidden[-1] + hidden[-2]) / 2)
    last = encode_tokens(TEXTS, tiny, progress=False)
    mean2 = encode_tokens(TEXTS, tiny, progress=False, layers=2)
    mask = batch["attention_mask"].bool().numpy()
    np.testing.assert_allclose(mean2.states[1][mask[1]], both[1][mask[1]].numpy(), atol=2e-3)  # float16 cache
    assert not np.allclose(last.states, mean2.states)
    with pytest.raises(ValueError, match="only 2 layers"):
        encoders.run_layers(tiny.model, batch, layers=3)
    with pytest.raises(ValueError, match="at least 1"):
        encoders.run_layers(tiny.model, batch, layers=0)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "inconsistent"])
def test_a_damaged_cache_entry_is_recomputed_and_mentioned(tiny, tmp_path, monkeypatch, damage):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    texts = ["one text", "another text", "a third"]
    first = embed_texts(texts, tiny, max_length=16)
    (shard,) = tmp_path.rglob("*.npz")
    if damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:40])
    elif damage == "garbage":
        shard.write_bytes(b"not a numpy archive at all")
    else:
        np.savez(shard, keys=np.array(["a", "b"]), lengths=np.array([3]), flat=np.zeros((5, 4)))
    with pytest.warns(UserWarning, match="unreadable.*encoded again"):
        again = embed_texts(texts, tiny, max_length=16)
    np.testing.assert_allclose(again, first, rtol=1e-5, atol=1e-6)
    assert len(list(tmp_path.rglob("*.npz"))) == 1, "the damaged shard was replaced by a fresh one"


def test_checkpoints_are_written_whole_or_not_at_all(tmp_path):
    from workbench.training import load_checkpoint, save_checkpoint

    model = torch.nn.Linear(3, 2)
    target = save_checkpoint(model, tmp_path / "ckpt", {"note": "first"})
    other = torch.nn.Linear(3, 2)

    class Exploding(torch.nn.Linear):
        def state_dict(self, *args, **kwargs):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(Exploding(3, 2), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"], "no partial folder left behind"
    load_checkpoint(other, target)
    assert torch.equal(other.weight, model.weight), "the previous checkpoint survives a failed save"


def test_symbols_read_as_unknown_get_tokens_started_from_their_unicode_names(tmp_path):
    tokenizer, model = encoders._tiny("eager", seed=0)
    texts = ["great 😂😂 day", "so sad😭", "😭 ok", "once ❤", "plain words"]
    symbols = encoders.unknown_symbols(tokenizer, texts, min_count=2)
    assert symbols == ["😂", "😭"]  # ❤ occurs once; words and known characters are not symbols
    assert tokenizer.tokenize("so sad😭") == ["so", "[UNK]"]  # the word with the emoji attached is lost whole
    before = model.get_input_embeddings().weight.detach().clone()
    assert encoders.add_symbol_tokens(tokenizer, model, symbols) == 2
    assert tokenizer.tokenize("so sad😭") == ["so", "sad", "😭"]  # split off the word it was attached to
    weight = model.get_input_embeddings().weight
    assert weight.shape[0] == len(tokenizer) == model.config.vocab_size == before.shape[0] + 2
    assert torch.equal(weight[: before.shape[0]], before)  # the pretrained rows are untouched
    name = tokenizer("loudly crying face", add_special_tokens=False)["input_ids"]
    assert torch.allclose(weight[tokenizer.convert_tokens_to_ids("😭")], before[name].mean(0))
    tokenizer.save_pretrained(tmp_path)
    reloaded = type(tokenizer).from_pretrained(tmp_path)
    assert encoders.added_symbols(reloaded) == symbols
    assert encoders.fit_symbol_embeddings(model, reloaded) == []  # nothing new to fit
