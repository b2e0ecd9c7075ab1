"""Wannier90 band-structure output: ``seedname_band.dat`` and ``seedname_band.kpt``.

``seedname_band.dat`` (``bands_plot = true``) holds one block per band, blocks
separated by blank lines, each line ``distance energy`` (path length in 1/Angstrom,
including the 2 pi of Wannier90's reciprocal vectors; energy in eV).  A third
column (``bands_plot_project``) is accepted and ignored.

``seedname_band.kpt`` holds the number of k-points on line 1, then one line
``k1 k2 k3 weight`` per k-point, k fractional in the reciprocal basis.
"""

from __future__ import annotations

import os

import numpy as np

from .errors import FormatError
from .numeric_text import LineCursor, parse_count, parse_numeric_lines, read_bytes

__all__ = ["read_band_dat", "read_band_kpt"]


def read_band_dat(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a Wannier90 ``seedname_band.dat`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    distance : numpy.ndarray
        (nk,) float64 distance along the k-path, 1/Angstrom.
    energies : numpy.ndarray
        (nk, nbands) float64 band energies, eV.

    Raises
    ------
    FormatError
        Empty file, non-numeric values, lines with other than 2 (or 3) columns,
        bands of different lengths, or bands on different k distances.
    """
    lines = parse_numeric_lines(path, read_bytes(path), 1)
    counts = lines.counts
    filled = np.flatnonzero(counts)
    if filled.size == 0:
        raise FormatError(path, 1, "no data")
    ncol = int(counts[filled[0]])
    if ncol not in (2, 3):
        raise FormatError(path, lines.line_number(int(filled[0])), f"expected 2 columns, found {ncol}")
    wrong = filled[counts[filled] != ncol]
    if wrong.size:
        i = int(wrong[0])
        raise FormatError(path, lines.line_number(i), f"expected {ncol} columns, found {int(counts[i])}")
    # blocks = runs of consecutive non-blank lines
    breaks = np.flatnonzero(np.diff(filled) > 1)
    starts = np.concatenate(([filled[0]], filled[breaks + 1]))
    ends = np.concatenate((filled[breaks], [filled[-1]])) + 1
    sizes = ends - starts
    nk = int(sizes[0])
    uneven = np.flatnonzero(sizes != nk)
    if uneven.size:
        b = int(uneven[0])
        raise FormatError(
            path, lines.line_number(int(starts[b])), f"band {b + 1} has {int(sizes[b])} points, band 1 has {nk}"
        )
    table = lines.values.reshape(sizes.size, nk, ncol)
    distance = table[0, :, 0]
    mismatch = np.flatnonzero(np.any(np.abs(table[:, :, 0] - distance) > 1e-6 * (1.0 + np.abs(distance)), axis=0))
    if mismatch.size:
        k = int(mismatch[0])
        b = int(np.flatnonzero(np.abs(table[:, k, 0] - distance[k]) > 1e-6 * (1.0 + abs(distance[k])))[0])
        raise FormatError(
            path, lines.line_number(int(starts[b]) + k), f"k distance differs from band 1 ({distance[k]!r})"
        )
    return distance.copy(), np.ascontiguousarray(table[:, :, 1].T)


def read_band_kpt(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a Wannier90 ``seedname_band.kpt`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    kpoints : numpy.ndarray
        (nk, 3) float64 fractional k-points (reciprocal basis).
    weights : numpy.ndarray
        (nk,) float64 weights.

    Raises
    ------
    FormatError
        Missing or bad count line, lines without 4 numbers, or a number of
        k-point lines that differs from the count.
    """
    cursor = LineCursor(read_bytes(path))
    nk = parse_count(path, cursor.next(), "k-points")
    lines = parse_numeric_lines(path, cursor.rest(), 2)
    counts = lines.counts
    filled = np.flatnonzero(counts)
    n_lines = int(filled[-1]) + 1 if filled.size else 0
    wrong = np.flatnonzero(counts[: min(n_lines, nk)] != 4)
    if wrong.size:
        i = int(wrong[0])
        raise FormatError(path, lines.line_number(i), f"expected 'k1 k2 k3 weight', found {int(counts[i])} fields")
    if n_lines < nk:
        raise FormatError(
            path, lines.line_number(n_lines), f"file truncated: line 1 announces {nk} k-points, found {n_lines}"
        )
    if n_lines > nk:
        raise FormatError(path, lines.line_number(nk), f"more than the {nk} k-points announced on line 1")
    table = lines.values.reshape(nk, 4)
    return np.ascontiguousarray(table[:, :3]), table[:, 3].copy()
