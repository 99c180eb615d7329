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
import shutil
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_folder", "atomic_write", "replace_folder"]


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


def atomic_folder(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a new folder beside ``path``, fsync its files, rename it into
    place (an existing ``path``, file or folder, is replaced only then).

    A failed ``write`` leaves nothing new under either name and ``path`` as it was. The
    folder's mode is a plain ``mkdir``'s (``0777`` less the umask).

    Args:
        path: the folder to (over)write; its parent must exist.
        write: writes the folder's content under the folder it is given.

    Example:
        >>> import tempfile
        >>> top = Path(tempfile.mkdtemp())
        >>> out = atomic_folder(top / "d", lambda tmp: (tmp / "a.txt").write_text("hi"))
        >>> sorted(p.name for p in out.iterdir())
        ['a.txt']
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    os.mkdir(tmp)
    try:
        write(tmp)
        for file in (f for f in tmp.rglob("*") if f.is_file()):
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        replace_folder(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def replace_folder(new: Path, out: Path) -> None:
    """Put folder ``new`` at ``out``; an old ``out`` is moved aside first, removed after."""
    old = None
    if out.exists() or out.is_symlink():
        old = out.parent / f".{out.name}.{secrets.token_hex(6)}.old"
        os.replace(out, old)
    try:
        os.replace(new, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


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
