"""Bulk parsing of whitespace-separated numeric text that keeps line numbers.

The readers in :mod:`wander.io` parse file bodies with one call to
:func:`numpy.fromstring` (C speed, no per-line Python objects) and count the
fields of every line with vectorised byte operations.  Only when that fast path
fails is the text walked line by line, to name the first bad line.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FormatError

__all__ = ["LineCursor", "NumericLines", "parse_count", "parse_numeric_lines", "read_bytes"]

_NUMBER = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def read_bytes(path: str | os.PathLike) -> bytes:
    """Whole content of ``path`` as bytes (``FileNotFoundError`` if absent)."""
    return Path(path).read_bytes()


def decode(line: bytes) -> str:
    """Printable form of a line for error messages."""
    return line.decode("utf-8", "replace").strip()


def parse_count(path: str | os.PathLike, line: bytes | None, what: str) -> int:
    """The positive integer on line 1 that announces how many ``what`` follow.

    Raises
    ------
    FormatError
        (line 1) The line is absent or blank, not an integer, or not positive.
    """
    if line is None or not line.strip():
        raise FormatError(path, 1, f"missing the number of {what}")
    try:
        n = int(line)
    except ValueError:
        raise FormatError(path, 1, f"number of {what} is not an integer: {decode(line)!r}") from None
    if n < 1:
        raise FormatError(path, 1, f"number of {what} must be positive, got {n}")
    return n


class LineCursor:
    """Reads the leading lines of a file one at a time, tracking line numbers.

    Parameters
    ----------
    data : bytes
        Full file content.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.lineno = 0  # number of lines consumed so far = 1-based number of the last one

    def next(self) -> bytes | None:
        """The next line without its newline, or ``None`` at end of file."""
        if self.pos >= len(self.data):
            return None
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            end = len(self.data)
        line = self.data[self.pos : end]
        self.pos = end + 1
        self.lineno += 1
        return line.rstrip(b"\r")

    def rest(self) -> bytes:
        """Everything after the consumed lines."""
        return self.data[self.pos :]


@dataclass(frozen=True)
class NumericLines:
    """All numbers of a block of text, with the number of fields of each line.

    Attributes
    ----------
    values : numpy.ndarray
        (n_fields,) float64, every field in reading order.
    counts : numpy.ndarray
        (n_lines,) int64, number of fields on each line (0 for blank lines).
    first_line : int
        1-based file line number of the first line of the block.
    """

    values: np.ndarray
    counts: np.ndarray
    first_line: int

    @property
    def offsets(self) -> np.ndarray:
        """(n_lines,) int64 index in ``values`` of the first field of each line."""
        out = np.zeros(self.counts.size, dtype=np.int64)
        np.cumsum(self.counts[:-1], out=out[1:])
        return out

    def line_number(self, index: int | np.integer) -> int:
        """1-based file line number of line ``index`` of the block."""
        return self.first_line + int(index)


def _field_counts(data: bytes) -> np.ndarray:
    """(n_lines,) number of whitespace-separated fields on each line of ``data``.

    Control characters count as separators here; :func:`numpy.fromstring`
    rejects them, so such files still fail with a line number.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        return np.zeros(0, dtype=np.int64)
    newline_pos = np.flatnonzero(buf == 10)
    line_starts = np.concatenate(([0], newline_pos + 1))
    if buf[-1] == 10:
        line_starts = line_starts[:-1]
    sep = buf <= 32
    starts = ~sep
    starts[1:] &= sep[:-1]
    field_starts = np.flatnonzero(starts)
    first_field = np.searchsorted(field_starts, line_starts)
    return np.diff(first_field, append=field_starts.size).astype(np.int64)


def _first_bad_field(path: str | os.PathLike, data: bytes, first_line: int) -> FormatError:
    """Walk ``data`` line by line and describe the first field that is not a number."""
    for i, line in enumerate(data.split(b"\n")):
        for field in line.split():
            if _NUMBER.fullmatch(field) is None:
                return FormatError(
                    path, first_line + i, f"non-numeric field {decode(field)!r} in line {decode(line)!r}"
                )
    return FormatError(path, first_line, "could not parse the numeric data")


def parse_numeric_lines(path: str | os.PathLike, data: bytes, first_line: int) -> NumericLines:
    """Parse a block of numeric text in one vectorised pass.

    Parameters
    ----------
    path : str or os.PathLike
        File the block comes from (for error messages).
    data : bytes
        The block, lines separated by ``\\n``.
    first_line : int
        1-based file line number of the first line of ``data``.

    Returns
    -------
    NumericLines
        All fields as float64 and the field count of each line.

    Raises
    ------
    FormatError
        At the first line holding a field that is not a decimal number, or a
        NaN / infinite value.
    """
    counts = _field_counts(data)
    total = int(counts.sum())
    values: np.ndarray | None
    if total == 0:
        values = np.zeros(0, dtype=np.float64)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            try:
                values = np.fromstring(data, dtype=np.float64, sep=" ")
            except (ValueError, DeprecationWarning):
                values = None
        if values is None or values.size != total:
            raise _first_bad_field(path, data, first_line)
    result = NumericLines(values=values, counts=counts, first_line=first_line)
    bad = ~np.isfinite(values)
    if bad.any():
        line = int(np.searchsorted(np.cumsum(counts), np.argmax(bad), side="right"))
        raise FormatError(path, result.line_number(line), "non-finite value (nan or inf)")
    return result
