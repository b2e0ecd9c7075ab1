"""Geometric nested-dissection ordering for sparse factorisations of ``H(k) - sigma``.

Orbitals have positions, so a fill-reducing ordering can be built from geometry instead of a
graph partitioner: first remove the orbitals touching hoppings that cross the cell boundary
(one separator per periodic direction turns the torus into a disc), then bisect the disc
recursively at the median coordinate of its longest extent; each separator is the set of orbitals
on one side that have a hopping to the other side. Separators are numbered after the two halves
they separate. Geometry only affects the quality of the ordering: every separator is built from
the hopping graph itself, so the ordering is valid for any positions.

The pattern of ``H(k)`` is the same for every ``k``, so the ordering is computed once per
Hamiltonian and reused at every k-point.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["nested_dissection_order"]


def _boundary_separator(mask_edges: np.ndarray, i: np.ndarray, j: np.ndarray, coord: np.ndarray, n: int) -> np.ndarray:
    """Orbitals covering the selected edges (the endpoint with the smaller coordinate)."""
    sep = np.zeros(n, dtype=bool)
    a, b = i[mask_edges], j[mask_edges]
    sep[np.where(coord[a] <= coord[b], a, b)] = True
    return sep


def nested_dissection_order(
    n_orbitals: int,
    R: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    frac_positions: np.ndarray,
    cell: np.ndarray,
    pbc: tuple[bool, bool, bool],
    leaf_size: int = 64,
) -> np.ndarray:
    """Fill-reducing permutation of the orbitals.

    Parameters
    ----------
    n_orbitals : int
    R : (m, 3) int
        Lattice vectors of the hoppings (either half; direction is irrelevant).
    i, j : (m,) int
        Orbital indices of the hoppings.
    frac_positions : (n_orbitals, 3) float
        Orbital positions, fractional coordinates.
    cell : (3, 3) float
        Cell vectors (rows), Angstrom.
    pbc : 3 bools
    leaf_size : int
        Subdomains with at most this many orbitals are not split further.

    Returns
    -------
    (n_orbitals,) int64
        ``order`` such that ``H[order][:, order]`` factorises with little fill.
    """
    n = int(n_orbitals)
    keep = ~(np.all(R == 0, axis=1) & (i == j))
    R, i, j = R[keep], i[keep], j[keep]
    frac = np.asarray(frac_positions, dtype=float)
    removed = np.zeros(n, dtype=bool)
    tail: list[np.ndarray] = []
    for axis in range(3):
        if not pbc[axis]:
            continue
        crossing = (R[:, axis] != 0) & ~removed[i] & ~removed[j]
        sep = _boundary_separator(crossing, i, j, frac[:, axis], n) & ~removed
        removed |= sep
        tail.append(np.flatnonzero(sep))
    inside = np.all(R == 0, axis=1) & ~removed[i] & ~removed[j]
    adj = sp.csr_matrix(
        (np.ones(int(inside.sum()), dtype=np.int8), (i[inside], j[inside])), shape=(n, n)
    )
    adj = (adj + adj.T).tocsr()
    xyz = frac @ np.asarray(cell, dtype=float)
    out: list[np.ndarray] = []
    stack: list[tuple[np.ndarray, bool]] = [(np.flatnonzero(~removed), False)]
    # explicit stack: (orbital set, children done?) -> post-order: halves first, then separator
    pending_sep: list[np.ndarray] = []
    while stack:
        idx, done = stack.pop()
        if done:
            out.append(pending_sep.pop())
            continue
        if len(idx) <= leaf_size:
            out.append(idx)
            continue
        p = xyz[idx]
        axis = int(np.argmax(np.ptp(p, axis=0)))
        median = np.median(p[:, axis])
        left = p[:, axis] < median
        if left.all() or not left.any():
            out.append(idx)
            continue
        sub = adj[idx][:, idx].tocoo()
        cut = left[sub.row] & ~left[sub.col]
        sep = np.zeros(len(idx), dtype=bool)
        sep[sub.col[cut]] = True
        pending_sep.append(idx[sep])
        stack.append((idx, True))
        stack.append((idx[~left & ~sep], False))
        stack.append((idx[left], False))
    order = np.concatenate(out + tail[::-1]) if out or tail else np.zeros(0, dtype=np.int64)
    if len(order) != n or len(np.unique(order)) != n:  # pragma: no cover - internal invariant
        raise RuntimeError("nested dissection lost orbitals")
    return order.astype(np.int64)
