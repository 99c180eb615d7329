"""ESCM2 (Wang et al., SIGIR 2022): entire-space CVR with a counterfactual risk regularizer.

ESMM's CTCVR loss alone leaves pCVR biased (it is only identified through
the product). ESCM2 adds, for each ``"after:x"`` task, an estimate of the
CVR risk over *all* impressions built from the observed (clicked) rows:

- IPS: ``R = mean_i o_i * e_i / sg(p_i)``
- DR:  ``R = mean_i [ê_i + o_i * (e_i - ê_i) / sg(p_i)]``, with the imputation
  tower trained on ``mean_i o_i * (sg(e_i) - ê_i)^2 / sg(p_i)``

where ``o_i`` says the row is in the task's sample space (clicked), ``e_i`` is
the CVR cross-entropy of the row, ``p_i`` the unconditional probability of the
parent (pCTR) with its gradient stopped (``sg``), floored at
``min_propensity``, and ``ê_i >= 0`` the imputed error. The loss of the task
is ``CTCVR + cf_weight * R`` (plus the imputation loss for DR).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ranker.heads.base import HeadOutputs, Heads, entire_space_labels, entire_space_probs
from ranker.heads.chain import entire_space_losses
from ranker.heads.towers import Towers
from ranker.tasks import TaskSpec, validate_tasks

__all__ = ["ESCM2Heads", "dr_risk", "ips_risk"]

IMPUTED = "imputed_error/"
"""Prefix of the DR head's aux outputs: ``imputed_error/<task>`` -> ``[B]``."""


def _observed_errors(z: Tensor, y: Tensor, observed: Tensor) -> Tensor:
    """Per-row cross-entropy on observed rows, 0 elsewhere (their labels never reach the graph)."""
    space = observed > 0
    y = torch.where(space, y, torch.zeros_like(y))
    bce = F.binary_cross_entropy_with_logits(z, y, reduction="none")  # [B]
    return torch.where(space, bce, torch.zeros_like(bce))


def _inverse_propensity(propensity: Tensor, min_propensity: float) -> Tensor:
    return 1.0 / propensity.detach().clamp(min=min_propensity)  # [B], no gradient


def ips_risk(
    z: Tensor, y: Tensor, observed: Tensor, propensity: Tensor, min_propensity: float = 0.01
) -> Tensor:
    """IPS estimate of the entire-space CVR risk: ``mean_i o_i e_i / sg(max(p_i, floor))``.

    Args:
        z: ``[B]`` conditional CVR logits.
        y: ``[B]`` CVR labels (used on observed rows only).
        observed: ``[B]`` 1 where the row is in the sample space (clicked), else 0.
        propensity: ``[B]`` probability of being observed (pCTR); no gradient flows into it.
        min_propensity: Floor on ``propensity`` (bounds the weights at ``1 / floor``).

    Returns:
        Scalar risk (mean over all ``B`` rows).

    Example:
        >>> r = ips_risk(torch.zeros(2), torch.ones(2), torch.tensor([1.0, 0.0]),
        ...              torch.tensor([0.5, 0.5]))
        >>> round(r.item(), 4)  # log 2 / 0.5 / 2
        0.6931
    """
    e = _observed_errors(z, y, observed)  # [B]
    return (observed * e * _inverse_propensity(propensity, min_propensity)).mean()


def dr_risk(
    z: Tensor, y: Tensor, observed: Tensor, propensity: Tensor, imputed: Tensor
) -> tuple[Tensor, Tensor]:
    """Doubly robust CVR risk and the imputation model's loss.

    Args:
        z: ``[B]`` conditional CVR logits.
        y: ``[B]`` CVR labels (used on observed rows only).
        observed: ``[B]`` 1 where observed (clicked), else 0.
        propensity: ``[B]`` pCTR, already floored; no gradient flows into it.
        imputed: ``[B]`` imputed errors ``ê >= 0`` (gradient only through the imputation loss).

    Returns:
        ``(risk, imputation_loss)``, scalars: the risk trains the CVR tower (with
        ``ê`` fixed), the imputation loss trains ``ê`` (with ``e`` fixed).

    Example:
        >>> r, _ = dr_risk(torch.zeros(2), torch.ones(2), torch.tensor([1.0, 0.0]),
        ...                torch.tensor([0.5, 0.5]), torch.zeros(2))
        >>> round(r.item(), 4)  # zero imputation: the IPS risk
        0.6931
    """
    e = _observed_errors(z, y, observed)  # [B]
    w = 1.0 / propensity.detach()  # [B]
    e_hat = imputed.detach()
    risk = (e_hat + observed * (e - e_hat) * w).mean()
    imputation_loss = (observed * (e.detach() - imputed) ** 2 * w).mean()
    return risk, imputation_loss


class ESCM2Heads(Heads):
    """Entire-space heads plus ESCM2's counterfactual CVR risk, IPS or DR.

    Every ``"after:x"`` task (any chain depth: its propensity is the
    unconditional probability of its parent) gets ``CTCVR + cf_weight * R``;
    root tasks get their ordinary cross-entropy. With an ``imputation`` towers
    module the risk is DR, else IPS. ``forward`` returns the conditional
    logits; the DR head adds ``aux["imputed_error/<task>"]``. Without those aux
    tensors (outputs concatenated from batches, e.g. for validation) the DR
    loss falls back to the IPS one, the DR estimate with zero imputation.

    Args:
        towers: One tower per task.
        tasks: The model's tasks (at least one ``"after:x"``).
        cf_weight: Weight ``>= 0`` of the counterfactual risk.
        imputation: DR only: towers (one logit each) for the ``"after:x"`` tasks,
            on those tasks' representations; ``ê = softplus(logit)``.
        min_propensity: Floor on the propensity, in ``(0, 1]``.

    Example:
        >>> ts = [TaskSpec("ctr"), TaskSpec("cvr", "after:ctr")]
        >>> heads = ESCM2Heads(Towers({"ctr": 4, "cvr": 4}, (8,)), ts, 1.0,
        ...                    imputation=Towers({"cvr": 4}, (8,)))
        >>> out = heads({"ctr": torch.zeros(3, 4), "cvr": torch.zeros(3, 4)})
        >>> sorted(out), sorted(out.aux)
        (['ctr', 'cvr'], ['imputed_error/cvr'])
    """

    def __init__(
        self,
        towers: Towers,
        tasks: Sequence[TaskSpec],
        cf_weight: float = 1.0,
        imputation: Towers | None = None,
        min_propensity: float = 0.01,
    ) -> None:
        super().__init__()
        tasks = validate_tasks(tasks)
        names = tuple(t.name for t in tasks)
        children = tuple(t.name for t in tasks if t.parent is not None)
        if not children:
            raise ValueError(
                "ESCM2 heads need a task with sample_space 'after:<task>' (e.g. "
                f"TaskSpec('cvr', 'after:click')); tasks: {names}"
            )
        if set(towers.tasks) != set(names):
            raise ValueError(f"ESCM2Heads: towers {towers.tasks} != tasks {names}")
        if imputation is not None and set(imputation.tasks) != set(children):
            raise ValueError(
                f"ESCM2Heads: imputation towers {imputation.tasks} must be the 'after:' "
                f"tasks {children}"
            )
        if not cf_weight >= 0:
            raise ValueError(f"ESCM2Heads: cf_weight must be >= 0, got {cf_weight!r}")
        if not 0 < min_propensity <= 1:
            raise ValueError(f"ESCM2Heads: min_propensity must be in (0, 1], got {min_propensity}")
        self.towers = towers
        self.imputation = imputation
        self.cf_weight = float(cf_weight)
        self.min_propensity = float(min_propensity)

    def forward(self, reps: dict[str, Tensor]) -> dict[str, Tensor]:
        """Map task -> ``[B, d_task]`` to task -> conditional logits ``[B]`` (+ DR aux)."""
        logits = self.towers(reps)
        if self.imputation is None:
            return logits  # type: ignore[no-any-return]
        imputed = self.imputation(reps)  # "after:" task -> [B]
        aux = {IMPUTED + t: F.softplus(z) for t, z in imputed.items()}  # [B], >= 0
        return HeadOutputs(logits, aux)

    def losses(
        self, logits: Mapping[str, Tensor], labels: Mapping[str, Tensor], tasks: Sequence[TaskSpec]
    ) -> dict[str, Tensor]:
        """Entire-space losses, plus ``cf_weight`` times the IPS or DR risk per "after:" task."""
        out = entire_space_losses(logits, labels, tasks)
        probs = entire_space_probs(logits, tasks)  # task -> [B]
        observed = entire_space_labels(labels, tasks)  # task -> [B]
        aux = getattr(logits, "aux", {})
        for task in tasks:
            if task.parent is None:
                continue
            z, y = logits[task.name], labels[task.name]
            o = observed[task.parent]  # [B], 1 on rows of the task's sample space
            p = probs[task.parent].detach().clamp(min=self.min_propensity)  # [B]
            imputed = aux.get(IMPUTED + task.name) if self.imputation is not None else None
            if imputed is None:
                risk = ips_risk(z, y, o, p, self.min_propensity)
            else:
                risk, imputation_loss = dr_risk(z, y, o, p, imputed)
                risk = risk + imputation_loss
            out[task.name] = out[task.name] + self.cf_weight * risk
        return out
