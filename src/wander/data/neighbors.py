"""Neighbour lists for periodic, slab (periodic in-plane, open along z) and open systems.

Convention (identical to :func:`ase.neighborlist.neighbor_list`): for every pair ``(i, j, S)``
the neighbour vector is

    D = x[j] - x[i] + S @ cell          (Angstrom; cell vectors are rows)

with ``S`` an integer shift that is zero along every non-periodic axis. Every pair appears in both
directions, self-pairs (``i == j`` with ``S == 0``) never appear, and the pair list is sorted by
``i``. The backend is :func:`matscipy.neighbours.neighbour_list` (tested equal to ASE's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

__all__ = ["NeighborList", "neighbor_list"]


@dataclass(frozen=True)
class NeighborList:
    """Pairs within ``cutoff``.

    Attributes
    ----------
    i, j : (n_pairs,) int64
        Centre and neighbour atom indices.
    shift : (n_pairs, 3) int64
        Integer lattice shift ``S`` of the neighbour image.
    cutoff : float
        Cutoff radius in Angstrom (pairs with ``|D| < cutoff``).
    """

    i: np.ndarray
    j: np.ndarray
    shift: np.ndarray
    cutoff: float

    def vectors(self, positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
        """Neighbour vectors ``D = x[j] - x[i] + S @ cell``, shape (n_pairs, 3), Angstrom."""
        positions = np.asarray(positions, dtype=float)
        return positions[self.j] - positions[self.i] + self.shift @ np.asarray(cell, dtype=float)

    def __len__(self) -> int:
        return int(self.i.shape[0])


def _search_cell(atoms: Atoms, cutoff: float) -> np.ndarray:
    """Cell used for the search: periodic vectors kept, open axes replaced by a box that holds every atom.

    Along a non-periodic axis the cell vector only fixes the binning of the search, so it is replaced
    by a vector orthogonal to the periodic ones and long enough that no atom is closer than
    ``cutoff`` to its own image. Shifts along open axes are zero either way.
    """
    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = np.array(atoms.cell, dtype=float)
    periodic = cell[pbc]
    if periodic.shape[0] and np.linalg.matrix_rank(periodic, tol=1e-8) < periodic.shape[0]:
        raise ValueError(f"periodic cell vectors are linearly dependent: {periodic.tolist()}")
    if pbc.all():
        return cell
    # orthonormal basis of the complement of the periodic span
    if periodic.shape[0]:
        _, _, vt = np.linalg.svd(periodic)
        complement = vt[periodic.shape[0]:]
    else:
        complement = np.eye(3)
    pos = atoms.positions
    for axis, normal in zip(np.flatnonzero(~pbc), complement):
        proj = pos @ normal if len(pos) else np.zeros(1)
        extent = float(proj.max() - proj.min()) if len(pos) else 0.0
        cell[axis] = normal * (extent + 2.0 * cutoff + 1.0)
    return cell


def neighbor_list(atoms: Atoms, cutoff: float) -> NeighborList:
    """All pairs closer than ``cutoff`` (Angstrom), honouring ``atoms.pbc`` per axis.

    Parameters
    ----------
    atoms
        Structure. Along periodic axes the cell vector must be non-degenerate; along open axes the
        cell vector is ignored (it may be zero).
    cutoff
        Cutoff radius in Angstrom, > 0.

    Returns
    -------
    NeighborList
        Pairs sorted by centre index ``i``.
    """
    from matscipy.neighbours import neighbour_list as _matscipy_nl

    if not np.isfinite(cutoff) or cutoff <= 0:
        raise ValueError(f"cutoff must be a positive finite number, got {cutoff!r}")
    n = len(atoms)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return NeighborList(empty, empty, np.zeros((0, 3), dtype=np.int64), float(cutoff))
    if not np.isfinite(atoms.positions).all():
        raise ValueError("atoms.positions contain non-finite values")
    cell = _search_cell(atoms, cutoff)
    i, j, shift = _matscipy_nl(
        "ijS", positions=np.ascontiguousarray(atoms.positions, dtype=float),
        cell=cell, pbc=np.asarray(atoms.pbc, dtype=bool), cutoff=float(cutoff),
    )
    if len(i) > 1 and np.any(i[1:] < i[:-1]):  # matscipy already sorts by i; keep the contract anyway
        order = np.argsort(i, kind="stable")
        i, j, shift = i[order], j[order], shift[order]
        del order
    # one array at a time, so that the narrow originals are freed as they are widened
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64).reshape(-1, 3)
    return NeighborList(i, j, shift, float(cutoff))
