"""Chained entire-space heads (ESM2, Wen et al. SIGIR 2020; DBMTL-style chains).

Tasks form chains through their sample spaces (``impression -> click ->
cart -> buy`` as ``cart: "after:click"``, ``buy: "after:cart"``). Each tower
still predicts its *conditional* probability, but every task is supervised
over all impressions on its *unconditional* probability, the product of the
conditionals along its chain, against the product of the chain's labels. No
task is trained only on the rows its parent selected, so none suffers the
sample-selection bias of learning on clicked rows alone, and the sparse deep
tasks borrow the dense upper ones' signal. ESMM is the two-step case.

``forward`` (and so ``predict``) returns the conditional logits, as every head
does; :func:`~ranker.heads.base.entire_space_probs` gives the unconditional
probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor

from ranker.heads.base import (
    Heads,
    bce_from_log_prob,
    entire_space_labels,
    entire_space_log_probs,
)
from ranker.heads.towers import Towers
from ranker.tasks import TaskSpec, validate_tasks

__all__ = ["ChainHeads", "entire_space_losses"]


def entire_space_losses(
    logits: Mapping[str, Tensor], labels: Mapping[str, Tensor], tasks: Sequence[TaskSpec]
) -> dict[str, Tensor]:
    """Per task, the mean cross-entropy of its unconditional probability over all rows.

    For a root task this is its ordinary cross-entropy; for ``cvr: "after:ctr"``
    it is the CTCVR loss ``BCE(pCTR * pCVR, y_ctr * y_cvr)``, so the CVR tower
    is never supervised on its own.

    Args:
        logits: Task -> ``[B]`` logits (conditional for "after:x" tasks).
        labels: Task -> ``[B]`` float labels.
        tasks: The model's tasks.

    Returns:
        Task -> scalar loss.

    Example:
        >>> import torch
        >>> ts = [TaskSpec("ctr"), TaskSpec("cvr", "after:ctr")]
        >>> z = {"ctr": torch.zeros(2), "cvr": torch.zeros(2)}
        >>> y = {"ctr": torch.tensor([1.0, 0.0]), "cvr": torch.tensor([1.0, 1.0])}
        >>> round(entire_space_losses(z, y, ts)["cvr"].item(), 4)  # (-log .25 - log .75) / 2
        0.837
    """
    log_p = entire_space_log_probs(logits, tasks)  # task -> [B]
    y = entire_space_labels(labels, tasks)  # task -> [B]
    out: dict[str, Tensor] = {}
    for task in tasks:
        if task.parent is None:  # exact and stable on the logit
            out[task.name] = F.binary_cross_entropy_with_logits(logits[task.name], y[task.name])
        else:
            out[task.name] = bce_from_log_prob(log_p[task.name], y[task.name]).mean()
    return out


class ChainHeads(Heads):
    """Towers trained on the entire space along the ``"after:"`` chains of the tasks.

    Args:
        towers: One tower per task (may carry transfer edges).
        tasks: The model's tasks; chains may be of any depth.

    Example:
        >>> import torch
        >>> ts = [TaskSpec("click"), TaskSpec("cart", "after:click"),
        ...       TaskSpec("buy", "after:cart")]
        >>> heads = ChainHeads(Towers({t.name: 4 for t in ts}, (8,)), ts)
        >>> reps = {t.name: torch.zeros(3, 4) for t in ts}
        >>> sorted(heads.losses(heads(reps), {t.name: torch.ones(3) for t in ts}, ts))
        ['buy', 'cart', 'click']
    """

    def __init__(self, towers: Towers, tasks: Sequence[TaskSpec]) -> None:
        super().__init__()
        tasks = validate_tasks(tasks)
        names = tuple(t.name for t in tasks)
        if set(towers.tasks) != set(names):
            raise ValueError(f"{type(self).__name__}: towers {towers.tasks} != tasks {names}")
        self.towers = towers

    def forward(self, reps: dict[str, Tensor]) -> dict[str, Tensor]:
        """Map task -> ``[B, d_task]`` to task -> *conditional* logits ``[B]``."""
        return self.towers(reps)  # type: ignore[no-any-return]

    def losses(
        self, logits: Mapping[str, Tensor], labels: Mapping[str, Tensor], tasks: Sequence[TaskSpec]
    ) -> dict[str, Tensor]:
        """Entire-space losses (:func:`entire_space_losses`)."""
        return entire_space_losses(logits, labels, tasks)
