"""Hexagonal 2D lattice helpers shared by the structure builders.

Cell convention (used by every builder in :mod:`wander.structures`)::

    a1 = (a, 0, 0)
    a2 = (a/2, a*sqrt(3)/2, 0)        # 60 degrees from a1, counter-clockwise
    a3 = (0, 0, c)                    # c = vacuum + slab thickness

Cell vectors are rows (``atoms.cell[i]`` is a_i).  Fractional in-plane
coordinates ``(f1, f2)`` mean ``f1*a1 + f2*a2``.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

SQRT3 = float(np.sqrt(3.0))

#: relative tolerance used to compare lattice constants and cell angles
CELL_RTOL = 1e-6


def hexagonal_cell(a: float, c: float) -> np.ndarray:
    """Hexagonal cell in the package convention.

    Parameters
    ----------
    a : float
        In-plane lattice constant (Angstrom), > 0.
    c : float
        Length of the out-of-plane vector (Angstrom), > 0.

    Returns
    -------
    numpy.ndarray, shape (3, 3)
        Rows a1, a2, a3 in Angstrom.
    """
    if not a > 0 or not c > 0:
        raise ValueError(f"lattice constants must be positive, got a={a}, c={c}")
    return np.array([[a, 0.0, 0.0], [a / 2, a * SQRT3 / 2, 0.0], [0.0, 0.0, c]])


def check_layer(atoms: Atoms, what: str = "layer") -> None:
    """Raise ``ValueError`` unless ``atoms`` is a 2D slab in the package convention.

    Requires ``pbc == (True, True, False)``, in-plane vectors with zero z component and
    a third vector along z.
    """
    if not isinstance(atoms, Atoms):
        raise TypeError(f"{what} must be an ase.Atoms, got {type(atoms).__name__}")
    if len(atoms) == 0:
        raise ValueError(f"{what} has no atoms")
    if tuple(bool(p) for p in atoms.pbc) != (True, True, False):
        raise ValueError(f"{what} must have pbc=(True, True, False), got {tuple(atoms.pbc)}")
    cell = np.asarray(atoms.cell)
    scale = np.abs(cell).max()
    if np.abs(cell[:2, 2]).max() > 1e-9 * scale or np.abs(cell[2, :2]).max() > 1e-9 * scale:
        raise ValueError(f"{what}: in-plane cell vectors must have zero z and a3 must be along z")


def primitive_hexagonal(atoms: Atoms, what: str = "layer") -> tuple[float, np.ndarray, np.ndarray]:
    """Lattice constant, in-plane primitive vectors and fractional basis of a hexagonal layer.

    Accepts the package convention (60 degrees between a1 and a2) and the other common
    one (120 degrees, as in ``ase.build.graphene``); the latter is converted with
    a2' = a1 + a2 so the returned vectors are always 60 degrees apart, counter-clockwise.

    Parameters
    ----------
    atoms : ase.Atoms
        A primitive hexagonal monolayer (one lattice point per cell).

    Returns
    -------
    a : float
        Lattice constant (Angstrom).
    vectors : numpy.ndarray, shape (2, 2)
        Rows a1, a2 (in-plane Cartesian, Angstrom).
    frac : numpy.ndarray, shape (n_basis, 2)
        Fractional in-plane coordinates of the basis atoms in (a1, a2), in [0, 1).
    """
    check_layer(atoms, what)
    cell = np.asarray(atoms.cell)[:2, :2]
    la, lb = np.linalg.norm(cell, axis=1)
    if abs(la - lb) > CELL_RTOL * la:
        raise ValueError(f"{what}: not a hexagonal cell (|a1|={la:.6f}, |a2|={lb:.6f} Angstrom)")
    cross = cell[0, 0] * cell[1, 1] - cell[0, 1] * cell[1, 0]
    cosang = float(cell[0] @ cell[1]) / (la * lb)
    if cross <= 0:
        raise ValueError(f"{what}: a2 must be counter-clockwise from a1 (left-handed cell)")
    if abs(cosang - 0.5) < CELL_RTOL:
        vectors = cell.copy()
    elif abs(cosang + 0.5) < CELL_RTOL:
        vectors = np.array([cell[0], cell[0] + cell[1]])
    else:
        angle = np.degrees(np.arccos(np.clip(cosang, -1, 1)))
        raise ValueError(f"{what}: not a hexagonal cell (angle between a1 and a2 = {angle:.4f} deg)")
    frac = np.linalg.solve(vectors.T, np.asarray(atoms.positions)[:, :2].T).T
    frac = wrap_fractional(frac)
    return float(la), vectors, frac


def wrap_fractional(frac: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Wrap fractional coordinates into the half-open interval [0, 1).

    Values within ``tol`` below an integer are mapped to that integer, so a point that
    lies analytically on the far boundary (f = 1) is stored once, at f = 0.
    """
    f = np.asarray(frac, dtype=float)
    f = f - np.floor(f + tol)
    return np.where(f < 0.0, 0.0, f)


def hermite_normal_form(matrix: np.ndarray) -> np.ndarray:
    """Upper-triangular Hermite normal form of a 2x2 integer matrix (rows = generators).

    Returns ``H = [[p, q], [0, r]]`` with ``p, r > 0`` and ``0 <= q < r`` spanning the same
    integer lattice as the rows of ``matrix``; ``p * r = |det(matrix)|``.
    """
    m = np.asarray(matrix)
    if m.shape != (2, 2) or not np.issubdtype(m.dtype, np.integer):
        raise ValueError(f"expected a 2x2 integer matrix, got {m!r}")
    (a, b), (c, d) = (int(x) for x in m[0]), (int(x) for x in m[1])
    if a * d - b * c == 0:
        raise ValueError(f"singular supercell matrix {m.tolist()}")
    # column-0 gcd by the extended Euclid algorithm on the rows
    r0, r1 = [a, b], [c, d]
    while r1[0] != 0:
        k = r0[0] // r1[0]
        r0, r1 = r1, [r0[0] - k * r1[0], r0[1] - k * r1[1]]
    if r0[0] < 0:
        r0 = [-r0[0], -r0[1]]
    r = abs(r1[1])
    return np.array([[r0[0], r0[1] % r], [0, r]], dtype=np.int64)


def coset_representatives(matrix: np.ndarray) -> np.ndarray:
    """Integer points, one per coset of Z^2 modulo the lattice spanned by ``matrix`` rows.

    Parameters
    ----------
    matrix : numpy.ndarray, shape (2, 2), int
        Supercell matrix; rows are supercell vectors in primitive-lattice coordinates.

    Returns
    -------
    numpy.ndarray, shape (|det|, 2), int64
        Distinct representatives, exactly ``|det(matrix)|`` of them.
    """
    h = hermite_normal_form(matrix)
    p, r = int(h[0, 0]), int(h[1, 1])
    i, j = np.meshgrid(np.arange(p, dtype=np.int64), np.arange(r, dtype=np.int64), indexing="ij")
    return np.stack([i.ravel(), j.ravel()], axis=1)


def lattice_points_in_supercell(
    matrix: np.ndarray, basis_frac: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """All sites of a periodic layer inside one supercell, as supercell-fractional coordinates.

    The layer is ``{(n + b_k) @ A}`` for integer n and basis offsets ``b_k`` (fractional in
    its primitive vectors A); the supercell is ``matrix @ A``.  Every site appears exactly
    once, wrapped into the half-open cell [0, 1)^2.

    Parameters
    ----------
    matrix : numpy.ndarray, shape (2, 2), int
        Supercell vectors (rows) in the layer's primitive coordinates.
    basis_frac : numpy.ndarray, shape (n_basis, 2)
        Basis offsets, fractional in the layer's primitive vectors.

    Returns
    -------
    frac : numpy.ndarray, shape (|det| * n_basis, 2)
        Fractional coordinates in the supercell vectors, in [0, 1); cell-major, basis-minor order.
    basis_index : numpy.ndarray, shape (|det| * n_basis,), int
        Which basis atom each site is.
    """
    mat = np.asarray(matrix, dtype=np.int64)
    reps = coset_representatives(mat)  # (N, 2)
    inv = np.linalg.inv(mat.astype(float))
    b = np.asarray(basis_frac, dtype=float).reshape(-1, 2)
    pts = (reps[:, None, :] + b[None, :, :]).reshape(-1, 2)  # (N * nb, 2)
    frac = wrap_fractional(pts @ inv)
    basis_index = np.tile(np.arange(len(b)), len(reps))
    return frac, basis_index


def centre_slab(positions: np.ndarray) -> np.ndarray:
    """Shift positions along z so the slab's extent [z_min, z_max] is centred at z = 0.

    Parameters
    ----------
    positions : numpy.ndarray, shape (n, 3)

    Returns
    -------
    numpy.ndarray, shape (n, 3)
        A shifted copy.
    """
    pos = np.array(positions, dtype=float)
    pos[:, 2] -= 0.5 * (pos[:, 2].min() + pos[:, 2].max())
    return pos


def slab_cell(inplane: np.ndarray, positions: np.ndarray, vacuum: float) -> np.ndarray:
    """Cell rows for a slab: ``inplane`` (2, 2) vectors plus a3 = (0, 0, vacuum + thickness)."""
    if not vacuum > 0:
        raise ValueError(f"vacuum must be positive, got {vacuum}")
    thickness = float(np.ptp(positions[:, 2])) if len(positions) else 0.0
    cell = np.zeros((3, 3))
    cell[:2, :2] = inplane
    cell[2, 2] = vacuum + thickness
    return cell
