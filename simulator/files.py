"""Atomic file writes that give the file the mode a plain ``open()`` would.

``tempfile.mkstemp`` creates its file ``0600`` whatever the umask, and a
rename keeps that mode, so a log or score table written through it could not
be read by a colleague or a service account. The temporary file here is
created with ``0666`` and the kernel applies the umask, as for ``open(path,
"w")``: ``0644`` under umask ``022``, ``0600`` under ``077``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], object]) -> Path:
    """Call ``write(tmp)`` on a new file beside ``path``, fsync it, rename it into place.

    A failed ``write`` leaves no file under either name. The file's mode is
    ``0666`` less the umask (an existing file at ``path`` is replaced, mode
    included).

    Args:
        path: the file to (over)write; its folder is created if missing.
        write: writes the content to the path it is given (e.g.
            ``lambda tmp: pq.write_table(table, tmp)``).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> atomic_write(folder / "a.txt", lambda tmp: Path(tmp).write_text("hi")).read_text()
        'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_beside(path)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _create_beside(path: Path) -> str:
    """An empty new file ``.<name>.<random>.tmp`` in ``path``'s folder, mode 0666 & ~umask."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return str(tmp)
    raise FileExistsError(f"could not create a temporary file beside {path}")
