"""PCGrad on hand-made gradients with known answers, and CrossTalk multitask training on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.methods.heads import SequenceClassifier
from workbench.methods.pcgrad import fit_multitask, pcgrad_backward, predict_multitask, project_conflicting
from workbench.registry import build
from workbench.training import TrainConfig, class_weights


def _vectors(*rows):
    return [torch.tensor(r, dtype=torch.float64) for r in rows]


def test_conflicting_pair_is_projected_onto_each_others_normal_plane():
    # g1.g2 = -1 < 0: g1 - (-1/2) g2 = (0.5, 0.5); g2 - (-1/1) g1 = (0, 1); sum (0.5, 1.5)
    g1, g2 = _vectors([1.0, 0.0], [-1.0, 1.0])
    p1, p2 = project_conflicting([g1, g2])
    torch.testing.assert_close(p1, torch.tensor([0.5, 0.5], dtype=torch.float64))
    torch.testing.assert_close(p2, torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert torch.dot(p1, g2) == pytest.approx(0.0) and torch.dot(p2, g1) == pytest.approx(0.0)
    assert torch.dot(p1 + p2, g1) > 0 and torch.dot(p1 + p2, g2) > 0  # the summed step helps both tasks


def test_non_conflicting_gradients_are_left_alone():
    g1, g2 = _vectors([1.0, 2.0], [3.0, -1.0])  # dot = 1 > 0
    p1, p2 = project_conflicting([g1, g2])
    assert torch.equal(p1, g1) and torch.equal(p2, g2)
    orthogonal = _vectors([1.0, 0.0], [0.0, 5.0])  # dot = 0 is not a conflict
    assert all(torch.equal(a, b) for a, b in zip(project_conflicting(orthogonal), orthogonal))


def test_opposite_gradients_cancel_completely():
    g1, g2 = _vectors([2.0, -1.0, 0.5], [-2.0, 1.0, -0.5])
    p1, p2 = project_conflicting([g1, g2])
    torch.testing.assert_close(p1 + p2, torch.zeros(3, dtype=torch.float64))


def test_three_tasks_follow_the_random_order_and_both_orders_occur():
    # g1=(1,0), g2=(-1,1), g3=(-1,-1). By hand: task 2 visits (g1, g3) -> (-0.5, 0.5) or (g3, g1) -> (0, 1);
    # task 3 visits (g1, g2) -> (-0.5, -0.5) or (g2, g1) -> (0, -1); task 1 ends at (0, 0) in either order.
    grads = _vectors([1.0, 0.0], [-1.0, 1.0], [-1.0, -1.0])
    allowed = {
        0: [(0.0, 0.0)],
        1: [(-0.5, 0.5), (0.0, 1.0)],
        2: [(-0.5, -0.5), (0.0, -1.0)],
    }
    seen = {1: set(), 2: set()}
    for seed in range(20):
        projected = project_conflicting(grads, torch.Generator().manual_seed(seed))
        for task, vector in enumerate(projected):
            match = [a for a in allowed[task] if np.allclose(vector.numpy(), a)]
            assert match, f"task {task}: {vector.tolist()} not one of {allowed[task]}"
            if task in seen:
                seen[task].add(match[0])
    assert all(len(found) == 2 for found in seen.values())
    # same generator seed -> same result
    a = project_conflicting(grads, torch.Generator().manual_seed(3))
    b = project_conflicting(grads, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_pcgrad_backward_projects_shared_parameters_only():
    # shared w gets task gradients (1, 0) and (-1, 1) -> PCGrad sum (0.5, 1.5);
    # task-specific a and b keep their plain gradients 2 and 3.
    w = torch.nn.Parameter(torch.zeros(2))
    a = torch.nn.Parameter(torch.zeros(()))
    b = torch.nn.Parameter(torch.zeros(()))
    loss1 = w @ torch.tensor([1.0, 0.0]) + 2 * a
    loss2 = w @ torch.tensor([-1.0, 1.0]) + 3 * b
    stats = pcgrad_backward([loss1, loss2], [w, a, b])
    torch.testing.assert_close(w.grad, torch.tensor([0.5, 1.5]))
    assert a.grad.item() == pytest.approx(2.0) and b.grad.item() == pytest.approx(3.0)
    assert stats["conflict"] == 1.0 and stats["cosine"] == pytest.approx(-1 / np.sqrt(2), abs=1e-6)


def test_pcgrad_backward_without_conflict_equals_the_plain_summed_gradient():
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    x = torch.randn(5, 3)
    losses = lambda: [layer(x)[:, 0].sum(), 2 * layer(x)[:, 0].sum()]  # noqa: E731  same direction
    pcgrad_backward(losses(), list(layer.parameters()))
    projected = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    sum(losses()).backward()
    for got, want in zip(projected, [p.grad for p in layer.parameters()]):
        torch.testing.assert_close(got, want)


def _toy_texts(n: int = 48, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Texts whose sentiment is carried by one word and sarcasm by another, independently."""
    rng = np.random.default_rng(seed)
    sentiment, sarcasm = rng.integers(0, 2, n), rng.integers(0, 2, n)
    fillers = ["the food", "our trip", "this place", "the service", "my week"]
    texts = [
        f"{rng.choice(fillers)} was {'lovely' if s else 'awful'} {'yeah right' if r else 'honestly'}"
        for s, r in zip(sentiment, sarcasm)
    ]
    return texts, sentiment, sarcasm


def _task_losses(model, data) -> np.ndarray:
    sentiment, sarcasm = predict_multitask(model, data, 2)
    labels = data.tensors[-2:]
    return np.array(
        [
            torch.nn.functional.cross_entropy(torch.from_numpy(logits), y).item()
            for logits, y in zip((sentiment, sarcasm), labels)
        ]
    )


@pytest.mark.parametrize("pcgrad", [False, True])
def test_crosstalk_on_a_tiny_model_lowers_both_task_losses(pcgrad):
    from workbench.encoders import load_encoder

    encoder = load_encoder("tiny", device="cpu")
    texts, sentiment, sarcasm = _toy_texts()
    batch = encoder.tokenize(texts, max_length=16)
    data = torch.utils.data.TensorDataset(
        batch["input_ids"], batch["attention_mask"], torch.tensor(sentiment), torch.tensor(sarcasm)
    )
    torch.manual_seed(0)
    head = build("head", "crosstalk", encoder.hidden_size, 2, channels=16, task_dim=8)
    model = SequenceClassifier(encoder.model, head)
    before = _task_losses(model, data)
    config = TrainConfig(epochs=8, lr=3e-3, batch_size=8, seed=0, progress=False, device="cpu")
    history = fit_multitask(model, data, None, config, pcgrad=pcgrad, task_names=("sentiment", "sarcasm"))
    after = _task_losses(model, data)
    assert np.all(after < 0.7 * before), f"losses before {before}, after {after}"
    frame = history.frame()
    assert {"train_loss_sentiment", "train_loss_sarcasm"} <= set(frame.columns)
    assert ("conflict_rate" in frame.columns) == pcgrad


def test_fit_multitask_is_repeatable_with_the_same_seed():
    states = torch.randn(24, 6, 8, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(24, 6, dtype=torch.bool)
    y1, y2 = (states[:, 0, 0] > 0).long(), (states[:, 0, 1] > 0).long()
    data = torch.utils.data.TensorDataset(states, mask, y1, y2)
    results = []
    for _ in range(2):
        torch.manual_seed(123)  # different global state each time must not matter: fit_multitask seeds itself
        head = build("head", "crosstalk", 8, 2, channels=8, task_dim=4)
        config = TrainConfig(epochs=3, lr=1e-2, batch_size=6, seed=5, progress=False, device="cpu")
        history = fit_multitask(head, data, data, config, pcgrad=True)
        results.append((history.frame(), predict_multitask(head, data)))
    assert results[0][0].drop(columns="seconds").equals(results[1][0].drop(columns="seconds"))
    assert all(np.array_equal(a, b) for a, b in zip(results[0][1], results[1][1]))


def test_fit_multitask_can_stop_on_the_summed_dev_loss():
    states = torch.randn(40, 6, 8, generator=torch.Generator().manual_seed(2))
    mask = torch.ones(40, 6, dtype=torch.bool)
    data = torch.utils.data.TensorDataset(states, mask, (states[:, 0, 0] > 0).long(), (states[:, 0, 1] > 0).long())
    torch.manual_seed(0)
    head = build("head", "crosstalk", 8, 2, channels=8, task_dim=4)
    config = TrainConfig(epochs=5, lr=1e-2, batch_size=8, seed=0, monitor="loss", progress=False, device="cpu")
    history = fit_multitask(head, data, data, config, pcgrad=True)
    losses = history.frame()["dev_loss"].to_numpy()
    assert history.best_epoch == int(np.argmin(losses))
    # summed class-weighted cross-entropy of the restored model equals the best recorded dev loss
    weights = [class_weights(t.numpy(), 2) for t in data.tensors[2:]]
    logits = predict_multitask(head, data)
    summed = sum(
        torch.nn.functional.cross_entropy(torch.from_numpy(out), y, weight=w).item()
        for out, y, w in zip(logits, data.tensors[2:], weights)
    )
    assert summed == pytest.approx(losses.min(), rel=1e-4)


def test_fit_multitask_gives_pcgrad_losses_that_do_not_reach_the_other_task_classifier(monkeypatch):
    import workbench.methods.pcgrad as pcgrad_module

    states = torch.randn(16, 5, 8, generator=torch.Generator().manual_seed(4))
    mask = torch.ones(16, 5, dtype=torch.bool)
    data = torch.utils.data.TensorDataset(states, mask, (states[:, 0, 0] > 0).long(), (states[:, 0, 1] > 0).long())
    head = build("head", "crosstalk", 8, 2, channels=8, task_dim=4)
    reached, original = [], pcgrad_module.pcgrad_backward

    def recording(losses, params, generator=None):
        sentiment_to_sarcasm = torch.autograd.grad(
            losses[0], [head.sarcasm_classifier.weight], retain_graph=True, allow_unused=True
        )[0]
        reached.append(sentiment_to_sarcasm is not None)
        return original(losses, params, generator)

    monkeypatch.setattr(pcgrad_module, "pcgrad_backward", recording)
    config = TrainConfig(epochs=1, lr=1e-2, batch_size=8, seed=0, progress=False, device="cpu")
    fit_multitask(head, data, None, config, pcgrad=True)
    assert reached and not any(reached)
