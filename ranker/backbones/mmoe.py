"""Multi-gate mixture of experts (Ma et al., KDD 2018).

Every task mixes the outputs of the same experts with its own softmax gate
over the input: ``h_t = sum_e softmax(W_t x)_e * expert_e(x)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import cast

import torch
from torch import Tensor, nn

from ranker.backbones.base import Backbone, check_experts
from ranker.experts.base import Expert, ExpertInput

__all__ = ["MMoE"]


class MMoE(Backbone):
    """MMoE over experts passed in (any mix of kinds); one linear softmax gate per task.

    Args:
        experts: The shared experts; all with the same ``in_dim`` and ``out_dim``.
        tasks: Task names, one gate each.

    Example:
        >>> from ranker.experts import MLPExpert
        >>> mmoe = MMoE([MLPExpert(8, (16, 4)) for _ in range(3)], ["click", "like"])
        >>> mmoe(torch.zeros(5, 8))["like"].shape
        torch.Size([5, 4])
    """

    def __init__(self, experts: Sequence[Expert], tasks: Sequence[str]) -> None:
        super().__init__()
        self.in_dim, out_dim = check_experts(list(experts), "MMoE")
        self.tasks = tuple(tasks)
        self.experts = nn.ModuleList(experts)
        # All gates in one Linear: [in_dim] -> [n_tasks * n_experts], one matmul per batch.
        self.gates = nn.Linear(self.in_dim, len(self.tasks) * len(experts))
        self.out_dims = {t: out_dim for t in self.tasks}

    def forward(self, inp: ExpertInput | Tensor) -> dict[str, Tensor]:
        """Mix the experts per task.

        Args:
            inp: Flat ``[B, in_dim]`` input (and fields, for FM experts).

        Returns:
            Task -> ``[B, out_dim]``.
        """
        inp = ExpertInput.of(inp)
        n_exp = len(self.experts)
        outs = torch.stack([e(inp) for e in self.experts], dim=1)  # [B, n_experts, out_dim]
        gates = self.gates(inp.flat).view(-1, len(self.tasks), n_exp).float().softmax(-1)
        mixed = torch.bmm(gates, outs)  # [B, T, out_dim]
        return {t: mixed[:, i] for i, t in enumerate(self.tasks)}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """The experts' parameters (gates are per task)."""
        return self.experts.parameters()

    def last_shared_parameters(self) -> Iterator[Tensor]:
        """Every expert's output layer weights (the experts side by side are the last layer)."""
        for e in self.experts:
            yield from cast(Expert, e).output_weights()
