"""Our implementations against the reference ones where those are installed (`pip install -e ".[crosscheck]"`):
PCGrad against torchjd's aggregator, SupCon against pytorch-metric-learning, class weights against scikit-learn.
Each test is skipped when its reference package is absent."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.methods.multilevel import supervised_contrastive_loss
from workbench.methods.pcgrad import pcgrad_backward, project_conflicting
from workbench.training import class_weights


@pytest.mark.parametrize("tasks, dim, seed", [(2, 5, 0), (3, 7, 1), (4, 16, 2), (5, 3, 3)])
def test_pcgrad_projection_matches_torchjd(tasks, dim, seed):
    aggregation = pytest.importorskip("torchjd.aggregation")
    grads = torch.randn(tasks, dim, generator=torch.Generator().manual_seed(100 + seed), dtype=torch.float64)
    if tasks == 2:  # make sure the pair conflicts, so the projection is exercised
        grads[1] = -grads[0] + 0.3 * grads[1]
    assert any(grads[i] @ grads[j] < 0 for i in range(tasks) for j in range(i + 1, tasks))
    # torchjd draws its visiting orders from the global generator, we from ours: seeded alike, the orders agree
    torch.manual_seed(seed)
    expected = aggregation.PCGrad()(grads)
    ours = torch.stack(project_conflicting(list(grads), torch.Generator().manual_seed(seed))).sum(0)
    torch.testing.assert_close(ours, expected, rtol=1e-9, atol=1e-12)
    assert not torch.allclose(ours, grads.sum(0))  # the surgery changed something


def test_pcgrad_backward_matches_torchjd_on_the_shared_parameters():
    aggregation = pytest.importorskip("torchjd.aggregation")
    torch.manual_seed(0)
    shared, head_a, head_b = nn.Linear(6, 4), nn.Linear(4, 3), nn.Linear(4, 2)
    x = torch.randn(10, 6)
    hidden = torch.tanh(shared(x))
    losses = [
        nn.functional.cross_entropy(head_a(hidden), torch.randint(0, 3, (10,))),
        -nn.functional.cross_entropy(head_b(hidden), torch.randint(0, 2, (10,))),  # pulls the other way
    ]
    params = [*shared.parameters(), *head_a.parameters(), *head_b.parameters()]
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, list(shared.parameters()), retain_graph=True)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    plain = [torch.autograd.grad(losses[0], list(head_a.parameters()), retain_graph=True)]
    diagnostics = pcgrad_backward(losses, params)
    assert diagnostics["conflict"] == 1.0
    expected = aggregation.PCGrad()(torch.stack(rows))  # two tasks: the visiting order does not matter
    ours = torch.cat([p.grad.reshape(-1) for p in shared.parameters()])
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    for param, grad in zip(head_a.parameters(), plain[0]):  # a task's own head keeps its plain gradient
        torch.testing.assert_close(param.grad, grad)


@pytest.mark.parametrize("temperature", [0.07, 0.1, 0.5])
@pytest.mark.parametrize("batch, classes, seed", [(8, 2, 0), (16, 3, 1), (33, 5, 2)])
def test_supcon_matches_pytorch_metric_learning(temperature, batch, classes, seed):
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, 12, generator=generator, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, classes, (batch,), generator=generator)
    labels[0], labels[1] = 0, 0  # at least one positive pair
    labels[-1] = classes + 1  # an anchor without any positive: both skip it
    ours = supervised_contrastive_loss(features, labels, temperature)
    reference = losses.SupConLoss(temperature=temperature)(features, labels)
    torch.testing.assert_close(ours, reference.to(ours.dtype), rtol=1e-6, atol=1e-8)
    (g_ours,) = torch.autograd.grad(ours, features)
    (g_ref,) = torch.autograd.grad(losses.SupConLoss(temperature=temperature)(features, labels), features)
    torch.testing.assert_close(g_ours, g_ref.to(g_ours.dtype), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    "labels, num_classes",
    [([0, 0, 0, 1], 2), ([0, 1, 2, 2, 2, 2, 1], 3), (list(np.random.default_rng(0).integers(0, 4, 101)), 4)],
)
def test_class_weights_match_scikit_learn_balanced(labels, num_classes):
    sklearn_weights = pytest.importorskip("sklearn.utils.class_weight")
    expected = sklearn_weights.compute_class_weight("balanced", classes=np.arange(num_classes), y=np.asarray(labels))
    np.testing.assert_allclose(class_weights(labels, num_classes).numpy(), expected, rtol=1e-6)


def test_class_weights_match_scikit_learn_with_an_absent_class():
    sklearn_weights = pytest.importorskip("sklearn.utils.class_weight")
    labels = np.array([0, 0, 2, 2, 2, 3])  # class 1 never occurs: sklearn weighs the present classes only
    present = np.unique(labels)
    expected = sklearn_weights.compute_class_weight("balanced", classes=present, y=labels)
    ours = class_weights(labels, 4).numpy()
    np.testing.assert_allclose(ours[present], expected, rtol=1e-6)
    assert ours[1] == 0.0
