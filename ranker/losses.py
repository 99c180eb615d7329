"""Per-task training losses: masked binary cross-entropy per sample space.

The default loss of every head (:meth:`ranker.heads.Heads.losses`); a module of
its own so that the heads and the trainer both import it without a cycle
(:mod:`ranker.train` imports the model, which imports the heads).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ranker.tasks import TaskSpec

__all__ = ["task_losses"]


def task_losses(
    logits: Mapping[str, Tensor], labels: Mapping[str, Tensor], tasks: Sequence[TaskSpec]
) -> dict[str, Tensor]:
    """Binary cross-entropy per task, each a mean over the rows of its sample space.

    For ``"after:x"`` only rows with ``labels[x] == 1`` count; labels of other rows
    have no effect on the loss or its gradients. A space with no rows gives 0.

    Args:
        logits: Task -> ``[B]`` logits.
        labels: Task -> ``[B]`` float labels.
        tasks: The tasks to compute.

    Returns:
        Task -> scalar loss.

    Example:
        >>> z, y = {"c": torch.zeros(2)}, {"c": torch.tensor([0.0, 1.0])}
        >>> round(task_losses(z, y, [TaskSpec("c")])["c"].item(), 4)
        0.6931
    """
    out: dict[str, Tensor] = {}
    for task in tasks:
        z, y = logits[task.name], labels[task.name]  # [B], [B]
        if task.parent is None:
            out[task.name] = F.binary_cross_entropy_with_logits(z, y)
            continue
        space = labels[task.parent] == 1  # [B] bool
        y = torch.where(space, y, torch.zeros_like(y))  # masked labels never reach the graph
        bce = F.binary_cross_entropy_with_logits(z, y, reduction="none")  # [B]
        bce = torch.where(space, bce, torch.zeros_like(bce))
        out[task.name] = bce.sum() / space.sum().clamp(min=1)
    return out
