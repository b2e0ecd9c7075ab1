"""Periodic in-plane neighbour queries and honeycomb sublattices of 2D layers (helpers of the moire maps).

All functions work on the in-plane (x, y) coordinates of a 2D system whose first two cell vectors
span the plane (pbc ``(T, T, F)``); periodic images are generated only as far as a query radius
needs, so memory stays linear in the number of atoms.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from scipy.spatial import cKDTree

__all__ = ["PeriodicPlane", "layer_indices", "sublattice_a"]


def layer_indices(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the bottom (layer 0) and top (layer 1) atoms; needs ``atoms.arrays["layer"]``."""
    if "layer" not in atoms.arrays:
        raise ValueError('moire maps need layer tags: atoms.arrays["layer"] (0 bottom, 1 top)')
    layer = np.asarray(atoms.arrays["layer"])
    bottom, top = np.flatnonzero(layer == 0), np.flatnonzero(layer == 1)
    if len(bottom) == 0 or len(top) == 0:
        raise ValueError("moire maps need atoms in both layer 0 and layer 1")
    return bottom, top


def _check_2d(atoms: Atoms) -> np.ndarray:
    cell = np.array(atoms.cell)
    if tuple(bool(p) for p in atoms.pbc) != (True, True, False):
        raise ValueError(f"moire maps need a 2D system with pbc (True, True, False), got {tuple(atoms.pbc)}")
    if np.abs(cell[:2, 2]).max() > 1e-8:
        raise ValueError("the in-plane cell vectors must have zero z component")
    return cell[:2, :2]


class PeriodicPlane:
    """Points of one 2D-periodic set (e.g. one layer) for neighbour queries with the minimum image.

    Parameters
    ----------
    xy : (M, 2) Angstrom
        In-plane positions.
    cell2 : (2, 2) Angstrom
        In-plane cell vectors (rows).
    radius : float
        Largest query radius that must be honoured exactly (Angstrom).
    """

    def __init__(self, xy: np.ndarray, cell2: np.ndarray, radius: float) -> None:
        self.cell2 = np.asarray(cell2, dtype=float)
        frac = np.linalg.solve(self.cell2.T, np.asarray(xy, dtype=float).T).T
        frac -= np.floor(frac)
        # heights of the cell along each reciprocal direction -> number of image shells needed
        area = abs(np.linalg.det(self.cell2))
        heights = area / np.linalg.norm(self.cell2, axis=1)[::-1]
        reps = np.ceil(radius / heights).astype(int)
        margin = radius / heights
        shifts = np.array([(i, j) for i in range(-reps[0], reps[0] + 1) for j in range(-reps[1], reps[1] + 1)])
        pts, idx = [], []
        base = np.arange(len(frac))
        for s in shifts:  # loop over a handful of image shells, each vectorised over all points
            f = frac + s
            keep = ((f[:, 0] > -margin[0]) & (f[:, 0] < 1 + margin[0])
                    & (f[:, 1] > -margin[1]) & (f[:, 1] < 1 + margin[1]))
            pts.append(f[keep] @ self.cell2)
            idx.append(base[keep])
        self.points = np.concatenate(pts)          # (M', 2) Cartesian images
        self.index = np.concatenate(idx)           # (M',) original index of every image
        self.tree = cKDTree(self.points)
        self.radius = float(radius)

    def wrap(self, xy: np.ndarray) -> np.ndarray:
        """Positions folded into the cell (same shape)."""
        frac = np.linalg.solve(self.cell2.T, np.asarray(xy, dtype=float).T).T
        return (frac - np.floor(frac)) @ self.cell2

    def nearest(self, xy: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``k`` nearest points of every query: distances (Q, k), original indices (Q, k), vectors (Q, k, 2).

        Vectors point from the query to the neighbour image (minimum image).
        """
        q = self.wrap(xy)
        d, i = self.tree.query(q, k=k)
        d, i = d.reshape(len(q), k), i.reshape(len(q), k)
        vec = self.points[i] - q[:, None, :]
        return d, self.index[i], vec

    def ball(self, xy: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All pairs within ``radius`` (<= the construction radius) as flat arrays (query, index, vector)."""
        if radius > self.radius + 1e-12:
            raise ValueError(f"query radius {radius} exceeds the construction radius {self.radius}")
        q = self.wrap(xy)
        other = cKDTree(q)
        pairs = other.sparse_distance_matrix(self.tree, radius, output_type="coo_matrix")
        qi, pi = pairs.row.astype(np.int64), pairs.col.astype(np.int64)
        return qi, self.index[pi], self.points[pi] - q[qi]


def sublattice_a(atoms: Atoms, idx: np.ndarray, min_separation: float = 0.3) -> tuple[np.ndarray, float, float]:
    """Honeycomb sublattice of the atoms ``idx`` of one layer, and the layer's bond angle and length.

    Every atom's nearest in-plane neighbour (at least ``min_separation`` Angstrom away in projection,
    so that the two chalcogens of an MX2 site count as one) sits on the other sublattice; the bond
    angle modulo 120 degrees separates the sublattices (they differ by 60 degrees). Sublattice A is the
    one of the first atom in ``idx`` (the metal / B / first C of the structures built by
    :mod:`wander.structures`).

    Returns
    -------
    is_a : (len(idx),) bool
    phi_a : float
        Direction of the A -> B bonds, radians, modulo 2 pi / 3.
    bond : float
        Median in-plane nearest-neighbour distance, Angstrom.
    """
    cell2 = _check_2d(atoms)
    xy = atoms.positions[idx, :2]
    plane = PeriodicPlane(xy, cell2, radius=6.0)
    d, _, vec = plane.nearest(xy, k=min(8, len(plane.points)))
    far = d >= min_separation
    if not far.any(axis=1).all():
        raise ValueError("some atoms have no in-plane neighbour: not a honeycomb layer")
    first = np.argmax(far, axis=1)
    v = vec[np.arange(len(xy)), first]
    bond = float(np.median(d[np.arange(len(xy)), first]))
    period = 2 * np.pi / 3
    ang = np.mod(np.arctan2(v[:, 1], v[:, 0]), period)
    dist = np.abs(np.mod(ang - ang[0] + period / 2, period) - period / 2)
    is_a = dist < period / 4
    phi_a = float(ang[0])
    return is_a, phi_a, bond
