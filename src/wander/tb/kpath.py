"""Band paths for 2D cells, expressed in the fractional coordinates of the cell as given.

The cell is never standardised: the 2D Bravais lattice is detected from a Lagrange-reduced basis
of the in-plane vectors, the special points are placed in Cartesian space and then converted to
fractional coordinates of the *given* cell, so they are right for any equivalent choice of
in-plane vectors (hexagonal cells with 60 or 120 degrees between a1 and a2, skewed bases...).

Lattices and default paths:

* hexagonal (|a1| = |a2|, 60/120 degrees): ``GMKG`` with M the edge centre, K the corner;
* square: ``GXMG``;
* rectangular and all others (centred rectangular, oblique): ``GXSYG`` with X, Y, S the
  centres of the reduced reciprocal cell edges and its corner (for oblique lattices this path
  samples but does not bound the irreducible zone).
"""

from __future__ import annotations

import re

import numpy as np
from ase.cell import Cell
from ase.dft.kpoints import BandPath

__all__ = ["bandpath_2d", "lattice_2d", "special_points_2d"]

_DEFAULT_PATHS = {"hexagonal": "GMKG", "square": "GXMG", "rectangular": "GXSYG", "oblique": "GXSYG"}


def _reduce(a1: np.ndarray, a2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lagrange-Gauss reduction of a 2D basis (shortest vectors, |a1.a2| <= |a1|^2 / 2)."""
    for _ in range(1000):
        if a1 @ a1 > a2 @ a2:
            a1, a2 = a2, a1
        mu = round(float(a1 @ a2) / float(a1 @ a1))
        if mu == 0:
            return a1, a2
        a2 = a2 - mu * a1
    raise ValueError("could not reduce the in-plane cell")  # pragma: no cover


def _inplane(cell: np.ndarray) -> np.ndarray:
    cell = np.asarray(cell, dtype=float)
    if cell.shape != (3, 3):
        raise ValueError(f"cell must be (3, 3), got {cell.shape}")
    if abs(cell[0, 2]) > 1e-8 or abs(cell[1, 2]) > 1e-8:
        raise ValueError("2D band paths need in-plane vectors a1, a2 with zero z component")
    if abs(np.linalg.det(cell)) < 1e-10:
        raise ValueError("cell is singular")
    return cell


def lattice_2d(cell: np.ndarray, tol: float = 1e-3) -> tuple[str, np.ndarray, np.ndarray]:
    """Classify the in-plane lattice.

    Returns
    -------
    kind : {"hexagonal", "square", "rectangular", "oblique"}
    a1, a2 : (3,) float
        Reduced in-plane basis (Angstrom), ordered as found by the reduction.
    """
    cell = _inplane(cell)
    a1, a2 = _reduce(cell[0].copy(), cell[1].copy())
    l1, l2 = np.linalg.norm(a1), np.linalg.norm(a2)
    cos = float(a1 @ a2) / (l1 * l2)
    same = abs(l1 - l2) <= tol * max(l1, l2)
    if same and abs(abs(cos) - 0.5) <= tol:
        return "hexagonal", a1, a2
    if abs(cos) <= tol:
        return ("square" if same else "rectangular"), a1, a2
    return "oblique", a1, a2


def special_points_2d(cell: np.ndarray, tol: float = 1e-3) -> dict[str, np.ndarray]:
    """Special points (fractional coordinates of ``cell``) of its 2D lattice."""
    cell = _inplane(cell)
    kind, a1, a2 = lattice_2d(cell, tol)
    red = np.array([a1, a2, cell[2]])
    B_red = 2 * np.pi * np.linalg.inv(red).T  # reciprocal rows of the reduced cell
    if kind == "hexagonal":
        # 120 degrees between a1, a2 -> 60 degrees between b1, b2 -> K = (b1 + b2) / 3;
        # 60 degrees between a1, a2 -> 120 degrees between b1, b2 -> K = (2 b1 + b2) / 3
        cos_b = float(B_red[0] @ B_red[1]) / (np.linalg.norm(B_red[0]) * np.linalg.norm(B_red[1]))
        K = np.array([1 / 3, 1 / 3, 0]) if cos_b > 0 else np.array([2 / 3, 1 / 3, 0])
        red_pts = {"G": [0, 0, 0], "M": [0.5, 0, 0], "K": K}
    elif kind == "square":
        red_pts = {"G": [0, 0, 0], "X": [0.5, 0, 0], "M": [0.5, 0.5, 0]}
    else:
        red_pts = {"G": [0, 0, 0], "X": [0.5, 0, 0], "Y": [0, 0.5, 0], "S": [0.5, 0.5, 0]}
    out = {}
    for name, f in red_pts.items():
        cart = np.asarray(f, dtype=float) @ B_red
        frac = cart @ cell.T / (2 * np.pi)  # fractional coordinates of the given cell
        snapped = np.round(frac * 6) / 6  # special points are multiples of 1/6 in any basis
        out[name] = np.where(np.abs(frac - snapped) < 1e-9, snapped, frac)
    return out


def bandpath_2d(cell: np.ndarray, path: str | None = None, npoints: int = 100, tol: float = 1e-3) -> BandPath:
    """Band path through the special points of a 2D cell.

    Parameters
    ----------
    cell : (3, 3) float
        Cell rows (Angstrom); a1, a2 in-plane with zero z component. Not standardised.
    path : str, optional
        Special-point letters, e.g. ``"GMKG"``; commas separate disconnected segments
        (``"GMK,GK"``). Default depends on the lattice (module docstring).
    npoints : int
        Total number of k-points along the path (ASE convention).
    tol : float
        Relative tolerance for detecting equal lengths and 60/90/120 degree angles.

    Returns
    -------
    ase.dft.kpoints.BandPath
        With ``cell`` equal to the given cell and ``kpts`` fractional in its reciprocal basis.

    Raises
    ------
    ValueError
        Unknown special-point letters or a non-2D cell.
    """
    cell = _inplane(cell)
    if npoints < 2:
        raise ValueError(f"npoints must be at least 2, got {npoints}")
    kind, _, _ = lattice_2d(cell, tol)
    points = special_points_2d(cell, tol)
    if path is None:
        path = _DEFAULT_PATHS[kind]
    names = re.findall(r"[A-Z][a-z0-9]*|,", path.replace(" ", ""))
    if "".join(names) != path.replace(" ", ""):
        raise ValueError(f"could not parse band path {path!r}")
    unknown = sorted({x for x in names if x != ","} - set(points))
    if unknown:
        raise ValueError(f"{kind} 2D lattice has special points {sorted(points)}; unknown {unknown} in {path!r}")
    bp = BandPath(Cell(cell), special_points=points, path=path.replace(" ", ""))
    return bp.interpolate(npoints=int(npoints))
