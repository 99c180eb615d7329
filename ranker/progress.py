"""Progress for people, silence for logs: the one way the project makes a progress bar.

A bar goes to stderr (stdout stays a command's result, e.g. its JSON) and switches
itself off when stderr is not a terminal (tqdm's ``disable=None``), so a log file or a
pipeline never collects carriage returns. Lines that say what happened go to stderr
whether or not it is a terminal.

This module imports only tqdm: ``tuner`` uses it too (``ranker`` never imports ``tuner``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

__all__ = ["progress_bar", "progress_line"]

T = TypeVar("T")


def progress_bar(iterable: Iterable[T] | None = None, *, enabled: bool = True,
                 **kwargs: Any) -> tqdm[T]:
    """A tqdm bar on stderr, shown when ``enabled`` and stderr is a terminal.

    Args:
        iterable: what to iterate over (or None with ``total=`` and ``update``).
        enabled: the caller's ``progress`` setting; False never shows a bar.
        **kwargs: tqdm's (``desc``, ``total``, ``unit``, ``leave``...).

    Example:
        >>> sum(progress_bar(range(3), enabled=False))
        3
    """
    return tqdm(iterable, file=sys.stderr, disable=None if enabled else True, **kwargs)


def progress_line(text: str) -> None:
    """Write one line to stderr without breaking a bar that is being drawn."""
    tqdm.write(text, file=sys.stderr)
