"""Independent towers: one MLP per task ending in a single logit, with optional transfer.

A *transfer* edge ``(source, target)`` feeds the source tower's last hidden
state, with its gradient stopped, into the target tower next to the target's
own representation (as in AITM and DBMTL, where what the click tower learned
informs the conversion tower); the source is not trained by the target's loss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from ranker.experts.mlp import make_mlp
from ranker.heads.base import HeadOutputs, Heads

__all__ = ["Towers", "transfer_order"]


def transfer_order(tasks: Sequence[str], transfer: Sequence[tuple[str, str]]) -> list[str]:
    """Tasks ordered so that every transfer source comes before its targets.

    Args:
        tasks: Task names in model order.
        transfer: ``(source, target)`` edges.

    Raises:
        ValueError: An edge names an unknown task, a task itself, repeats, or edges form a cycle.

    Example:
        >>> transfer_order(["cvr", "click"], [("click", "cvr")])
        ['click', 'cvr']
    """
    names = list(tasks)
    seen: set[tuple[str, str]] = set()
    for edge in transfer:
        src, dst = edge
        for name in (src, dst):
            if name not in names:
                raise ValueError(
                    f"transfer edge {edge!r} names unknown task {name!r}; tasks: {names}"
                )
        if src == dst or edge in seen:
            raise ValueError(f"transfer edge {edge!r} is a self-loop or repeated")
        seen.add((src, dst))
    order: list[str] = []
    pending = list(names)
    while pending:
        ready = [t for t in pending if all(s in order for s, d in transfer if d == t)]
        if not ready:
            raise ValueError(f"transfer edges {list(transfer)} form a cycle among {pending}")
        order += ready
        pending = [t for t in pending if t not in ready]
    return order


class Towers(Heads):
    """One ``MLP -> Linear(., 1)`` tower per task.

    Args:
        in_dims: Task -> width of its representation from the backbone.
        hidden: Hidden widths of every tower (may be empty: a linear head).
        dropout: Dropout probability after each hidden layer.
        transfer: ``(source, target)`` edges: the target tower also reads the
            source tower's last hidden state (gradient stopped).

    Example:
        >>> towers = Towers({"click": 4, "cvr": 4}, (8,), transfer=[("click", "cvr")])
        >>> towers({"click": torch.zeros(3, 4), "cvr": torch.zeros(3, 4)})["cvr"].shape
        torch.Size([3])
    """

    def __init__(
        self,
        in_dims: Mapping[str, int],
        hidden: Sequence[int],
        dropout: float = 0.0,
        transfer: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__()
        self.tasks = tuple(in_dims)
        self.transfer = tuple((str(s), str(d)) for s, d in transfer)
        self.order = transfer_order(self.tasks, self.transfer)
        self.sources = {t: [s for s, d in self.transfer if d == t] for t in self.tasks}
        out_width = {t: hidden[-1] if hidden else dim for t, dim in in_dims.items()}
        self.hidden_dims = out_width
        self.towers = nn.ModuleDict()
        self._parts: dict[str, tuple[nn.Module, nn.Module]] = {}  # typed view: (mlp, linear)
        for task, dim in in_dims.items():
            width = dim + sum(out_width[s] for s in self.sources[task])
            mlp, linear = make_mlp(width, hidden, dropout), nn.Linear(out_width[task], 1)
            self.towers[task] = nn.Sequential(mlp, linear)
            self._parts[task] = (mlp, linear)

    def hidden_states(self, reps: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Task -> last hidden state ``[B, hidden_dims[t]]`` (inputs to the final Linear)."""
        states: dict[str, Tensor] = {}
        for task in self.order:
            x = reps[task]  # [B, d_task]
            if self.sources[task]:
                moved = [states[s].detach() for s in self.sources[task]]  # stop-gradient
                x = torch.cat([x, *moved], dim=1)  # [B, d_task + sum(hidden of sources)]
            states[task] = self._parts[task][0](x)  # [B, hidden_dims[t]]
        return states

    def forward(self, reps: dict[str, Tensor]) -> dict[str, Tensor]:
        """Map task -> ``[B, d_task]`` to task -> logits ``[B]`` (in model task order)."""
        if not self.transfer:
            return HeadOutputs(
                {t: tower(reps[t]).squeeze(-1) for t, tower in self.towers.items()}  # [B]
            )
        states = self.hidden_states(reps)
        return HeadOutputs({t: self._parts[t][1](states[t]).squeeze(-1) for t in self.tasks})
