"""Wannier90 ``seedname_hr.dat``: real-space Hamiltonian H_mn(R).

File layout (Wannier90 3.1, ``hamiltonian_write_hr``)::

    line 1            header (free text, usually the date)
    line 2            num_wann
    line 3            nrpts
    next lines        nrpts Wigner-Seitz degeneracies, 15 per line
    nrpts*num_wann^2  "R1 R2 R3 m n Re(H) Im(H)", m running fastest, then n, then R

``H[r, m, n] = <m, 0 | H | n, R_r>`` in eV.  The file stores the raw values;
the physical hopping used in a Bloch sum is ``H / ndegen`` (Wannier90 divides by
the degeneracy when it interpolates).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import numpy as np

from .atomic import atomic_open
from .errors import FormatError
from .numeric_text import LineCursor, decode, parse_numeric_lines, read_bytes

__all__ = ["HrData", "read_hr", "write_hr"]

#: Printf format of one value written by :func:`write_hr`: 17 significant digits,
#: enough for every float64 to survive a write/read round trip bit for bit.
FLOAT_FORMAT = "%25.16e"
_NDEGEN_PER_LINE = 15
_CHUNK_LINES = 1 << 16


def _as_integer_array(value: np.ndarray, name: str) -> np.ndarray:
    """``value`` as int64, accepting integral floats; ValueError otherwise."""
    arr = np.asarray(value)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.rint(arr)):
        return np.rint(arr).astype(np.int64)
    raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")


@dataclass(frozen=True)
class HrData:
    """Content of a ``seedname_hr.dat`` file.

    Attributes
    ----------
    num_wann : int
        Number of Wannier functions.
    R : numpy.ndarray
        (nR, 3) int64 lattice vectors in units of the cell vectors, file order.
    ndegen : numpy.ndarray
        (nR,) int64 Wigner-Seitz degeneracies, as in the file.
    H : numpy.ndarray
        (nR, num_wann, num_wann) complex128 raw file values in eV,
        ``H[r, m, n] = <m, 0 | H | n, R[r]>`` (degeneracy weights not applied).
    header : str
        First line of the file, stripped.
    """

    num_wann: int
    R: np.ndarray
    ndegen: np.ndarray
    H: np.ndarray
    header: str = ""

    def __post_init__(self) -> None:
        R = _as_integer_array(self.R, "HrData.R")
        ndegen = _as_integer_array(self.ndegen, "HrData.ndegen")
        H = np.asarray(self.H, dtype=np.complex128)
        nw = int(self.num_wann)
        if nw < 1:
            raise ValueError(f"HrData.num_wann must be positive, got {nw}")
        if R.ndim != 2 or R.shape[1] != 3:
            raise ValueError(f"HrData.R must have shape (nR, 3), got {R.shape}")
        if ndegen.shape != (R.shape[0],):
            raise ValueError(f"HrData.ndegen must have shape ({R.shape[0]},), got {ndegen.shape}")
        if H.shape != (R.shape[0], nw, nw):
            raise ValueError(f"HrData.H must have shape ({R.shape[0]}, {nw}, {nw}), got {H.shape}")
        if np.any(ndegen < 1):
            raise ValueError("HrData.ndegen must be positive")
        object.__setattr__(self, "num_wann", nw)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "ndegen", ndegen)
        object.__setattr__(self, "H", H)

    def hoppings(self) -> np.ndarray:
        """Physical hoppings ``H / ndegen`` in eV.

        Returns
        -------
        numpy.ndarray
            (nR, num_wann, num_wann) complex128; ``sum_r exp(2 pi i k.R_r) hoppings()[r]``
            is the Bloch Hamiltonian H(k) (Wannier90 lattice gauge, ``use_ws_distance``
            shifts not applied, see :func:`wander.io.apply_wsvec`).
        """
        return self.H / self.ndegen[:, None, None]


def _read_int_line(path: str | os.PathLike, cursor: LineCursor, what: str) -> int:
    line = cursor.next()
    if line is None:
        raise FormatError(path, cursor.lineno + 1, f"file ends before the {what} line")
    fields = line.split()
    if len(fields) != 1:
        raise FormatError(path, cursor.lineno, f"expected a single integer ({what}), got {decode(line)!r}")
    try:
        value = int(fields[0])
    except ValueError:
        raise FormatError(path, cursor.lineno, f"{what} is not an integer: {decode(line)!r}") from None
    if value < 1:
        raise FormatError(path, cursor.lineno, f"{what} must be positive, got {value}")
    return value


def _read_ndegen(path: str | os.PathLike, cursor: LineCursor, nrpts: int, nrpts_line: int) -> np.ndarray:
    values: list[int] = []
    while len(values) < nrpts:
        line = cursor.next()
        if line is None:
            raise FormatError(
                path, cursor.lineno + 1, f"file ends inside the degeneracy list ({len(values)} of nrpts={nrpts})"
            )
        for field in line.split():
            try:
                values.append(int(field))
            except ValueError:
                raise FormatError(
                    path,
                    cursor.lineno,
                    f"expected integer Wigner-Seitz degeneracies (nrpts={nrpts} declared on line "
                    f"{nrpts_line}), got {decode(field)!r}",
                ) from None
        if len(values) > nrpts:
            raise FormatError(
                path,
                cursor.lineno,
                f"degeneracy list holds more than nrpts={nrpts} values (nrpts declared on line {nrpts_line})",
            )
    ndegen = np.array(values, dtype=np.int64)
    if np.any(ndegen < 1):
        raise FormatError(path, cursor.lineno, "Wigner-Seitz degeneracies must be positive")
    return ndegen


def read_hr(path: str | os.PathLike) -> HrData:
    """Read a Wannier90 ``seedname_hr.dat`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    HrData
        Raw values and degeneracies; use :meth:`HrData.hoppings` for the physical hoppings.

    Raises
    ------
    FormatError
        Truncated file, wrong counts, non-numeric or non-integer fields, lines
        out of Wannier90 order (m fastest, then n, then R), an R vector that
        changes inside its block, or an R vector given twice.  The message
        names the file and the 1-based line.
    """
    data = read_bytes(path)
    cursor = LineCursor(data)
    header_line = cursor.next()
    if header_line is None:
        raise FormatError(path, 1, "empty file")
    header = decode(header_line)
    num_wann = _read_int_line(path, cursor, "num_wann")
    nrpts = _read_int_line(path, cursor, "nrpts")
    nrpts_line = cursor.lineno
    ndegen = _read_ndegen(path, cursor, nrpts, nrpts_line)

    first = cursor.lineno + 1
    body = parse_numeric_lines(path, cursor.rest(), first)
    counts = body.counts
    n_expected = nrpts * num_wann * num_wann
    # blank lines are tolerated only at the very end of the file
    nonblank = np.flatnonzero(counts)
    n_lines = int(nonblank[-1]) + 1 if nonblank.size else 0
    bad_count = np.flatnonzero(counts[: min(n_lines, n_expected)] != 7)
    if bad_count.size:
        i = int(bad_count[0])
        raise FormatError(
            path, body.line_number(i), f"expected 7 fields 'R1 R2 R3 m n Re Im', found {int(counts[i])}"
        )
    if n_lines < n_expected:
        raise FormatError(
            path,
            body.line_number(n_lines),
            f"file truncated: expected {n_expected} hopping lines (nrpts={nrpts} x num_wann^2={num_wann}^2), "
            f"found {n_lines}",
        )
    if n_lines > n_expected:
        raise FormatError(
            path,
            body.line_number(n_expected),
            f"unexpected data after the {n_expected} hopping lines (nrpts={nrpts} on line {nrpts_line}, "
            f"num_wann={num_wann})",
        )

    table = body.values.reshape(n_expected, 7)
    ints = table[:, :5]
    rounded = np.rint(ints)
    not_int = np.flatnonzero(np.any(rounded != ints, axis=1))
    if not_int.size:
        i = int(not_int[0])
        raise FormatError(path, body.line_number(i), "R1 R2 R3 m n must be integers")
    ints = rounded.astype(np.int64)

    nw2 = num_wann * num_wann
    wann = np.arange(1, num_wann + 1, dtype=np.int64)
    m_expected = np.tile(wann, nw2 // num_wann * nrpts)
    n_expected_col = np.tile(np.repeat(wann, num_wann), nrpts)
    wrong = np.flatnonzero((ints[:, 3] != m_expected) | (ints[:, 4] != n_expected_col))
    if wrong.size:
        i = int(wrong[0])
        raise FormatError(
            path,
            body.line_number(i),
            f"expected m={m_expected[i]} n={n_expected_col[i]} (Wannier90 order: m runs fastest, "
            f"then n, then R), got m={ints[i, 3]} n={ints[i, 4]}",
        )

    R_rows = ints[:, :3].reshape(nrpts, nw2, 3)
    R = R_rows[:, 0, :]
    changed = np.flatnonzero(np.any(R_rows != R[:, None, :], axis=2).reshape(-1))
    if changed.size:
        i = int(changed[0])
        r = i // nw2
        raise FormatError(
            path,
            body.line_number(i),
            f"R vector changes inside its block: expected {tuple(R[r].tolist())} "
            f"(block starting on line {body.line_number(r * nw2)}), got {tuple(ints[i, :3].tolist())}",
        )
    _, first_index, inverse = np.unique(R, axis=0, return_index=True, return_inverse=True)
    dup = np.flatnonzero(first_index[inverse.reshape(-1)] != np.arange(nrpts))
    if dup.size:
        r = int(dup[0])
        r0 = int(first_index[inverse.reshape(-1)[r]])
        raise FormatError(
            path,
            body.line_number(r * nw2),
            f"duplicated R vector {tuple(R[r].tolist())} (first given on line {body.line_number(r0 * nw2)})",
        )

    H = (table[:, 5] + 1j * table[:, 6]).reshape(nrpts, num_wann, num_wann)
    # file order within a block is (n, m) with m fastest: transpose to H[r, m, n]
    H = np.ascontiguousarray(H.transpose(0, 2, 1))
    return HrData(num_wann=num_wann, R=R.copy(), ndegen=ndegen, H=H, header=header)


def _default_header() -> str:
    from wander import __version__

    now = datetime.datetime.now().strftime("%d%b%Y at %H:%M:%S")
    return f"written by wander {__version__} on {now}"


def write_hr(
    path: str | os.PathLike,
    R: np.ndarray,
    H: np.ndarray,
    ndegen: np.ndarray | None = None,
    header: str | None = None,
) -> None:
    """Write a Wannier90 ``seedname_hr.dat`` file atomically.

    The layout is Wannier90's (integers right-aligned in 5 columns, m running
    fastest), so Wannier90 tools and readers such as sisl or WannierTools accept
    it.  Values are printed as ``%25.16e`` (17 significant digits) instead of
    Wannier90's ``F12.6``, so ``read_hr`` returns exactly the float64 values
    that were stored.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; an existing file is replaced only once the new one is complete.
    R : numpy.ndarray
        (nR, 3) integer lattice vectors, all distinct.
    H : numpy.ndarray
        (nR, num_wann, num_wann) complex physical hoppings in eV (degeneracy
        weights already applied), ``H[r, m, n] = <m, 0 | H | n, R[r]>``.
    ndegen : numpy.ndarray, optional
        (nR,) positive integer Wigner-Seitz degeneracies.  The file stores
        ``H * ndegen`` so that ``read_hr(path).hoppings()`` returns ``H``.
        Default: all ones.
    header : str, optional
        Single-line header; default names wander and the date.

    Raises
    ------
    ValueError
        Bad shapes, non-integer R or ndegen, non-positive ndegen, duplicated R,
        non-finite H, or a header with a line break.
    """
    R = _as_integer_array(R, "R")
    H = np.asarray(H)
    if R.ndim != 2 or R.shape[1] != 3 or R.shape[0] < 1:
        raise ValueError(f"R must have shape (nR, 3) with nR >= 1, got {R.shape}")
    nR = R.shape[0]
    if H.ndim != 3 or H.shape[0] != nR or H.shape[1] != H.shape[2] or H.shape[1] < 1:
        raise ValueError(f"H must have shape ({nR}, num_wann, num_wann), got {H.shape}")
    if H.dtype.kind not in "iufc":
        raise ValueError(f"H must be numeric, got dtype {H.dtype}")
    H = H.astype(np.complex128)
    if not np.all(np.isfinite(H)):
        raise ValueError("H holds NaN or infinite values")
    if ndegen is None:
        ndegen = np.ones(nR, dtype=np.int64)
    else:
        ndegen = _as_integer_array(ndegen, "ndegen")
        if ndegen.shape != (nR,):
            raise ValueError(f"ndegen must have shape ({nR},), got {ndegen.shape}")
        if np.any(ndegen < 1):
            raise ValueError("ndegen must be positive")
    unique = np.unique(R, axis=0)
    if unique.shape[0] != nR:
        raise ValueError(f"R holds {nR - unique.shape[0]} duplicated lattice vector(s)")
    if header is None:
        header = _default_header()
    if "\n" in header or "\r" in header:
        raise ValueError("header must be a single line")

    num_wann = H.shape[1]
    stored = H * ndegen[:, None, None]
    width = max(5, 1 + max(len(str(int(R.min()))), len(str(int(R.max()))), len(str(num_wann))))
    line_format = f"%{width}d" * 5 + FLOAT_FORMAT * 2 + "\n"

    with atomic_open(path, encoding="ascii") as fh:
        fh.write(f" {header}\n{num_wann:12d}\n{nR:12d}\n")
        for start in range(0, nR, _NDEGEN_PER_LINE):
            fh.write("".join(f"{d:5d}" for d in ndegen[start : start + _NDEGEN_PER_LINE].tolist()) + "\n")
        _write_body(fh, R, stored, line_format)


def _write_body(fh, R: np.ndarray, stored: np.ndarray, line_format: str) -> None:
    """Write the hopping lines in chunks of whole R blocks, formatting each chunk in one C call."""
    nR, num_wann, _ = stored.shape
    nw2 = num_wann * num_wann
    wann = np.arange(1, num_wann + 1, dtype=np.float64)
    m_col = np.tile(wann, num_wann)  # m fastest
    n_col = np.repeat(wann, num_wann)
    blocks_per_chunk = max(1, _CHUNK_LINES // nw2)
    for start in range(0, nR, blocks_per_chunk):
        stop = min(nR, start + blocks_per_chunk)
        nb = stop - start
        values = stored[start:stop].transpose(0, 2, 1).reshape(-1)  # (r, n, m) order
        table = np.empty((nb * nw2, 7), dtype=np.float64)
        table[:, :3] = np.repeat(R[start:stop], nw2, axis=0)
        table[:, 3] = np.tile(m_col, nb)
        table[:, 4] = np.tile(n_col, nb)
        table[:, 5] = values.real
        table[:, 6] = values.imag
        fh.write((line_format * table.shape[0]) % tuple(table.reshape(-1).tolist()))
