"""Atomic file writing: a file is either fully written or left untouched."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

__all__ = ["atomic_open", "atomic_path"]


def _default_mode(path: Path) -> int:
    """Permission bits for the new file: those of the file it replaces, else 0o666 minus umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, encoding: str = "utf-8") -> Iterator[TextIO]:
    """Open a text file for writing so that readers never see a partial file.

    The data goes to a temporary file in the destination folder, which is
    flushed, synced and moved over ``path`` with :func:`os.replace` only when
    the ``with`` block ends without an exception.  On an exception the
    temporary file is removed and any pre-existing ``path`` is left intact.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.
    encoding : str
        Text encoding.

    Yields
    ------
    TextIO
        Handle to write to.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    mode = _default_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="\n") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path (same folder, same suffix) that replaces ``path`` on success.

    The temporary file is removed if the body raises, so ``path`` is never half-written.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
