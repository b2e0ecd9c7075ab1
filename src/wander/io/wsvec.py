"""Wannier90 ``seedname_wsvec.dat``: Wigner-Seitz shifts of ``use_ws_distance``.

With ``use_ws_distance = true`` Wannier90 moves each hopping ``H_mn(R)`` to the
periodic image(s) of Wannier function n closest to Wannier function m: the
phase of its Bloch sum uses ``R + T`` where T runs over the ``nT`` shifts listed
for ``(R, m, n)`` (multiples of the k-grid supercell), and the hopping is
shared equally among them.  File layout (Wannier90 3.1, ``ws_write_vec``)::

    line 1     header, e.g. "## written on ... with use_ws_distance=.true."
    for each R, then m, then n (n running fastest):
               "R1 R2 R3 m n"      (m, n 1-based)
               "nT"
               nT lines "T1 T2 T3"
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from .errors import FormatError
from .hr import HrData
from .numeric_text import LineCursor, NumericLines, decode, parse_numeric_lines, read_bytes

__all__ = ["WsvecData", "read_wsvec", "apply_wsvec"]

_FLAG = re.compile(r"use_ws_distance\s*=\s*\.?\s*(true|false|t|f)\b", re.IGNORECASE)


@dataclass(frozen=True)
class WsvecData:
    """Content of a ``seedname_wsvec.dat`` file.

    Attributes
    ----------
    R : numpy.ndarray
        (n_entries, 3) int64 lattice vectors of the hr.dat entries.
    m, n : numpy.ndarray
        (n_entries,) int64 0-based Wannier indices (row m, column n of ``H_mn(R)``).
    shifts : list of numpy.ndarray
        Per entry, (nT, 3) int64 lattice shifts T; the hopping goes to ``R + T``.
    use_ws_distance : bool or None
        Flag from the header line, ``None`` if the header does not state it.
    """

    R: np.ndarray
    m: np.ndarray
    n: np.ndarray
    shifts: list[np.ndarray]
    use_ws_distance: bool | None = None


def _walk_error(path: str | os.PathLike, lines: NumericLines) -> FormatError:
    """Walk the entries one by one and describe the first structural problem."""
    counts, values, offsets = lines.counts, lines.values, lines.offsets
    n_lines = counts.size
    i = 0
    while i < n_lines:
        if counts[i] != 5:
            return FormatError(
                path, lines.line_number(i), f"expected an entry line 'R1 R2 R3 m n', found {counts[i]} fields"
            )
        if i + 1 >= n_lines:
            return FormatError(path, lines.line_number(i + 1), "file truncated: missing the number of shifts")
        if counts[i + 1] != 1:
            return FormatError(
                path, lines.line_number(i + 1), f"expected the number of shifts (1 field), found {counts[i + 1]}"
            )
        n_shift = values[offsets[i + 1]]
        if n_shift != np.rint(n_shift) or n_shift < 1:
            return FormatError(
                path, lines.line_number(i + 1), f"number of shifts must be a positive integer, got {n_shift}"
            )
        for k in range(i + 2, i + 2 + int(n_shift)):
            if k >= n_lines:
                return FormatError(
                    path, lines.line_number(k), f"file truncated: expected {int(n_shift)} shift lines"
                )
            if counts[k] != 3:
                return FormatError(path, lines.line_number(k), f"expected a shift 'T1 T2 T3', found {counts[k]} fields")
        i += 2 + int(n_shift)
    return FormatError(path, lines.first_line, "inconsistent entry structure")


def read_wsvec(path: str | os.PathLike) -> WsvecData:
    """Read a Wannier90 ``seedname_wsvec.dat`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    WsvecData
        Entries in file order, with their shifts.

    Raises
    ------
    FormatError
        Truncated file, wrong field counts, non-integer values, non-positive
        indices or shift counts, or an ``(R, m, n)`` entry given twice; the
        message names the file and the 1-based line.
    """
    data = read_bytes(path)
    cursor = LineCursor(data)
    header = cursor.next()
    if header is None:
        raise FormatError(path, 1, "empty file")
    flag_match = _FLAG.search(decode(header))
    flag = None if flag_match is None else flag_match.group(1).lower().startswith("t")
    lines = parse_numeric_lines(path, cursor.rest(), cursor.lineno + 1)
    counts = lines.counts
    nonblank = np.flatnonzero(counts)
    if nonblank.size == 0:
        raise FormatError(path, lines.first_line, "no entries after the header")
    n_lines = int(nonblank[-1]) + 1
    blank = np.flatnonzero(counts[:n_lines] == 0)
    if blank.size:
        raise FormatError(path, lines.line_number(int(blank[0])), "unexpected blank line")
    counts = counts[:n_lines]
    values, offsets = lines.values, lines.offsets[:n_lines]

    # fast structural check: entry lines at h, count lines at h + 1, shift lines after
    entry = np.flatnonzero(counts == 5)
    ok = entry.size > 0 and entry[0] == 0 and entry[-1] + 1 < n_lines
    if ok:
        n_shift_f = values[offsets[entry + 1]]
        ok = bool(np.all(counts[entry + 1] == 1) and np.all(n_shift_f == np.rint(n_shift_f)) and np.all(n_shift_f >= 1))
    if ok:
        n_shift = n_shift_f.astype(np.int64)
        next_entry = entry + 2 + n_shift
        expected = np.full(n_lines, 3, dtype=np.int64)
        expected[entry] = 5
        expected[entry + 1] = 1
        ok = bool(
            np.array_equal(next_entry[:-1], entry[1:])
            and next_entry[-1] == n_lines
            and np.array_equal(counts, expected)
        )
    if not ok:
        raise _walk_error(path, NumericLines(values[: int(counts.sum())], counts, lines.first_line))

    not_int = np.flatnonzero(values != np.rint(values))
    if not_int.size:
        line = int(np.searchsorted(np.cumsum(counts), not_int[0], side="right"))
        raise FormatError(path, lines.line_number(line), "wsvec.dat holds integers only")
    ints = values[: int(counts.sum())].astype(np.int64)
    head = ints[offsets[entry][:, None] + np.arange(5)]
    R, m, n = head[:, :3], head[:, 3] - 1, head[:, 4] - 1
    bad = np.flatnonzero((m < 0) | (n < 0))
    if bad.size:
        raise FormatError(path, lines.line_number(int(entry[bad[0]])), "Wannier indices m, n must be >= 1")
    _, first_index, inverse = np.unique(head, axis=0, return_index=True, return_inverse=True)
    dup = np.flatnonzero(first_index[inverse.reshape(-1)] != np.arange(head.shape[0]))
    if dup.size:
        e = int(dup[0])
        e0 = int(first_index[inverse.reshape(-1)[e]])
        raise FormatError(
            path,
            lines.line_number(int(entry[e])),
            f"entry R={tuple(R[e].tolist())} m={m[e] + 1} n={n[e] + 1} given twice "
            f"(first on line {lines.line_number(int(entry[e0]))})",
        )
    shift_lines = np.flatnonzero(counts == 3)
    T = ints[offsets[shift_lines][:, None] + np.arange(3)]
    shifts = np.split(T, np.cumsum(n_shift)[:-1])
    return WsvecData(R=R, m=m, n=n, shifts=shifts, use_ws_distance=flag)


def _lexsort_rows(R: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Order sorting by (R1, R2, R3, i, j)."""
    return np.lexsort((j, i, R[:, 2], R[:, 1], R[:, 0]))


def apply_wsvec(
    hr: HrData, wsvec: WsvecData | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flatten an hr.dat Hamiltonian into a COO list of physical hoppings.

    Each ``H_mn(R) / ndegen(R)`` is split equally over the ``nT`` shifts of its
    wsvec entry and placed at ``R + T`` (Wannier90 ``use_ws_distance``
    semantics); hoppings landing on the same ``(R, i, j)`` are summed.

    Parameters
    ----------
    hr : HrData
        The Hamiltonian as read by :func:`wander.io.read_hr`.
    wsvec : WsvecData or None
        Shifts from :func:`read_wsvec`; ``None`` keeps every hopping at its R.

    Returns
    -------
    R : numpy.ndarray
        (M, 3) int64 lattice vectors.
    i, j : numpy.ndarray
        (M,) int64 0-based Wannier indices, ``t = <i, 0 | H | j, R>``.
    t : numpy.ndarray
        (M,) complex128 hoppings in eV; exactly-zero entries are dropped.
        Sorted by (R, i, j), no repeated ``(R, i, j)``.

    Raises
    ------
    ValueError
        ``wsvec`` does not list every ``(R, m, n)`` of ``hr`` exactly once.
    """
    nw = hr.num_wann
    hop = hr.hoppings()
    if wsvec is None:
        r, i, j = np.nonzero(hop)
        R = hr.R[r]
        t = hop[r, i, j]
    else:
        n_entries = wsvec.R.shape[0]
        if n_entries != hr.R.shape[0] * nw * nw:
            raise ValueError(
                f"wsvec has {n_entries} entries but hr has nR x num_wann^2 = {hr.R.shape[0]} x {nw}^2"
            )
        if np.any(wsvec.m >= nw) or np.any(wsvec.n >= nw):
            raise ValueError(f"wsvec has Wannier indices beyond num_wann={nw}")
        if np.any(wsvec.m < 0) or np.any(wsvec.n < 0):
            raise ValueError("wsvec has negative Wannier indices")
        keys, inverse = np.unique(np.concatenate([hr.R, wsvec.R]), axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        r_of_key = np.full(keys.shape[0], -1, dtype=np.int64)
        r_of_key[inverse[: hr.R.shape[0]]] = np.arange(hr.R.shape[0])
        r_entry = r_of_key[inverse[hr.R.shape[0] :]]
        if np.any(r_entry < 0):
            e = int(np.flatnonzero(r_entry < 0)[0])
            raise ValueError(f"wsvec entry R={tuple(wsvec.R[e].tolist())} is not an R vector of hr")
        flat = (r_entry * nw + wsvec.m) * nw + wsvec.n
        if np.bincount(flat, minlength=hr.R.shape[0] * nw * nw).max() > 1:
            raise ValueError("wsvec lists some (R, m, n) more than once")
        n_shift = np.fromiter((s.shape[0] for s in wsvec.shifts), dtype=np.int64, count=n_entries)
        if np.any(n_shift < 1):
            raise ValueError("every wsvec entry needs at least one shift")
        T = np.concatenate(wsvec.shifts).astype(np.int64).reshape(-1, 3)
        rep = np.repeat(np.arange(n_entries), n_shift)
        R_all = wsvec.R[rep] + T
        i_all, j_all = wsvec.m[rep], wsvec.n[rep]
        t_all = hop.reshape(-1)[flat[rep]] / n_shift[rep]
        keys, inverse = np.unique(np.column_stack([R_all, i_all, j_all]), axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        t = np.bincount(inverse, weights=t_all.real, minlength=keys.shape[0]) + 1j * np.bincount(
            inverse, weights=t_all.imag, minlength=keys.shape[0]
        )
        R, i, j = keys[:, :3], keys[:, 3], keys[:, 4]
    keep = t != 0
    R, i, j, t = R[keep], i[keep], j[keep], t[keep]
    order = _lexsort_rows(R, i, j)
    return (
        np.ascontiguousarray(R[order], dtype=np.int64),
        i[order].astype(np.int64),
        j[order].astype(np.int64),
        t[order].astype(np.complex128),
    )
