"""Contract tests over every backbone x head, and ground-truth checks of the parts."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ranker import (
    BUILDERS,
    CategoricalFeature,
    CGCConfig,
    FieldStack,
    FMExpert,
    MMoEConfig,
    MultiTaskModel,
    NumericFeature,
    PLEConfig,
    SharedBottomConfig,
    TaskSpec,
    build_mmoe,
    build_model,
    load_checkpoint,
    model_fingerprint,
    predict,
    save_checkpoint,
)
from ranker.configs import EXPERT_NAMES, HEAD_NAMES
from ranker.experts import CrossLayer, ExpertInput, fm_interaction
from ranker.heads import entire_space_losses, ips_risk
from ranker.model import EXPERT_KINDS, HEAD_KINDS

# Categorical widths differ from field_dim on purpose: the field stack must project them.
FEATURES = [
    CategoricalFeature("user", vocab_size=20, dim=4),
    CategoricalFeature("item", vocab_size=30, dim=6),
    NumericFeature("x0"),
    NumericFeature("x1"),
]
TASKS = [TaskSpec("click"), TaskSpec("like"), TaskSpec("conversion", sample_space="after:click")]
DEEP = [TaskSpec("click"), TaskSpec("cart", "after:click"), TaskSpec("buy", "after:cart")]
PARTS = {
    "expert_hidden": (16, 8),
    "tower_hidden": (8,),
    "expert_kinds": ("mlp", "fm", "dcn"),
    "cross_layers": 1,
    "field_dim": 4,
}
CONFIGS = {
    "mmoe": MMoEConfig(n_experts=3, **PARTS),
    "shared_bottom": SharedBottomConfig(**PARTS),
    "cgc": CGCConfig(n_shared=2, n_specific=1, **PARTS),
    "ple": PLEConfig(n_shared=2, n_specific=1, n_levels=2, **PARTS),
}
B = 64


def batch(tasks: list[TaskSpec], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, dict]:  # type: ignore[type-arg]
    """A tiny batch whose labels depend on the features (so a few steps can fit it)."""
    g = torch.Generator().manual_seed(seed)
    cat = torch.stack(
        [torch.randint(0, 20, (B,), generator=g), torch.randint(0, 30, (B,), generator=g)], 1
    )
    num = torch.randn(B, 2, generator=g)
    labels: dict[str, torch.Tensor] = {}
    for i, task in enumerate(tasks):
        p = torch.sigmoid(num[:, i % 2] * (1.5 if i % 2 else -1.5) + (cat[:, 0] % 3 - 1.0))
        y = (torch.rand(B, generator=g) < p).float()
        labels[task.name] = y * labels[task.parent] if task.parent else y
    return cat, num, labels


def total_loss(model: MultiTaskModel, cat, num, labels) -> torch.Tensor:  # type: ignore[no-untyped-def]
    return sum(model.losses(model(cat, num), labels).values())  # type: ignore[return-value]


def fit(model: MultiTaskModel, tasks: list[TaskSpec], steps: int) -> tuple[float, float]:
    cat, num, labels = batch(tasks)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = last = float("nan")
    for step in range(steps):
        loss = total_loss(model, cat, num, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 0:
            first = float(loss.detach())
    with torch.no_grad():
        last = float(total_loss(model, cat, num, labels))
    return first, last


def config(kind: str, **changes: object):  # type: ignore[no-untyped-def]
    import dataclasses

    return dataclasses.replace(CONFIGS[kind], **changes)


def test_registries_match_the_config_names() -> None:
    assert set(EXPERT_KINDS) == set(EXPERT_NAMES)
    assert set(HEAD_KINDS) == set(HEAD_NAMES)
    assert set(BUILDERS) == {"mmoe", "shared_bottom", "cgc", "ple"}


@pytest.mark.parametrize(("kind", "head"), list(itertools.product(CONFIGS, HEAD_NAMES)))
def test_every_backbone_and_head_scores_by_task_and_trains(kind: str, head: str) -> None:
    model = build_model(kind, FEATURES, TASKS, config(kind, head=head), seed=1)
    cat, num, labels = batch(TASKS)
    out = model(cat, num)
    assert list(out) == [t.name for t in TASKS]
    for z in out.values():
        assert z.shape == (B,) and z.dtype == torch.float32
    assert list(model.losses(out, labels)) == [t.name for t in TASKS]
    assert model.fields is not None  # an FM expert is mixed in
    first, last = fit(model, TASKS, steps=6)
    assert last < first, (kind, head, first, last)


def test_same_seed_gives_identical_weights_after_training() -> None:
    def trained(seed: int) -> dict[str, torch.Tensor]:
        cfg = config("ple", head="escm2_dr", dropout=0.1, transfer=(("click", "conversion"),))
        model = build_model("ple", FEATURES, TASKS, cfg, seed=seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # dropout
            fit(model, TASKS, steps=4)
        return model.state_dict()

    a, b, c = trained(5), trained(5), trained(6)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_esmm_ctcvr_is_exactly_ctr_times_cvr_and_predict_stays_conditional() -> None:
    model = build_model("mmoe", FEATURES, TASKS, config("mmoe", head="esmm"))
    cat, num, labels = batch(TASKS)
    model.eval()
    with torch.no_grad():
        z = model(cat, num)
        probs = model.entire_space_probs(z)
    assert torch.equal(
        probs["conversion"], torch.sigmoid(z["click"]) * torch.sigmoid(z["conversion"])
    )
    assert torch.equal(probs["like"], torch.sigmoid(z["like"]))
    # losses: CTR and CTCVR over all impressions; CVR never on its own
    losses = model.losses(z, labels)
    ctcvr = F.binary_cross_entropy(probs["conversion"].double(), labels["conversion"].double())
    assert losses["conversion"].item() == pytest.approx(ctcvr.item(), rel=1e-5)
    ctr = F.binary_cross_entropy_with_logits(z["click"], labels["click"])
    assert losses["click"].item() == pytest.approx(ctr.item(), rel=1e-6)
    features = {
        "user": cat[:, 0].numpy(),
        "item": cat[:, 1].numpy(),
        "x0": num[:, 0].numpy(),
        "x1": num[:, 1].numpy(),
    }
    p = predict(model, features)["conversion"]
    np.testing.assert_allclose(p, torch.sigmoid(z["conversion"].double()).numpy(), rtol=1e-6)


def test_chain_products_follow_the_declared_chain() -> None:
    model = build_model("cgc", FEATURES, DEEP, config("cgc", head="chain"))
    cat, num, labels = batch(DEEP)
    z = model(cat, num)
    probs = model.entire_space_probs(z)
    s = {t: torch.sigmoid(v) for t, v in z.items()}
    assert torch.equal(probs["buy"], s["click"] * s["cart"] * s["buy"])
    expected = F.binary_cross_entropy(probs["buy"].double(), labels["buy"].double())
    assert model.losses(z, labels)["buy"].item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match=r"head='chain'"):
        build_model("cgc", FEATURES, DEEP, config("cgc", head="esmm"))


def test_ips_risk_weights_clicked_rows_by_inverse_ctr_without_gradient_into_ctr() -> None:
    g = torch.Generator().manual_seed(0)
    z_ctr = torch.randn(8, generator=g, requires_grad=True)
    z_cvr = torch.randn(8, generator=g, requires_grad=True)
    clicked = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0], dtype=torch.float32)
    y = torch.tensor([1, 1, 0, 1, 0, 1, 0, 0], dtype=torch.float32)  # y on unclicked rows: unused
    p_ctr = torch.sigmoid(z_ctr)
    risk = ips_risk(z_cvr, y, clicked, p_ctr, min_propensity=1e-6)
    bce = F.binary_cross_entropy_with_logits(z_cvr, y, reduction="none")
    expected = (clicked * bce / p_ctr).sum() / 8
    assert risk.item() == pytest.approx(expected.item(), rel=1e-6)
    risk.backward()
    assert z_ctr.grad is None  # the weight 1 / pCTR carries no gradient
    assert z_cvr.grad is not None and (z_cvr.grad[clicked == 0] == 0).all()


def test_escm2_adds_the_counterfactual_risk_to_ctcvr_and_nothing_reaches_ctr() -> None:
    tasks = [TaskSpec("click"), TaskSpec("conversion", "after:click")]
    model = build_model("mmoe", FEATURES, tasks, config("mmoe", head="escm2_ips", cf_weight=0.5))
    cat, num, labels = batch(tasks)
    z = {t: v.detach().requires_grad_() for t, v in model(cat, num).items()}
    escm2 = model.losses(z, labels)["conversion"]
    ctcvr = entire_space_losses(z, labels, tasks)["conversion"]
    p = torch.sigmoid(z["click"]).detach().clamp(min=0.01)
    risk = ips_risk(z["conversion"], labels["conversion"], labels["click"], p)
    assert escm2.item() == pytest.approx((ctcvr + 0.5 * risk).item(), rel=1e-6)
    (grad_ctr,) = torch.autograd.grad(escm2 - ctcvr, z["click"])
    assert torch.count_nonzero(grad_ctr) == 0


def test_escm2_dr_trains_its_imputation_tower_and_reduces_to_ips_without_it() -> None:
    model = build_model("shared_bottom", FEATURES, TASKS, config("shared_bottom", head="escm2_dr"))
    cat, num, labels = batch(TASKS)
    out = model(cat, num)
    assert sorted(out.aux) == ["imputed_error/conversion"]  # type: ignore[attr-defined]
    assert (out.aux["imputed_error/conversion"] >= 0).all()  # type: ignore[attr-defined]
    model.losses(out, labels)["conversion"].backward()
    imputation = model.heads.imputation
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in imputation.parameters())
    plain = dict(out)  # aux lost: the DR estimate with zero imputation, i.e. IPS
    ips_model_losses = model.losses(plain, labels)["conversion"]
    ctcvr = entire_space_losses(plain, labels, TASKS)["conversion"]
    p = torch.sigmoid(plain["click"]).detach().clamp(min=0.01)
    risk = ips_risk(plain["conversion"], labels["conversion"], labels["click"], p)
    assert ips_model_losses.item() == pytest.approx((ctcvr + risk).item(), rel=1e-6)


def test_transfer_passes_hidden_state_with_stop_gradient() -> None:
    cfg = config("mmoe", head="towers", transfer=(("click", "conversion"),))
    model = build_model("mmoe", FEATURES, TASKS, cfg)
    cat, num, labels = batch(TASKS)
    model.losses(model(cat, num), labels)["conversion"].backward()
    click_tower = model.heads.towers["click"]
    assert all(p.grad is None for p in click_tower.parameters())
    conv_in = model.heads.towers["conversion"][0][0].in_features
    assert conv_in == 8 + 8  # own representation + click tower's last hidden state
    with pytest.raises(ValueError, match=r"cycle"):
        build_model(
            "mmoe",
            FEATURES,
            TASKS,
            config("mmoe", transfer=(("click", "like"), ("like", "click"))),
        )
    with pytest.raises(ValueError, match=r"unknown task 'nope'"):
        build_model("mmoe", FEATURES, TASKS, config("mmoe", transfer=(("nope", "like"),)))


def test_fm_interaction_equals_the_brute_force_pairwise_sum() -> None:
    v = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    brute = sum(v[:, i] * v[:, j] for i in range(5) for j in range(i + 1, 5))
    torch.testing.assert_close(fm_interaction(v), brute)
    fm = FMExpert(7, 4, 1).double()
    flat = torch.randn(3, 7, dtype=torch.float64)
    logit = fm(ExpertInput(flat, v))
    torch.testing.assert_close(logit[:, 0], fm.linear(flat)[:, 0] + brute.sum(-1))


def test_field_stack_slices_projects_and_scales() -> None:
    stack = FieldStack([2, 3], 1, 2)
    flat = torch.arange(6, dtype=torch.float32).view(1, 6)
    fields = stack(flat)
    assert fields.shape == (1, 3, 2)
    torch.testing.assert_close(fields[0, 0], stack.projections[0](flat[:, :2])[0])
    torch.testing.assert_close(fields[0, 2], 5.0 * stack.numeric_vectors[0])
    same = FieldStack([2, 2], 0, 2)  # same widths: a reshape, no parameters but the empty table
    torch.testing.assert_close(same(flat[:, :4])[0], flat[0, :4].view(2, 2))


def test_dcn_cross_layer_equals_the_formula() -> None:
    layer = CrossLayer(3).double()
    x0 = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    xl = torch.tensor([[0.3, 0.1, -1.0]], dtype=torch.float64)
    w, b = layer.linear.weight, layer.linear.bias
    torch.testing.assert_close(layer(x0, xl), x0 * (xl @ w.T + b) + xl)


@pytest.mark.parametrize(
    ("kind", "head", "extra"),
    [
        ("mmoe", "escm2_dr", {}),
        ("shared_bottom", "esmm", {}),
        ("cgc", "chain", {"transfer": (("click", "conversion"),)}),
        ("ple", "escm2_ips", {"n_levels": 3}),
    ],
)
def test_checkpoint_round_trip_for_every_kind(tmp_path: Path, kind: str, head: str, extra) -> None:  # type: ignore[no-untyped-def]
    model = build_model(kind, FEATURES, TASKS, config(kind, head=head, **extra), seed=2)
    cat, num, _ = batch(TASKS)
    model.embedding.fit_numeric(num)
    fit(model, TASKS, steps=2)
    path = tmp_path / f"{kind}.pt"
    fp = save_checkpoint(path, model, {"kind": kind})
    loaded, meta = load_checkpoint(path)
    assert meta["kind"] == kind and model_fingerprint(loaded) == fp
    assert loaded.spec == model.spec
    model.eval()
    with torch.no_grad():
        before, after = model(cat, num), loaded(cat, num)
    for task in before:
        assert torch.equal(before[task], after[task])


def test_build_mmoe_default_is_unchanged() -> None:
    model = build_mmoe(FEATURES, TASKS)
    assert model.fields is None
    assert type(model.heads).__name__ == "Towers"
    keys = set(model.state_dict())
    assert "heads.towers.click.0.0.weight" in keys and "backbone.gates.weight" in keys
    assert not any(k.startswith("fields") for k in keys)


def test_shared_parameters_follow_what_feeds_several_tasks() -> None:
    cgc = build_model("cgc", FEATURES, TASKS, CONFIGS["cgc"])
    shared = {id(p) for p in cgc.shared_parameters()}
    level = cgc.backbone.level
    assert {id(p) for p in level.shared.parameters()} <= shared
    assert not {id(p) for p in level.specific.parameters()} & shared
    assert not {id(p) for p in level.gates.parameters()} & shared
    ple = build_model("ple", FEATURES, TASKS, CONFIGS["ple"])
    shared = {id(p) for p in ple.shared_parameters()}
    low, top = ple.backbone.levels
    assert {id(p) for p in low.specific.parameters()} <= shared  # feeds the shared gate
    assert not {id(p) for p in low.gates.parameters()} & shared  # top has no shared gate
    assert not {id(p) for p in top.specific.parameters()} & shared
    assert {id(p) for p in ple.fields.parameters()} <= shared  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda: MMoEConfig(expert_kinds=("xgb",)), r"expert_kinds.*'mlp', 'fm', 'dcn'"),
        (lambda: PLEConfig(head="nope"), r"PLEConfig.head must be one of"),
        (lambda: CGCConfig(n_shared=0), r"CGCConfig.n_shared must be an int >= 1"),
        (lambda: PLEConfig(n_levels=0), r"n_levels"),
        (lambda: MMoEConfig(transfer=(("a", "a"),)), r"transfer"),
        (lambda: SharedBottomConfig(cf_weight=-1.0), r"cf_weight"),
        (lambda: build_model("dnn", FEATURES, TASKS), r"unknown architecture 'dnn'.*'cgc'"),
        (lambda: build_model("cgc", FEATURES, TASKS, MMoEConfig()), r"'cgc' needs a CGCConfig"),
        (
            lambda: build_model("mmoe", FEATURES, [TaskSpec("a")], MMoEConfig(head="escm2_ips")),
            r"ESCM2 heads need a task with sample_space 'after:",
        ),
    ],
)
def test_bad_architecture_settings_raise_naming_the_setting(make, pattern) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=pattern):
        make()
