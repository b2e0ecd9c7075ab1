"""Half-stored atom-pair lists of a structure and their physical categories.

Categories (after the seed method), each with its own head weights per ordered element pair:

==========  =====  ===============================================================
name        code   pairs
==========  =====  ===============================================================
onsite      0      the atom itself, R = 0
intra_near  1      same layer, 0 < r < r_near
intra_long  2      same layer, r_near <= r < r_cut
inter       3      different layers, r < r_cut
==========  =====  ===============================================================

Storage follows docs/conventions.md: each unordered pair appears once, as ``(i, j, R)`` with
R > 0 lexicographically, or R = 0 and i < j; onsite entries are ``(i, i, 0)``. The bond vector is
``r = x_j + R @ cell - x_i`` (Angstrom). Layers come from ``atoms.arrays["layer"]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from wander.data.neighbors import neighbor_list

__all__ = [
    "CATEGORIES",
    "INTER",
    "INTRA_LONG",
    "INTRA_NEAR",
    "ONSITE",
    "PairList",
    "assign_categories",
    "half_stored",
    "hamiltonian_pairs",
    "layers_of",
]

ONSITE, INTRA_NEAR, INTRA_LONG, INTER = 0, 1, 2, 3
#: Category names by code.
CATEGORIES: tuple[str, ...] = ("onsite", "intra_near", "intra_long", "inter")


@dataclass(frozen=True)
class PairList:
    """Half-stored atom pairs of one structure.

    Attributes
    ----------
    i, j : (P,) int64
        Row and column atoms of each block.
    R : (P, 3) int64
        Lattice shift of atom j.
    category : (P,) int64
        Category code (see module docstring).
    distance : (P,) float64
        ``|x_j + R @ cell - x_i|`` in Angstrom.
    """

    i: np.ndarray
    j: np.ndarray
    R: np.ndarray
    category: np.ndarray
    distance: np.ndarray

    def __len__(self) -> int:
        return int(self.i.shape[0])

    def vectors(self, atoms: Atoms, sl: slice = slice(None)) -> np.ndarray:
        """Bond vectors ``x_j + R @ cell - x_i`` of the pairs ``sl`` (default all), (P, 3) Angstrom."""
        return _vectors(atoms, self.i[sl], self.j[sl], self.R[sl])

    def counts(self) -> dict[str, int]:
        """Number of pairs of every category."""
        n = np.bincount(self.category, minlength=len(CATEGORIES))
        return {name: int(n[k]) for k, name in enumerate(CATEGORIES)}


def half_stored(i: np.ndarray, j: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Mask of the pairs kept by half storage: R > 0 lexicographically, or R = 0 and i <= j."""
    R = np.asarray(R)
    nz = R != 0
    first = np.argmax(nz, axis=1)
    lead = R[np.arange(R.shape[0]), first]
    zero = ~nz.any(axis=1)
    return np.where(zero, np.asarray(i) <= np.asarray(j), lead > 0)


def layers_of(atoms: Atoms, required: bool) -> np.ndarray | None:
    """``atoms.arrays["layer"]`` as int64; ``ValueError`` if ``required`` and absent."""
    if "layer" not in atoms.arrays:
        if required:
            raise ValueError(
                "this model has an interlayer category and needs atoms.arrays['layer'] "
                "(0 = bottom, 1 = top); the structure has no layer tags"
            )
        return None
    layer = np.asarray(atoms.arrays["layer"])
    if layer.shape != (len(atoms),) or not np.issubdtype(layer.dtype, np.integer):
        raise ValueError(f"atoms.arrays['layer'] must be ({len(atoms)},) integers, got {layer.dtype} {layer.shape}")
    return layer.astype(np.int64)


def assign_categories(distance: np.ndarray, same_layer: np.ndarray | None, r_near: float,
                      onsite: np.ndarray | None = None) -> np.ndarray:
    """Category code of every pair.

    Parameters
    ----------
    distance : (P,) Angstrom
    same_layer : (P,) bool or None (None: a single-layer model, every pair is intralayer)
    r_near : float, Angstrom
    onsite : (P,) bool, optional; marks onsite entries
    """
    d = np.asarray(distance, dtype=float)
    cat = np.where(d < r_near, INTRA_NEAR, INTRA_LONG).astype(np.int64)
    if same_layer is not None:
        cat = np.where(np.asarray(same_layer, dtype=bool), cat, INTER)
    if onsite is not None:
        cat = np.where(onsite, ONSITE, cat)
    return cat


def _vectors(atoms: Atoms, i: np.ndarray, j: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Bond vectors ``x_j + R @ cell - x_i`` of pairs, (P, 3) Angstrom."""
    return atoms.positions[j] - atoms.positions[i] + R @ np.asarray(atoms.cell, dtype=float)


def _distances(atoms: Atoms, i: np.ndarray, j: np.ndarray, R: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """``|x_j + R @ cell - x_i|`` (Angstrom) of pairs, in chunks (no (P, 3) temporary)."""
    out = np.empty(len(i))
    for s in range(0, len(i), chunk):
        sl = slice(s, s + chunk)
        out[sl] = np.linalg.norm(_vectors(atoms, i[sl], j[sl], R[sl]), axis=1)
    return out


def hamiltonian_pairs(atoms: Atoms, r_cut: float, r_near: float, layered: bool = True,
                      onsite: bool = True) -> PairList:
    """All half-stored pairs closer than ``r_cut``, onsite entries first.

    Parameters
    ----------
    atoms
        Structure; ``atoms.arrays["layer"]`` is required when ``layered``.
    r_cut, r_near
        Hopping cutoff and near/long boundary, Angstrom, ``0 < r_near <= r_cut``.
    layered
        Whether interlayer pairs form their own category.
    onsite
        Whether to include the onsite entries ``(i, i, 0)``.
    """
    if not 0 < r_near <= r_cut:
        raise ValueError(f"need 0 < r_near <= r_cut, got r_near={r_near}, r_cut={r_cut}")
    layer = layers_of(atoms, required=layered) if layered else None
    # Whole-structure arrays are freed as soon as they are used: this list is built for up to 1e6
    # atoms (about 5e7 pairs), where every int64 (P,) array is 0.4 GB.
    nl = neighbor_list(atoms, r_cut)
    keep = half_stored(nl.i, nl.j, nl.shift)
    i, j, R = nl.i[keep], nl.j[keep], nl.shift[keep]
    del nl, keep
    order = np.lexsort((R[:, 2], R[:, 1], R[:, 0], j, i))
    i, j, R = i[order], j[order], R[order]
    del order
    dist = _distances(atoms, i, j, R)
    same = None if layer is None else layer[i] == layer[j]
    cat = assign_categories(dist, same, r_near)
    del same
    if onsite:
        n = len(atoms)
        idx = np.arange(n, dtype=np.int64)
        i, j = np.concatenate([idx, i]), np.concatenate([idx, j])
        R = np.concatenate([np.zeros((n, 3), dtype=np.int64), R])
        cat = np.concatenate([np.full(n, ONSITE, dtype=np.int64), cat])
        dist = np.concatenate([np.zeros(n), dist])
    return PairList(i.astype(np.int64, copy=False), j.astype(np.int64, copy=False), R.astype(np.int64, copy=False),
                    cat, dist)
