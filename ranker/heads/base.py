"""The head extension point: per-task representations -> per-task logits, and their losses.

Output logits are keyed by task name. For a task with sample space
``"after:x"`` the logit is that of the probability *conditional* on ``x``
(``p(cvr | click)``), whatever the head: heads differ in how they are
*trained* (which loss each task gets), not in what their outputs mean. The
unconditional (entire-space) probability of a task is the product of the
conditional ones along its chain: :func:`entire_space_probs`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ranker.losses import task_losses
from ranker.tasks import TaskSpec

__all__ = [
    "HeadOutputs",
    "Heads",
    "chain_of",
    "entire_space_labels",
    "entire_space_log_probs",
    "entire_space_probs",
]


class HeadOutputs(dict[str, Tensor]):
    """Task -> logits ``[B]`` (a plain dict to every caller), plus ``aux`` tensors.

    ``aux`` carries what a head's loss needs beyond the task logits (the DR
    head's imputed errors), keyed ``"<what>/<task>"``; it is not a task output
    and is lost when the dict is copied or batches are concatenated.

    Args:
        logits: Task -> ``[B]`` logits.
        aux: Name -> ``[B]`` extra tensors.

    Example:
        >>> out = HeadOutputs({"click": torch.zeros(2)}, {"imputed/cvr": torch.ones(2)})
        >>> list(out), list(out.aux)
        (['click'], ['imputed/cvr'])
    """

    def __init__(
        self, logits: Mapping[str, Tensor], aux: Mapping[str, Tensor] | None = None
    ) -> None:
        super().__init__(logits)
        self.aux: dict[str, Tensor] = dict(aux or {})


class Heads(nn.Module, ABC):
    """Base of output heads (towers, ESMM, chained, ESCM2).

    Subclasses map representations to logits and may override :meth:`losses`
    (entire-space and counterfactual heads do); the default is the masked
    per-sample-space cross-entropy of :func:`ranker.losses.task_losses`.

    Example:
        >>> from ranker.heads import Towers
        >>> sorted(Towers({"a": 4, "b": 4}, (8,))(
        ...     {"a": torch.zeros(2, 4), "b": torch.zeros(2, 4)}))
        ['a', 'b']
    """

    @abstractmethod
    def forward(self, reps: dict[str, Tensor]) -> dict[str, Tensor]:
        """Map task -> ``[B, d_task]`` to task -> logits ``[B]`` (conditional for "after:x")."""

    def losses(
        self, logits: Mapping[str, Tensor], labels: Mapping[str, Tensor], tasks: Sequence[TaskSpec]
    ) -> dict[str, Tensor]:
        """Task -> scalar training loss of one batch.

        Args:
            logits: This head's outputs for the batch (task -> ``[B]``).
            labels: Task -> ``[B]`` float labels.
            tasks: The model's tasks.

        Returns:
            Task -> scalar loss, one per task (what loss balancers combine).
        """
        return task_losses(logits, labels, tasks)


def chain_of(task: TaskSpec, tasks: Sequence[TaskSpec]) -> list[str]:
    """``task`` and its ancestors by ``"after:"``, from the task up to the all-rows root.

    Example:
        >>> ts = [TaskSpec("click"), TaskSpec("cart", "after:click"),
        ...       TaskSpec("buy", "after:cart")]
        >>> chain_of(ts[2], ts)
        ['buy', 'cart', 'click']
    """
    by_name = {t.name: t for t in tasks}
    chain = [task.name]
    cur = task
    while cur.parent is not None:
        if cur.parent in chain:
            raise ValueError(f"task {task.name!r}: 'after:' chain has a cycle: {chain}")
        chain.append(cur.parent)
        cur = by_name[cur.parent]
    return chain


def entire_space_probs(
    logits: Mapping[str, Tensor], tasks: Sequence[TaskSpec]
) -> dict[str, Tensor]:
    """Unconditional probabilities: the product of the conditional ones along each chain.

    ``p(buy) = p(buy | cart) * p(cart | click) * p(click)``; for ESMM this is
    ``pCTCVR = pCTR * pCVR``, computed exactly as that product of sigmoids.

    Args:
        logits: Task -> ``[B]`` logits (conditional for "after:x" tasks).
        tasks: The model's tasks.

    Returns:
        Task -> ``[B]`` probabilities over all impressions.

    Example:
        >>> ts = [TaskSpec("ctr"), TaskSpec("cvr", "after:ctr")]
        >>> entire_space_probs({"ctr": torch.zeros(1), "cvr": torch.zeros(1)}, ts)["cvr"]
        tensor([0.2500])
    """
    out: dict[str, Tensor] = {}
    for task in tasks:
        chain = chain_of(task, tasks)
        p = torch.sigmoid(logits[chain[-1]])  # [B], the root
        for name in reversed(chain[:-1]):
            p = p * torch.sigmoid(logits[name])  # [B]
        out[task.name] = p
    return out


def entire_space_log_probs(
    logits: Mapping[str, Tensor], tasks: Sequence[TaskSpec]
) -> dict[str, Tensor]:
    """Logs of :func:`entire_space_probs`, summed in log space (finite for tiny products).

    Example:
        >>> ts = [TaskSpec("ctr"), TaskSpec("cvr", "after:ctr")]
        >>> lp = entire_space_log_probs({"ctr": torch.zeros(1), "cvr": torch.zeros(1)}, ts)
        >>> round(lp["cvr"].exp().item(), 4)
        0.25
    """
    return {
        t.name: torch.stack([F.logsigmoid(logits[n]) for n in chain_of(t, tasks)]).sum(0)
        for t in tasks
    }


def entire_space_labels(
    labels: Mapping[str, Tensor], tasks: Sequence[TaskSpec]
) -> dict[str, Tensor]:
    """Entire-space labels: a task is positive on a row only if its whole chain is.

    A conversion label on an unclicked row (outside the conversion's sample
    space) never counts: ``y_ctcvr = y_click * y_cvr``.

    Example:
        >>> ts = [TaskSpec("ctr"), TaskSpec("cvr", "after:ctr")]
        >>> y = {"ctr": torch.tensor([0.0, 1.0]), "cvr": torch.tensor([1.0, 1.0])}
        >>> entire_space_labels(y, ts)["cvr"]
        tensor([0., 1.])
    """
    out: dict[str, Tensor] = {}
    for task in tasks:
        y = labels[task.name]
        for name in chain_of(task, tasks)[1:]:
            y = y * labels[name]  # [B]
        out[task.name] = y
    return out


def bce_from_log_prob(log_p: Tensor, y: Tensor) -> Tensor:
    """Per-row ``-(y log p + (1 - y) log(1 - p))`` from ``log p`` ``[B]``; returns ``[B]``.

    Example:
        >>> round(bce_from_log_prob(torch.tensor([-0.6931]), torch.tensor([0.0])).item(), 3)
        0.693
    """
    log_p = log_p.clamp(max=-1e-7)  # p < 1, so log(1 - p) stays finite
    log_1mp = torch.log(-torch.expm1(log_p))  # [B]
    return -(y * log_p + (1.0 - y) * log_1mp)
