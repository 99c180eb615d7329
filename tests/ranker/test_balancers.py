from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ranker import TrainConfig, build_mmoe, encode_features, encode_labels, task_losses, train
from ranker.balancers import (
    BALANCERS,
    BaseBalancer,
    DWABalancer,
    GradNormBalancer,
    PCGradBalancer,
    PECBalancer,
    StaticBalancer,
    UncertaintyBalancer,
    pcgrad,
)
from tests.ranker.synth import FEATURES, SMALL, TASKS, make_data

TASK_NAMES = [t.name for t in TASKS]


# --- PCGrad -------------------------------------------------------------------------------


def test_pcgrad_projects_conflicting_gradients_as_in_the_paper() -> None:
    g1 = torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)
    g2 = torch.tensor([-2.0, 1.0, -1.0], dtype=torch.float64)
    dot = float(g1 @ g2)
    assert dot < 0
    g1_pc = g1 - dot / float(g2 @ g2) * g2  # onto the normal plane of g2
    g2_pc = g2 - dot / float(g1 @ g1) * g1
    assert abs(float(g1_pc @ g2)) < 1e-12 and abs(float(g2_pc @ g1)) < 1e-12
    got = pcgrad(torch.stack([g1, g2]), torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, g1_pc + g2_pc, rtol=0, atol=1e-12)
    # not the plain sum
    assert not torch.allclose(got, g1 + g2)


def test_pcgrad_leaves_non_conflicting_gradients_unchanged() -> None:
    grads = torch.tensor([[1.0, 0.0, 2.0], [0.5, 1.0, 0.0], [0.0, 3.0, 1.0]])
    assert bool(((grads @ grads.T) >= 0).all())
    torch.testing.assert_close(pcgrad(grads), grads.sum(0), rtol=0, atol=0)


def test_pcgrad_balancer_edits_shared_gradients_only() -> None:
    shared = torch.tensor([1.0, 1.0], requires_grad=True)
    head_a = torch.tensor(2.0, requires_grad=True)
    head_b = torch.tensor(3.0, requires_grad=True)
    # grad_shared L_a = [1, -1] * head_a, grad_shared L_b = [-1, 2] * head_b: conflicting
    losses = {
        "a": head_a * (shared[0] - shared[1]),
        "b": head_b * (2 * shared[1] - shared[0]),
    }
    PCGradBalancer(["a", "b"]).backward(losses, shared=[shared])
    ga, gb = torch.tensor([2.0, -2.0]), torch.tensor([-3.0, 6.0])
    expected = pcgrad(torch.stack([ga, gb]))
    assert shared.grad is not None and head_a.grad is not None and head_b.grad is not None
    torch.testing.assert_close(shared.grad, expected)
    torch.testing.assert_close(head_a.grad, torch.tensor(0.0))  # shared[0] - shared[1]
    torch.testing.assert_close(head_b.grad, torch.tensor(1.0))
    with pytest.raises(ValueError, match="shared parameters"):
        PCGradBalancer(["a", "b"]).backward(losses)


# --- GradNorm -----------------------------------------------------------------------------


@pytest.mark.slow
def test_gradnorm_moves_toward_equal_weighted_gradient_norms() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(128, 4, generator=gen)
    y_a, y_b = x @ torch.randn(4, generator=gen), x @ torch.randn(4, generator=gen)
    torch.manual_seed(0)
    trunk, head_a, head_b = nn.Linear(4, 8), nn.Linear(8, 1), nn.Linear(8, 1)
    balancer = GradNormBalancer(["a", "b"], alpha=0.0)
    params = [*trunk.parameters(), *head_a.parameters(), *head_b.parameters()]
    opt = torch.optim.Adam([*params, *balancer.parameters()], lr=0.02)
    ratios = []
    for _ in range(150):
        h = torch.relu(trunk(x))
        losses = {
            "a": F.mse_loss(head_a(h).squeeze(1), y_a),
            "b": 100.0 * F.mse_loss(head_b(h).squeeze(1), y_b),  # gradients ~100x larger
        }
        opt.zero_grad(set_to_none=True)
        balancer.backward(losses, shared=list(trunk.parameters()))
        g = balancer.last_grad_norms
        assert g is not None
        ratios.append(abs(math.log(float(g[0] / g[1]))))
        opt.step()
    assert ratios[0] > math.log(10)
    assert ratios[-1] < 0.25 * ratios[0], (ratios[0], ratios[-1])
    w = balancer.current_weights()
    assert w["b"] < 0.2 * w["a"]
    assert math.isclose(sum(w.values()), 2.0, rel_tol=1e-5)


@pytest.mark.parametrize("arch", ["mmoe", "shared_bottom", "cgc", "ple"])
def test_last_shared_layer_is_the_shared_experts_output_weights(arch: str) -> None:
    from ranker import BUILDERS, MLPExpert

    config_cls, builder = BUILDERS[arch]
    model = builder(FEATURES, TASKS, config_cls(expert_kinds=("mlp", "dcn")))
    backbone = model.backbone
    if arch in ("mmoe", "shared_bottom"):
        experts = list(backbone.experts)
    elif arch == "cgc":
        experts = list(backbone.level.shared)
    else:  # the top level's shared experts; lower levels' feed it, they are not last
        experts = list(backbone.levels[-1].shared)
    expected = []
    for e in experts:
        expected.append(e.linears[-1].weight if isinstance(e, MLPExpert) else e.project[0].weight)
    last = list(model.last_shared_parameters())
    assert [id(p) for p in last] == [id(p) for p in expected]
    shared = {id(p) for p in model.shared_parameters()}
    assert all(id(p) in shared for p in last)
    assert sum(p.numel() for p in last) < sum(p.numel() for p in model.shared_parameters())


@pytest.mark.parametrize(("layer", "source"), [("last", "last_shared"), ("all", "shared")])
def test_train_hands_gradnorm_the_layer_it_asks_for(layer: str, source: str) -> None:
    seen: list[list[int]] = []

    class Spy(GradNormBalancer):
        def backward(self, losses, shared=()):  # type: ignore[no-untyped-def]
            seen.append([id(p) for p in shared])
            return super().backward(losses, shared)

    data = make_data(600, seed=5)
    model = build_mmoe(FEATURES, TASKS, SMALL)
    balancer = Spy(TASK_NAMES, layer=layer)
    train(model, data, data, TrainConfig(epochs=1, batch_size=300), False, balancer=balancer)
    expected = [id(p) for p in getattr(model, f"{source}_parameters")() if p.requires_grad]
    assert seen and all(ids == expected for ids in seen)
    assert GradNormBalancer(TASK_NAMES).gradient_scope == "last"  # the paper's default
    with pytest.raises(ValueError, match=r"layer must be one of \['last', 'all'\]"):
        GradNormBalancer(TASK_NAMES, layer="first")


# --- uncertainty --------------------------------------------------------------------------


def test_uncertainty_learns_larger_variance_for_the_noisier_task() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(256, 3, generator=gen)
    beta = torch.tensor([1.0, -2.0, 0.5])
    y_quiet = x @ beta + 0.1 * torch.randn(256, generator=gen)
    y_noisy = x @ beta + 1.0 * torch.randn(256, generator=gen)
    quiet, noisy = nn.Linear(3, 1), nn.Linear(3, 1)
    balancer = UncertaintyBalancer(["quiet", "noisy"])
    opt = torch.optim.Adam(
        [*quiet.parameters(), *noisy.parameters(), *balancer.parameters()], lr=0.1
    )
    for _ in range(150):
        losses = {
            "quiet": F.mse_loss(quiet(x).squeeze(1), y_quiet),
            "noisy": F.mse_loss(noisy(x).squeeze(1), y_noisy),
        }
        opt.zero_grad(set_to_none=True)
        balancer.backward(losses)
        opt.step()
    var = balancer.variances()
    assert var["noisy"] > 10 * var["quiet"], var
    # at the optimum s_k = log L_k: the variance tracks the residual loss
    assert math.isclose(var["noisy"], float(losses["noisy"].detach()), rel_tol=0.1)


# --- DWA ----------------------------------------------------------------------------------


def test_dwa_weights_follow_the_formula_on_a_hand_made_history() -> None:
    b = DWABalancer(["a", "b", "c"], temperature=2.0)
    history = [
        {"a": 1.0, "b": 2.0, "c": 0.5},
        {"a": 0.5, "b": 1.8, "c": 0.5},
        {"a": 0.4, "b": 1.0, "c": 0.6},
    ]
    b.on_epoch_end(history[0])
    assert b.current_weights() == {"a": 1.0, "b": 1.0, "c": 1.0}  # epochs 1 and 2: equal
    b.on_epoch_end(history[1])
    b.on_epoch_end(history[2])
    r = {"a": 0.4 / 0.5, "b": 1.0 / 1.8, "c": 0.6 / 0.5}
    z = sum(math.exp(v / 2.0) for v in r.values())
    expected = {t: 3 * math.exp(v / 2.0) / z for t, v in r.items()}
    got = b.current_weights()
    for t in expected:
        assert math.isclose(got[t], expected[t], rel_tol=1e-6), (t, got, expected)
    loss = b.combine({t: torch.tensor(1.0) for t in "abc"})
    assert math.isclose(float(loss), 3.0, rel_tol=1e-6)


# --- PEC ----------------------------------------------------------------------------------


def _two_vector_min_norm(
    g1: np.ndarray, g2: np.ndarray, lo: list[float], hi: list[float]
) -> float:
    """w_1 minimizing ||w g1 + (1 - w) g2||, clipped to the bounds of both weights."""
    w = float((g2 - g1) @ g2 / ((g1 - g2) @ (g1 - g2)))
    return min(max(w, lo[0], 1 - hi[1]), hi[0], 1 - lo[1])


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ({}, {}),  # interior optimum
        ({"b": 0.6}, {}),  # lower bound of b binds
        ({}, {"a": 0.3}),  # upper bound of a binds
        ({"a": 0.1, "b": 0.1}, {"a": 0.9, "b": 0.9}),
    ],
)
def test_pec_returns_the_bounded_min_norm_point_of_two_gradients(lower, upper) -> None:  # type: ignore[no-untyped-def]
    g1 = np.array([3.0, 1.0, 0.0])
    g2 = np.array([-1.0, 2.0, 0.5])
    b = PECBalancer(["a", "b"], lower=lower, upper=upper)
    w = b.solve(torch.tensor(np.stack([g1, g2]))).numpy()
    lo = [lower.get("a", 0.0), lower.get("b", 0.0)]
    hi = [upper.get("a", 1.0), upper.get("b", 1.0)]
    expected = _two_vector_min_norm(g1, g2, lo, hi)
    assert abs(w[0] - expected) < 1e-7, (w, expected)
    assert math.isclose(w.sum(), 1.0, abs_tol=1e-12)
    assert all(lo[k] - 1e-12 <= w[k] <= hi[k] + 1e-12 for k in range(2))


def test_pec_unconstrained_matches_closed_form_and_bounds_change_it() -> None:
    g1, g2 = np.array([3.0, 1.0, 0.0]), np.array([-1.0, 2.0, 0.5])
    free = _two_vector_min_norm(g1, g2, [0.0, 0.0], [1.0, 1.0])
    assert 0.0 < free < 1.0 and free < 0.6  # interior, so the bound below must bind
    w = PECBalancer(["a", "b"], lower={"a": 0.6}).solve(torch.tensor(np.stack([g1, g2])))
    assert abs(float(w[0]) - 0.6) < 1e-9


def test_pec_backward_uses_the_solved_weights() -> None:
    shared = torch.tensor([0.0, 0.0], requires_grad=True)
    losses = {"a": shared @ torch.tensor([3.0, 1.0]), "b": shared @ torch.tensor([-1.0, 2.0])}
    b = PECBalancer(["a", "b"])
    b.backward(losses, shared=[shared])
    w = b.current_weights()
    expected = w["a"] * torch.tensor([3.0, 1.0]) + w["b"] * torch.tensor([-1.0, 2.0])
    assert shared.grad is not None
    torch.testing.assert_close(shared.grad, expected)
    free = _two_vector_min_norm(np.array([3.0, 1.0]), np.array([-1.0, 2.0]), [0, 0], [1, 1])
    assert abs(w["a"] - free) < 1e-6


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"lower": {"a": 0.7, "b": 0.5}}, r"sum lower = 1\.2"),
        ({"upper": {"a": 0.3, "b": 0.3}}, r"sum upper = 0\.6"),
        ({"lower": {"z": 0.1}}, r"unknown task\(s\) \['z'\]"),
        ({"lower": {"a": 0.5}, "upper": {"a": 0.4}}, r"lower > upper for task\(s\) \['a'\]"),
        ({"upper": {"a": 1.5}}, r"upper for \['a'\] must be in \[0, 1\]"),
    ],
)
def test_pec_bad_bounds_raise(kwargs, pattern) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=pattern):
        PECBalancer(["a", "b"], **kwargs)


# --- contract over every balancer ---------------------------------------------------------


# the balancers that solve for or project gradients step several times slower: their
# runs of the contract tests are left to the full suite (`pytest -m "not slow"` skips them)
EVERY_BALANCER = [
    pytest.param(name, marks=pytest.mark.slow) if name in {"gradnorm", "pcgrad", "pec"} else name
    for name in sorted(BALANCERS)
]


@pytest.fixture(scope="module")
def tiny() -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    data = make_data(256, seed=7)
    model = build_mmoe(FEATURES, TASKS, SMALL)
    cat, num = encode_features(data.features, model.features)
    return cat, num, encode_labels(data.labels, model.tasks)


@pytest.mark.parametrize("name", EVERY_BALANCER)
def test_every_balancer_trains_the_mmoe_and_reduces_the_loss(name, tiny) -> None:  # type: ignore[no-untyped-def]
    cat, num, labels = tiny
    model = build_mmoe(FEATURES, TASKS, SMALL, seed=1)
    model.embedding.fit_numeric(num)
    balancer = BALANCERS[name].build(TASK_NAMES)
    assert isinstance(balancer, BaseBalancer) and balancer.tasks == tuple(TASK_NAMES)
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    opt = torch.optim.Adam([*model.parameters(), *balancer.parameters()], lr=1e-2)

    def plain_loss() -> float:
        with torch.no_grad():
            return sum(
                float(v) for v in task_losses(model(cat, num), labels, model.tasks).values()
            )

    before = plain_loss()
    for _ in range(15):
        losses = task_losses(model(cat, num), labels, model.tasks)
        opt.zero_grad(set_to_none=True)
        balancer.backward(losses, shared)
        balancer.on_epoch_end({t: float(v.detach()) for t, v in losses.items()})
        opt.step()
    after = plain_loss()
    assert after < 0.9 * before, (name, before, after)
    assert all(math.isfinite(w) and w >= 0 for w in balancer.current_weights().values())


@pytest.mark.parametrize("name", EVERY_BALANCER)
def test_same_seed_gives_identical_weights_with_every_balancer(name) -> None:  # type: ignore[no-untyped-def]
    train_data, valid_data = make_data(600, seed=3), make_data(200, seed=4)
    config = TrainConfig(epochs=3, batch_size=128, patience=3, seed=5)
    runs = []
    for _ in range(2):
        balancer = BALANCERS[name].build(TASK_NAMES)
        result = train(
            build_mmoe(FEATURES, TASKS, SMALL),
            train_data,
            valid_data,
            config,
            progress=False,
            balancer=balancer,
        )
        runs.append((result, balancer))
    (r1, b1), (r2, b2) = runs
    for key, value in r1.model.state_dict().items():
        assert torch.equal(value, r2.model.state_dict()[key]), key
    for key, value in b1.state_dict().items():
        assert torch.equal(value, b2.state_dict()[key]), key
    for h1, h2 in zip(r1.history, r2.history, strict=True):
        for key in h1:
            if key not in ("seconds", "rows_per_s", "rows_per_cpu_s"):
                assert h1[key] == h2[key], key
        assert set(TASK_NAMES) == {k.split("/")[1] for k in h1 if k.startswith("loss_weight/")}


@pytest.mark.slow
def test_train_with_dwa_changes_weights_after_two_epochs() -> None:
    train_data, valid_data = make_data(600, seed=3), make_data(200, seed=4)
    config = TrainConfig(epochs=3, batch_size=128, patience=3)
    result = train(
        build_mmoe(FEATURES, TASKS, SMALL),
        train_data,
        valid_data,
        config,
        progress=False,
        balancer=DWABalancer(TASK_NAMES),
    )
    h = result.history
    assert [h[0][f"loss_weight/{t}"] for t in TASK_NAMES] == [1.0, 1.0, 1.0]
    assert [h[1][f"loss_weight/{t}"] for t in TASK_NAMES] == [1.0, 1.0, 1.0]
    third = [h[2][f"loss_weight/{t}"] for t in TASK_NAMES]
    assert third != [1.0, 1.0, 1.0] and math.isclose(sum(third), 3.0, rel_tol=1e-5)
    # early stopping ranks epochs by the fixed unweighted sum, not the moving weighted one
    assert math.isclose(
        h[2]["valid_loss"], sum(h[2][f"valid_loss/{t}"] for t in TASK_NAMES), rel_tol=1e-6
    )


def test_static_balancer_build_matches_train_default() -> None:
    b = BALANCERS["static"].build(TASK_NAMES, weights={"like": 2.0})
    assert b.current_weights() == {"click": 1.0, "like": 2.0, "conversion": 1.0}
    assert isinstance(b, StaticBalancer)
    with pytest.raises(ValueError, match=r"options \['alpha'\] unknown"):
        StaticBalancer.build(TASK_NAMES, alpha=1.0)


@pytest.mark.parametrize(
    ("balancer", "config", "pattern"),
    [
        (DWABalancer(["click", "ctr"]), TrainConfig(), r"task\(s\) \['ctr'\] the model does not"),
        (DWABalancer(TASK_NAMES), TrainConfig(loss_weights={"click": 1.0}), "not both"),
    ],
)
def test_train_rejects_mismatched_balancers(balancer, config, pattern) -> None:  # type: ignore[no-untyped-def]
    data = make_data(20, seed=0)
    with pytest.raises(ValueError, match=pattern):
        train(
            build_mmoe(FEATURES, TASKS, SMALL),
            data,
            data,
            config,
            progress=False,
            balancer=balancer,
        )
