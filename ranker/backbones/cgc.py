"""Customized gate control (Tang et al., RecSys 2020, the one-level PLE).

Each task has its own experts and a gate over its own plus the shared
experts: ``h_t = sum_e softmax(W_t x_t)_e * e(x_t or x_s)`` for ``e`` in
``specific[t] + shared``. :class:`CGCLevel` is the part PLE stacks: in its
lower levels a *shared gate* over all experts also produces the next level's
shared input.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ranker.backbones.base import Backbone, check_experts
from ranker.experts.base import Expert, ExpertInput
from ranker.experts.batched import mlp_signature, run_mlp_group
from ranker.experts.mlp import MLPExpert

__all__ = ["CGC", "CGCLevel"]


class CGCLevel(nn.Module):
    """One extraction level: task-specific and shared experts, a gate per task.

    Task ``t``'s experts and gate read task ``t``'s input; the shared experts
    and the shared gate read the shared input (in the first level all inputs
    are the same embedded features).

    Args:
        specific: Task -> its own experts (at least one each).
        shared: Experts every task's gate sees (at least one).
        shared_gate: Also mix *all* experts with a gate on the shared input, giving
            the shared output the next PLE level reads.

    Example:
        >>> from ranker.experts import ExpertInput, MLPExpert
        >>> level = CGCLevel({"a": [MLPExpert(8, (4,))]}, [MLPExpert(8, (4,))], True)
        >>> x = ExpertInput(torch.zeros(2, 8))
        >>> outs, shared = level({"a": x}, x)
        >>> outs["a"].shape, shared.shape
        (torch.Size([2, 4]), torch.Size([2, 4]))
    """

    def __init__(
        self,
        specific: Mapping[str, Sequence[Expert]],
        shared: Sequence[Expert],
        shared_gate: bool = False,
    ) -> None:
        super().__init__()
        if not specific:
            raise ValueError("CGCLevel needs at least one task")
        for task, experts in specific.items():
            if not experts:
                raise ValueError(f"CGCLevel: task {task!r} has no specific experts")
        everyone = [e for exps in specific.values() for e in exps] + list(shared)
        if not shared:
            raise ValueError("CGCLevel needs at least one shared expert")
        self.in_dim, self.out_dim = check_experts(everyone, "CGCLevel")
        self.tasks = tuple(specific)
        self.specific = nn.ModuleDict({t: nn.ModuleList(e) for t, e in specific.items()})
        # Typed views of the same modules (plain tuples are not registered twice).
        self._specific = {t: tuple(e) for t, e in specific.items()}
        self.shared = nn.ModuleList(shared)
        n_shared = len(shared)
        self.gates = nn.ModuleDict(
            {t: nn.Linear(self.in_dim, len(e) + n_shared) for t, e in specific.items()}
        )
        self.shared_gate = nn.Linear(self.in_dim, len(everyone)) if shared_gate else None
        # Expert i (task experts in task order, then shared) reads task _reads[i]'s input,
        # or the shared input where None.
        self._everyone = tuple(everyone)
        self._reads: tuple[str | None, ...] = tuple(
            [t for t, e in specific.items() for _ in e] + [None] * n_shared
        )
        # Plain MLP experts of one shape run as one batched computation (run_mlp_group);
        # any other expert (FM, DCN-v2, a lone MLP) runs on its own.
        by_signature: dict[object, list[int]] = {}
        for i, e in enumerate(everyone):
            sig = mlp_signature(e)
            by_signature.setdefault(("own", i) if sig is None else sig, []).append(i)
        self._groups = tuple(tuple(idx) for idx in by_signature.values() if len(idx) > 1)
        grouped = {i for idx in self._groups for i in idx}
        self._singles = tuple(i for i in range(len(everyone)) if i not in grouped)
        # Every gate's logits, concatenated (task gates in task order, then the shared gate),
        # land at these positions of a [n_gates * n_all] grid; the rest stay -inf, so one
        # softmax per grid row gives each gate's weights with exact zeros elsewhere.
        n_all, cells, start = len(everyone), [], 0
        for row, own in enumerate(specific.values()):
            sees = [*range(start, start + len(own)), *range(n_all - n_shared, n_all)]
            cells += [row * n_all + e for e in sees]
            start += len(own)
        if shared_gate:
            cells += [len(specific) * n_all + e for e in range(n_all)]
        self._n_gates = len(specific) + int(shared_gate)
        self.register_buffer("_gate_cells", torch.tensor(cells), persistent=False)

    def forward(
        self, task_inputs: Mapping[str, ExpertInput], shared_input: ExpertInput
    ) -> tuple[dict[str, Tensor], Tensor | None]:
        """Run the level.

        Args:
            task_inputs: Task -> its input (flat ``[B, in_dim]``).
            shared_input: The shared experts' input (flat ``[B, in_dim]``).

        Returns:
            Task -> ``[B, out_dim]``, and the shared output ``[B, out_dim]`` (None
            without a shared gate).
        """
        outs_all = self._run_experts(task_inputs, shared_input)  # [n_all, B, d]
        n_all, batch = outs_all.shape[0], outs_all.shape[1]
        logits = self._gate_logits(task_inputs, shared_input)  # [B, sum of gate sizes]
        grid = logits.new_full((batch, self._n_gates * n_all), float("-inf"))
        grid = grid.index_copy(1, cast(Tensor, self._gate_cells), logits)
        weights = grid.view(batch, self._n_gates, n_all).float().softmax(-1)  # [B, G, n_all]
        # One bmm mixes every gate; slicing outs_all per task instead costs a zero-filled
        # [n_all, B, d] gradient per slice in the backward pass.
        mixed = torch.bmm(weights, outs_all.transpose(0, 1)).unbind(1)  # G x [B, d]
        outs = dict(zip(self.tasks, mixed, strict=False))
        return outs, (mixed[-1] if self.shared_gate is not None else None)

    def _gate_logits(
        self, task_inputs: Mapping[str, ExpertInput], shared_input: ExpertInput
    ) -> Tensor:
        """Every gate's logits side by side, ``[B, sum of gate sizes]`` (tasks, then shared)."""
        gates: list[nn.Linear] = [cast(nn.Linear, self.gates[t]) for t in self.tasks]
        if self.shared_gate is not None:
            gates.append(self.shared_gate)
        if all(task_inputs[t].flat is shared_input.flat for t in self.tasks):
            # one input: all gates in one matmul
            weight = torch.cat([g.weight for g in gates])  # [sum sizes, in]
            bias = torch.cat([g.bias for g in gates])
            return F.linear(shared_input.flat, weight, bias)
        xs = [task_inputs[t].flat for t in self.tasks] + [shared_input.flat]
        return torch.cat([g(x) for g, x in zip(gates, xs, strict=False)], 1)

    def _run_experts(
        self, task_inputs: Mapping[str, ExpertInput], shared_input: ExpertInput
    ) -> Tensor:
        """Every expert's output, ``[n_all, B, d]``: each task's own in task order, then shared."""
        common = all(task_inputs[t].flat is shared_input.flat for t in self.tasks)

        def input_of(i: int) -> ExpertInput:
            task = self._reads[i]
            return shared_input if task is None else task_inputs[task]

        def group_input(idx: tuple[int, ...]) -> Tensor:
            if common:
                return shared_input.flat  # [B, in], one GEMM for the group's first layer
            return torch.stack([input_of(i).flat for i in idx])  # [E, B, in]

        groups = self._groups
        if not self._singles and len(groups) == 1:  # every expert in one group, in order
            experts = [cast(MLPExpert, e) for e in self._everyone]
            return run_mlp_group(experts, group_input(groups[0]))
        outs: list[Tensor | None] = [None] * len(self._everyone)
        for idx in groups:
            experts = [cast(MLPExpert, self._everyone[i]) for i in idx]
            for i, y in zip(idx, run_mlp_group(experts, group_input(idx)).unbind(0), strict=True):
                outs[i] = y
        for i in self._singles:
            outs[i] = self._everyone[i](input_of(i))
        return torch.stack(cast(list[Tensor], outs), 0)

    def last_shared_parameters(self) -> Iterator[Tensor]:
        """The output layer weights of this level's shared experts."""
        for e in self.shared:
            yield from cast(Expert, e).output_weights()

    def shared_parameters(self, next_has_shared_gate: bool) -> Iterator[nn.Parameter]:
        """Parameters more than one task's loss flows through.

        Args:
            next_has_shared_gate: The level above mixes all its experts on a
                shared input, so this level's task gates reach every task too.
        """
        yield from self.shared.parameters()
        if self.shared_gate is not None:  # every expert feeds the shared output
            yield from self.specific.parameters()
            yield from self.shared_gate.parameters()
            if next_has_shared_gate:
                yield from self.gates.parameters()


class CGC(Backbone):
    """Single-level CGC backbone: every expert reads the embedded features.

    Args:
        specific: Task -> its own experts (at least one each).
        shared: Shared experts (at least one).

    Example:
        >>> from ranker.experts import MLPExpert
        >>> cgc = CGC({t: [MLPExpert(8, (4,))] for t in ("a", "b")}, [MLPExpert(8, (4,))])
        >>> cgc(torch.zeros(3, 8))["b"].shape
        torch.Size([3, 4])
    """

    def __init__(self, specific: Mapping[str, Sequence[Expert]], shared: Sequence[Expert]) -> None:
        super().__init__()
        self.level = CGCLevel(specific, shared, shared_gate=False)
        self.in_dim = self.level.in_dim
        self.out_dims = {t: self.level.out_dim for t in self.level.tasks}

    def forward(self, inp: ExpertInput | Tensor) -> dict[str, Tensor]:
        """Map ``inp`` (flat ``[B, in_dim]``) to task -> ``[B, out_dim]``."""
        inp = ExpertInput.of(inp)
        outs, _ = self.level({t: inp for t in self.level.tasks}, inp)
        return outs

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """The shared experts (task experts and gates serve one task each)."""
        return self.level.shared_parameters(next_has_shared_gate=False)

    def last_shared_parameters(self) -> Iterator[Tensor]:
        """The shared experts' output layer weights."""
        return self.level.last_shared_parameters()
