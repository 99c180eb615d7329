"""CGC/PLE mixing by broadcast multiply-sum gives what the former bmm mixing gave."""

from __future__ import annotations

import torch
from torch import Tensor

from ranker.backbones import PLE, CGCLevel
from ranker.experts import ExpertInput, MLPExpert

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
