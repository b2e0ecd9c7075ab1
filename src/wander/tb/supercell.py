"""Supercells of tight-binding hopping lists (vectorised, exact integer arithmetic)."""

from __future__ import annotations

import numpy as np

__all__ = ["supercell_translations", "supercell_hoppings"]


def _check_matrix(P: np.ndarray, pbc: tuple[bool, bool, bool]) -> tuple[np.ndarray, int, np.ndarray]:
    P = np.asarray(P)
    if P.shape != (3, 3) or not np.all(np.isfinite(P)) or np.any(P != np.round(P)):
        raise ValueError(f"supercell matrix must be a (3, 3) integer matrix, got {P!r}")
    P = np.round(P).astype(np.int64)
    det = int(round(np.linalg.det(P)))
    if det <= 0:
        raise ValueError(f"supercell matrix must have a positive determinant, got {det}")
    for axis in range(3):
        if not pbc[axis]:
            e = np.eye(3, dtype=np.int64)[axis]
            if not (np.array_equal(P[axis], e) and np.array_equal(P[:, axis], e)):
                raise ValueError(f"supercell matrix must be the identity along non-periodic direction {axis}")
    adj = np.round(np.linalg.inv(P) * det).astype(np.int64)  # integer adjugate: P @ adj = det
    if not np.array_equal(P @ adj, det * np.eye(3, dtype=np.int64)):  # pragma: no cover
        raise ValueError("could not invert the supercell matrix exactly")
    return P, det, adj


def supercell_translations(P: np.ndarray, pbc: tuple[bool, bool, bool] = (True, True, True)) -> np.ndarray:
    """Primitive lattice vectors ``T`` (integer, primitive basis) inside the supercell ``P``.

    Returns
    -------
    (det P, 3) int64
        The translations with ``T @ inv(P)`` in ``[0, 1)^3``, sorted lexicographically.
    """
    P, det, adj = _check_matrix(P, pbc)
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)]) @ P
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    grids = np.meshgrid(*(np.arange(lo[a], hi[a] + 1) for a in range(3)), indexing="ij")
    T = np.stack([g.ravel() for g in grids], axis=1)
    f = T @ adj
    T = T[np.all((f >= 0) & (f < det), axis=1)]
    if len(T) != det:  # pragma: no cover - internal invariant
        raise RuntimeError(f"found {len(T)} cells in a supercell of volume {det}")
    return T


def supercell_hoppings(
    P: np.ndarray,
    cell: np.ndarray,
    pbc: tuple[bool, bool, bool],
    positions: np.ndarray,
    R: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    t: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Hopping list of the supercell with rows ``P @ cell``.

    Supercell orbital ``c * n + a`` is primitive orbital ``a`` translated by ``T_c``
    (:func:`supercell_translations`). Each primitive hopping generates ``det P`` supercell
    hoppings: from ``(T_c, i)`` to ``(T_c + R, j)``, with ``T_c + R = R' P + T_d``.

    Returns
    -------
    R' : (m * det, 3) int64
    i', j' : (m * det,) int64
    t' : (m * det,) complex128
    positions : (n * det, 3) float, Angstrom
    cell_index : (n * det,) int64
        Supercell-translation index of every orbital.
    det : int
    """
    P, det, adj = _check_matrix(P, pbc)
    T = supercell_translations(P, pbc)
    n = len(positions)
    m = len(t)
    pos = (positions[None, :, :] + (T @ np.asarray(cell, dtype=float))[:, None, :]).reshape(-1, 3)
    # translation index lookup via sorted integer keys
    lo = T.min(axis=0)
    span = T.max(axis=0) - lo + 1

    def _key(v: np.ndarray) -> np.ndarray:
        return ((v[:, 0] - lo[0]) * span[1] + (v[:, 1] - lo[1])) * span[2] + (v[:, 2] - lo[2])

    tkeys = _key(T)
    sorter = np.argsort(tkeys)
    target = (T[:, None, :] + R[None, :, :]).reshape(-1, 3)  # (det * m, 3)
    f = target @ adj
    Rs = np.floor_divide(f, det)
    Td = target - Rs @ P
    d = sorter[np.searchsorted(tkeys, _key(Td), sorter=sorter)]
    c = np.repeat(np.arange(det), m)
    i_new = c * n + np.tile(i, det)
    j_new = d * n + np.tile(j, det)
    cell_of_orbital = np.repeat(np.arange(det), n)
    return Rs.astype(np.int64), i_new, j_new, np.tile(t, det), pos, cell_of_orbital, det
