"""Task specs: what a multi-task ranker predicts, and on which rows each task learns.

A task is a binary label (click, like, conversion...). Its *sample space* says
on which rows its loss is computed: all rows (``None``), or only the rows where
another task's label is 1 (``"after:click"``: conversion is learned on clicked
rows only, so its prediction is the conditional probability p(conversion |
click)).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["TaskSpec", "validate_tasks"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_AFTER = "after:"


def check_name(kind: str, name: str) -> None:
    """Raise ValueError unless ``name`` is a usable identifier (it keys modules and columns).

    Args:
        kind: What is named ("task", "feature"), for the message.
        name: The name to check.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"bad {kind} name {name!r}: use letters, digits and '_' "
            "(not starting with a digit), e.g. 'click' or 'long_view'"
        )


@dataclass(frozen=True)
class TaskSpec:
    """One binary task of a multi-task ranker.

    Args:
        name: Task name; keys the model's outputs and the labels.
        sample_space: ``None`` for all rows, or ``"after:<task>"`` to learn (and be
            evaluated) only on rows where that other task's label is 1.

    Example:
        >>> tasks = [TaskSpec("click"), TaskSpec("conversion", sample_space="after:click")]
        >>> tasks[1].parent
        'click'
    """

    name: str
    sample_space: str | None = None

    def __post_init__(self) -> None:
        check_name("task", self.name)
        if self.sample_space is None:
            return
        ss = self.sample_space
        ok = isinstance(ss, str) and ss.startswith(_AFTER) and _NAME.match(ss[len(_AFTER) :])
        if not ok:
            raise ValueError(
                f"task {self.name!r}: bad sample_space {ss!r}; valid: None (all rows) "
                "or 'after:<task>' naming another task, e.g. 'after:click'"
            )
        if ss[len(_AFTER) :] == self.name:
            raise ValueError(
                f"task {self.name!r}: sample_space {ss!r} names the task itself; "
                "it must name another task"
            )

    @property
    def parent(self) -> str | None:
        """The task whose positive rows form this task's sample space, or None."""
        if self.sample_space is None:
            return None
        return self.sample_space[len(_AFTER) :]


def validate_tasks(tasks: Sequence[TaskSpec]) -> tuple[TaskSpec, ...]:
    """Check a task list as a whole: non-empty, unique names, sample spaces that resolve.

    Args:
        tasks: The tasks of one model.

    Returns:
        The tasks as a tuple.

    Raises:
        ValueError: Naming the bad task and what would be valid.

    Example:
        >>> validate_tasks([TaskSpec("click"), TaskSpec("cvr", "after:click")])[1].name
        'cvr'
    """
    tasks = tuple(tasks)
    if not tasks:
        raise ValueError("no tasks given; a model needs at least one TaskSpec")
    for t in tasks:
        if not isinstance(t, TaskSpec):
            raise ValueError(f"tasks must be TaskSpec instances, got {t!r}")
    names = [t.name for t in tasks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate task names {dupes}; task names must be unique")
    by_name = {t.name: t for t in tasks}
    for t in tasks:
        if t.parent is not None and t.parent not in by_name:
            valid = ", ".join(f"'after:{n}'" for n in names if n != t.name)
            raise ValueError(
                f"task {t.name!r}: sample_space {t.sample_space!r} names no task; "
                f"valid: None or one of {valid or '(no other task)'}"
            )
    for t in tasks:  # a chain of "after:" must end at an all-rows task
        seen = {t.name}
        cur = t
        while cur.parent is not None:
            if cur.parent in seen:
                raise ValueError(
                    f"task {t.name!r}: sample spaces form a cycle through {sorted(seen)}; "
                    "a chain of 'after:' must end at a task with sample_space None"
                )
            seen.add(cur.parent)
            cur = by_name[cur.parent]
    return tasks
