"""Progressive layered extraction (Tang et al., RecSys 2020): stacked CGC levels.

Level 1 reads the embedded features. Each lower level also mixes *all* its
experts with a shared gate; level ``l + 1``'s task ``t`` experts read level
``l``'s task-``t`` output and its shared experts read the shared output. The
top level has no shared gate; its task outputs are the representations.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from torch import Tensor, nn

from ranker.backbones.base import Backbone
from ranker.backbones.cgc import CGCLevel
from ranker.experts.base import ExpertInput

__all__ = ["PLE"]


class PLE(Backbone):
    """A stack of :class:`CGCLevel`: shared gates on all but the top one.

    Args:
        levels: Bottom to top; each level's ``in_dim`` is the ``out_dim`` of the one below.

    Example:
        >>> import torch
        >>> from ranker.experts import MLPExpert
        >>> def level(d_in, gate):
        ...     return CGCLevel({"a": [MLPExpert(d_in, (4,))]}, [MLPExpert(d_in, (4,))], gate)
        >>> ple = PLE([level(8, True), level(4, False)])
        >>> ple(torch.zeros(3, 8))["a"].shape
        torch.Size([3, 4])
    """

    def __init__(self, levels: Sequence[CGCLevel]) -> None:
        super().__init__()
        if not levels:
            raise ValueError("PLE needs at least one level")
        for i, level in enumerate(levels):
            top = i == len(levels) - 1
            if (level.shared_gate is None) != top:
                raise ValueError(
                    f"PLE level {i + 1} of {len(levels)}: "
                    + ("the top level has no shared gate" if top else "needs a shared gate")
                )
            if level.tasks != levels[0].tasks:
                raise ValueError(
                    f"PLE level {i + 1} has tasks {level.tasks}, level 1 has {levels[0].tasks}"
                )
            if i and level.in_dim != levels[i - 1].out_dim:
                raise ValueError(
                    f"PLE level {i + 1} expects in_dim {level.in_dim}, "
                    f"level {i} gives {levels[i - 1].out_dim}"
                )
        self.levels = nn.ModuleList(levels)
        self._levels = tuple(levels)  # typed view of the same modules
        self.in_dim = levels[0].in_dim
        self.out_dims = {t: levels[-1].out_dim for t in levels[0].tasks}

    def forward(self, inp: ExpertInput | Tensor) -> dict[str, Tensor]:
        """Map ``inp`` (flat ``[B, in_dim]``, fields for FM experts) to task -> ``[B, d]``."""
        inp = ExpertInput.of(inp)
        tasks = self._levels[0].tasks
        task_inputs, shared_input = {t: inp for t in tasks}, inp
        outs: dict[str, Tensor] = {}
        for level in self._levels:
            outs, shared = level(task_inputs, shared_input)  # task -> [B, d], [B, d] | None
            if shared is not None:
                task_inputs = {t: ExpertInput(h) for t, h in outs.items()}
                shared_input = ExpertInput(shared)
        return outs

    def last_shared_parameters(self) -> Iterator[Tensor]:
        """The top level's shared experts' output layer weights (the towers read its mix)."""
        return self._levels[-1].last_shared_parameters()

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Shared experts everywhere; all of a lower level that feeds its shared gate."""
        levels = self._levels
        for i, level in enumerate(levels):
            nxt = levels[i + 1].shared_gate is not None if i + 1 < len(levels) else False
            yield from level.shared_parameters(next_has_shared_gate=nxt)
