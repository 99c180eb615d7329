"""Run numpy's matrix products on one OpenBLAS thread for a while.

Small products called many times (the bootstrap's per-policy sums) ran up to 15x slower
with OpenBLAS's threads than on one thread on these loaded 2-core machines: its threads
spin beside the other processes. Without threadpoolctl, numpy's bundled OpenBLAS is told
directly (``openblas_set_num_threads``); where it is not found this does nothing. A
product's result does not depend on the thread count (threads split the output, not the
sums), so only the speed changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["one_blas_thread"]

_NAMES = ("scipy_openblas_{}_num_threads64_", "openblas_{}_num_threads64_",
          "openblas_{}_num_threads")


@functools.cache
def _openblas() -> tuple[Any, Any] | None:
    """``(get, set)`` of numpy's bundled OpenBLAS thread count, or None."""
    import numpy

    root = os.path.dirname(numpy.__file__)
    for path in sorted(glob.glob(os.path.join(root, "..", "numpy.libs", "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _NAMES:
            get, set_ = getattr(lib, name.format("get"), None), getattr(lib, name.format("set"),
                                                                        None)
            if get is not None and set_ is not None:
                return get, set_
    return None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Within the block numpy's OpenBLAS runs on one thread; the old count is restored."""
    found = _openblas()
    if found is None:
        yield
        return
    get, set_ = found
    old = int(get())
    set_(1)
    try:
        yield
    finally:
        set_(old)
