"""Error type raised by the Wannier90 file readers."""

from __future__ import annotations

import os

__all__ = ["FormatError"]


class FormatError(ValueError):
    """A file is malformed or inconsistent.

    ``str(error)`` reads ``"<path>:<line>: <message>"`` where ``line`` is the
    1-based line number of the offending line, or 0 when the problem concerns
    the whole file (for example a missing block).

    Parameters
    ----------
    path : str or os.PathLike
        File that failed to parse.
    line : int
        1-based line number, 0 for whole-file problems.
    message : str
        What is wrong, in words.
    """

    def __init__(self, path: str | os.PathLike, line: int, message: str) -> None:
        self.path = os.fspath(path)
        self.line = int(line)
        self.message = message
        super().__init__(f"{self.path}:{self.line}: {message}")

    def __reduce__(self):  # keep the three-argument constructor picklable
        return (type(self), (self.path, self.line, self.message))
