"""CGC/PLE fast paths (batched MLP experts, one-bmm gate mixing) equal the plain loop."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from ranker.backbones import PLE, CGCLevel
from ranker.experts import DCNExpert, ExpertInput, MLPExpert
from ranker.experts.batched import run_mlp_group

TASKS = ("a", "b", "c")


def _reference(
    level: CGCLevel, task_inputs: dict[str, ExpertInput], shared_input: ExpertInput
) -> tuple[dict[str, Tensor], Tensor | None]:
    """The former ``CGCLevel.forward``: per-task ``cat`` and a bmm of ``[1, n] x [n, d]``."""
    shared_outs = torch.stack([e(shared_input) for e in level.shared], 1)
    outs: dict[str, Tensor] = {}
    owns: list[Tensor] = []
    for task in level.tasks:
        x = task_inputs[task]
        own = torch.stack([e(x) for e in level.specific[task]], 1)
        owns.append(own)
        gate = level.gates[task](x.flat).softmax(-1).unsqueeze(1)
        outs[task] = torch.bmm(gate, torch.cat([own, shared_outs], 1)).squeeze(1)
    if level.shared_gate is None:
        return outs, None
    every = torch.cat([*owns, shared_outs], 1)
    gate = level.shared_gate(shared_input.flat).softmax(-1).unsqueeze(1)
    return outs, torch.bmm(gate, every).squeeze(1)


def _level(d_in: int, shared_gate: bool) -> CGCLevel:
    specific = {t: [MLPExpert(d_in, (6, 4)) for _ in range(i + 1)] for i, t in enumerate(TASKS)}
    return CGCLevel(specific, [MLPExpert(d_in, (6, 4)) for _ in range(2)], shared_gate)


def _ple_reference(ple: PLE, x: Tensor) -> dict[str, Tensor]:
    inp = ExpertInput(x)
    task_inputs, shared_input = {t: inp for t in TASKS}, inp
    outs: dict[str, Tensor] = {}
    for level in ple.levels:
        assert isinstance(level, CGCLevel)
        outs, shared = _reference(level, task_inputs, shared_input)
        if shared is not None:
            task_inputs = {t: ExpertInput(h) for t, h in outs.items()}
            shared_input = ExpertInput(shared)
    return outs


def test_level_matches_former_mixing_on_distinct_inputs() -> None:
    torch.manual_seed(0)
    level = _level(5, shared_gate=True)
    task_inputs = {t: ExpertInput(torch.randn(7, 5)) for t in TASKS}
    shared_input = ExpertInput(torch.randn(7, 5))
    outs, shared = level(task_inputs, shared_input)
    ref_outs, ref_shared = _reference(level, task_inputs, shared_input)
    assert shared is not None and ref_shared is not None
    torch.testing.assert_close(shared, ref_shared, rtol=0, atol=1e-6)
    for t in TASKS:
        torch.testing.assert_close(outs[t], ref_outs[t], rtol=0, atol=1e-6)


def test_ple_outputs_and_gradients_match_former_mixing() -> None:
    torch.manual_seed(1)
    ple = PLE([_level(5, True), _level(4, True), _level(4, False)])
    x = torch.randn(9, 5)
    new, ref = ple(x), _ple_reference(ple, x)
    for t in TASKS:
        torch.testing.assert_close(new[t], ref[t], rtol=0, atol=1e-6)
    params = list(ple.parameters())
    g_new = torch.autograd.grad(sum(o.square().sum() for o in new.values()), params)
    g_ref = torch.autograd.grad(sum(o.square().sum() for o in ref.values()), params)
    for a, b in zip(g_new, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


# ---------------------------------------------------------------- batched MLP experts


@pytest.mark.parametrize("per_expert_input", [False, True])
@pytest.mark.parametrize("hidden", [(6,), (6, 4), (8, 6, 4)])
def test_batched_mlp_group_equals_a_loop_of_experts(
    per_expert_input: bool, hidden: tuple[int, ...]
) -> None:
    torch.manual_seed(2)
    experts = [MLPExpert(5, hidden) for _ in range(3)]
    x = torch.randn(3, 7, 5) if per_expert_input else torch.randn(7, 5)
    x.requires_grad_(True)
    got = run_mlp_group(experts, x)
    ref = torch.stack([e(x[i] if per_expert_input else x) for i, e in enumerate(experts)])
    assert got.shape == (3, 7, hidden[-1])
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)
    params = [x, *(p for e in experts for p in e.parameters())]
    g_got = torch.autograd.grad(got.square().sum(), params)
    g_ref = torch.autograd.grad(ref.square().sum(), params)
    for a, b in zip(g_got, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_levels_batch_only_identical_plain_mlps_and_keep_mixed_kinds() -> None:
    torch.manual_seed(3)
    specific = {
        "a": [MLPExpert(5, (6, 4)), DCNExpert(5, 1, 4)],
        "b": [MLPExpert(5, (6, 4)), MLPExpert(5, (3, 4))],
        "c": [MLPExpert(5, (6, 4), dropout=0.1)],
    }
    level = CGCLevel(specific, [MLPExpert(5, (6, 4)), DCNExpert(5, 2, 4)], shared_gate=True)
    # everyone: a0 a1(dcn) b0 b1(other shape) c0(dropout) s0 s1(dcn)
    assert level._groups == ((0, 2, 5),)
    assert level._singles == (1, 3, 4, 6)
    level.eval()  # dropout off: the loop and the level must agree exactly
    for distinct in (False, True):
        shared_input = ExpertInput(torch.randn(7, 5))
        task_inputs = {
            t: ExpertInput(torch.randn(7, 5)) if distinct else shared_input for t in specific
        }
        outs, shared = level(task_inputs, shared_input)
        ref_outs, ref_shared = _reference(level, task_inputs, shared_input)
        assert shared is not None and ref_shared is not None
        torch.testing.assert_close(shared, ref_shared, rtol=0, atol=1e-6)
        for t in specific:
            torch.testing.assert_close(outs[t], ref_outs[t], rtol=0, atol=1e-6)


def test_state_dict_keys_are_the_separate_experts() -> None:
    level = _level(5, shared_gate=True)
    keys = set(level.state_dict())
    assert "specific.a.0.net.0.weight" in keys and "shared.1.net.2.bias" in keys
    assert not any("gate_cells" in k for k in keys)
