"""Entire-space multi-task model (Ma et al., SIGIR 2018): the two-step chain.

``pCTCVR = pCTR * pCVR``; the losses are CTR and CTCVR cross-entropy over
all impressions, and the CVR tower is not supervised directly. That is
:class:`~ranker.heads.chain.ChainHeads` restricted to chains of one step
(every ``"after:x"`` task's parent ``x`` is an all-rows task); longer chains
need ``head="chain"``.

``predict`` returns ``pCVR`` (conditional on the click) for the CVR task, as
for every head; ``pCTCVR`` is :func:`~ranker.heads.base.entire_space_probs`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ranker.heads.chain import ChainHeads
from ranker.heads.towers import Towers
from ranker.tasks import TaskSpec, validate_tasks

__all__ = ["ESMMHeads"]


class ESMMHeads(ChainHeads):
    """ChainHeads whose chains have one step: ``ctr -> cvr``, not ``ctr -> cart -> buy``.

    Args:
        towers: One tower per task.
        tasks: The model's tasks.

    Example:
        >>> ts = [TaskSpec("ctr"), TaskSpec("cvr", "after:ctr")]
        >>> type(ESMMHeads(Towers({"ctr": 4, "cvr": 4}, (8,)), ts)).__name__
        'ESMMHeads'
    """

    def __init__(self, towers: Towers, tasks: Sequence[TaskSpec]) -> None:
        tasks = validate_tasks(tasks)
        by_name = {t.name: t for t in tasks}
        for task in tasks:
            if task.parent is not None and by_name[task.parent].parent is not None:
                raise ValueError(
                    f"ESMM chains have one step, but task {task.name!r} is 'after:"
                    f"{task.parent}' which is itself {by_name[task.parent].sample_space!r}; "
                    "use head='chain' for longer chains"
                )
        super().__init__(towers, tasks)
