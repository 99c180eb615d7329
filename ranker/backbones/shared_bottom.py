"""Shared-bottom (Caruana, 1997): one bottom network every task reads unchanged.

The bottom may be several experts side by side (e.g. an MLP next to a DCN-v2
cross network, DCN-v2's parallel structure); their outputs are concatenated.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import cast

import torch
from torch import Tensor, nn

from ranker.backbones.base import Backbone
from ranker.experts.base import Expert, ExpertInput

__all__ = ["SharedBottom"]


class SharedBottom(Backbone):
    """Experts on the same input, outputs concatenated, the same vector for every task.

    Args:
        experts: The bottom's parts; same ``in_dim``, any ``out_dim``.
        tasks: Task names.

    Example:
        >>> from ranker.experts import DCNExpert, MLPExpert
        >>> sb = SharedBottom([MLPExpert(8, (4,)), DCNExpert(8, 1, 2)], ["click", "like"])
        >>> sb(torch.zeros(3, 8))["click"].shape
        torch.Size([3, 6])
    """

    def __init__(self, experts: Sequence[Expert], tasks: Sequence[str]) -> None:
        super().__init__()
        if not experts:
            raise ValueError("SharedBottom needs at least one expert")
        in_dims = sorted({int(e.in_dim) for e in experts})
        if len(in_dims) != 1:
            raise ValueError(f"SharedBottom experts must share in_dim, got {in_dims}")
        self.in_dim = in_dims[0]
        self.tasks = tuple(tasks)
        self.experts = nn.ModuleList(experts)
        width = sum(int(e.out_dim) for e in experts)
        self.out_dims = {t: width for t in self.tasks}

    def forward(self, inp: ExpertInput | Tensor) -> dict[str, Tensor]:
        """Map ``inp`` (flat ``[B, in_dim]``) to task -> the shared ``[B, sum(out_dims)]``."""
        inp = ExpertInput.of(inp)
        h = torch.cat([e(inp) for e in self.experts], dim=1)  # [B, width]
        return {t: h for t in self.tasks}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter: the whole bottom is shared."""
        return self.experts.parameters()

    def last_shared_parameters(self) -> Iterator[Tensor]:
        """The output layer weights of the bottom's parts (concatenated, they are its last)."""
        for e in self.experts:
            yield from cast(Expert, e).output_weights()
