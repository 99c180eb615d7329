"""Customized gate control (Tang et al., RecSys 2020, the one-level PLE).

Each task has its own experts and a gate over its own plus the shared
experts: ``h_t = sum_e softmax(W_t x_t)_e * e(x_t or x_s)`` for ``e`` in
``specific[t] + shared``. :class:`CGCLevel` is the part PLE stacks: in its
lower levels a *shared gate* over all experts also produces the next level's
shared input.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from ranker.backbones.base import Backbone, check_experts
from ranker.experts.base import Expert, ExpertInput

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
        n_shared = len(self.shared)
        outs_all = self._run_experts(task_inputs, shared_input)  # [n_all, B, d]
        shared_outs = outs_all[len(outs_all) - n_shared :]  # [S, B, d]
        outs: dict[str, Tensor] = {}
        start = 0
        for task in self.tasks:
            n_own = len(self._specific[task])
            own = outs_all[start : start + n_own]  # [n_t, B, d]
            start += n_own
            gate = self.gates[task](task_inputs[task].flat).softmax(-1).t().unsqueeze(-1)
            # gate: [n_t + S, B, 1]; a broadcast multiply-sum is much cheaper on CPU
            # than a bmm of B tiny [1, n] x [n, d] products
            outs[task] = (gate[:n_own] * own).sum(0) + (gate[n_own:] * shared_outs).sum(0)
        if self.shared_gate is None:
            return outs, None
        gate = self.shared_gate(shared_input.flat).softmax(-1).t().unsqueeze(-1)  # [n_all, B, 1]
        return outs, (gate * outs_all).sum(0)  # [B, d]

    def _run_experts(
        self, task_inputs: Mapping[str, ExpertInput], shared_input: ExpertInput
    ) -> Tensor:
        """Every expert's output, ``[n_all, B, d]``: each task's own in task order, then shared."""
        outs = [e(task_inputs[t]) for t in self.tasks for e in self._specific[t]]
        outs += [e(shared_input) for e in self.shared]
        return torch.stack(outs, 0)

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
