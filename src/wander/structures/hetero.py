"""Coincidence supercells of two hexagonal lattices with different lattice constants.

A bottom-lattice vector ``v = i a1 + j a2`` (lattice constant ``a_b``) and a top-lattice
vector ``w = p a1 + q a2`` (lattice constant ``a_t``, same orientation before twisting) are
matched by rotating the top layer by ``theta = arg(v) - arg(w)`` and scaling it by
``1 + strain = |v| a_b / (|w| a_t)`` (isotropic, biaxial strain of the top layer).  Both
lattices are six-fold symmetric, so the coincidence cell is hexagonal with vectors v and v
rotated by 60 degrees; the search returns the smallest such cell within the strain and
angle tolerances.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

SQRT3 = float(np.sqrt(3.0))


class HeteroMatch(NamedTuple):
    """A coincidence cell of two hexagonal lattices.

    ``bottom = (i, j)`` and ``top = (p, q)`` are the matched vectors in each layer's
    primitive basis; ``angle`` (degrees) is the rotation of the top layer; ``strain`` the
    relative isotropic strain applied to the top layer; ``n_atoms`` the bilayer atom count.
    """

    bottom: tuple[int, int]
    top: tuple[int, int]
    angle: float
    strain: float
    n_atoms: int


def _arg(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Polar angle (degrees) of p a1 + q a2 for the 60-degree hexagonal basis."""
    return np.degrees(np.arctan2(q * SQRT3 / 2, p + q / 2))


def vector_match(
    bottom: tuple[int, int], top: tuple[int, int], a_bottom: float, a_top: float
) -> tuple[float, float]:
    """Rotation (degrees) and top-layer strain that map top vector ``top`` onto ``bottom``."""
    (i, j), (p, q) = bottom, top
    nb, nt = i * i + i * j + j * j, p * p + p * q + q * q
    if nb <= 0 or nt <= 0:
        raise ValueError(f"supercell vectors must be non-zero, got {bottom}, {top}")
    angle = float(_arg(np.float64(i), np.float64(j)) - _arg(np.float64(p), np.float64(q)))
    angle = (angle + 180.0) % 360.0 - 180.0
    strain = float(np.sqrt(nb / nt) * a_bottom / a_top - 1.0)
    return angle, strain


def match_lattices(
    a_bottom: float,
    a_top: float,
    angle: float,
    *,
    n_basis: tuple[int, int] = (2, 2),
    max_strain: float = 0.001,
    angle_tol: float = 0.01,
    max_atoms: int = 100_000,
    chunk: int = 4096,
) -> HeteroMatch:
    """Smallest coincidence cell with |strain| <= max_strain and |theta - angle| <= angle_tol.

    Parameters
    ----------
    a_bottom, a_top : float
        Lattice constants (Angstrom).
    angle : float
        Requested twist of the top layer (degrees, counter-clockwise).
    n_basis : (int, int)
        Atoms per primitive cell of the bottom and top layers (sets ``n_atoms``).
    max_strain : float
        Largest accepted |strain| of the top layer (fraction).
    angle_tol : float
        Largest accepted deviation from ``angle`` (degrees).
    max_atoms : int
        Largest bilayer cell searched.

    Returns
    -------
    HeteroMatch
        Ties in size are broken by smaller |strain|, then smaller angle error.

    Raises
    ------
    ValueError
        If nothing within the tolerances has at most ``max_atoms`` atoms.
    """
    if not (a_bottom > 0 and a_top > 0):
        raise ValueError(f"lattice constants must be positive, got {a_bottom}, {a_top}")
    if not (max_strain >= 0 and angle_tol >= 0 and np.isfinite(angle)):
        raise ValueError("need finite angle and non-negative max_strain, angle_tol")
    nb_b, nb_t = n_basis
    ratio2 = (a_bottom / a_top) ** 2
    per_site = nb_b + nb_t * ratio2 / (1 + max_strain) ** 2  # lower bound of atoms per bottom site
    max_sites = int(max_atoms / per_site)
    if max_sites < 1:
        raise ValueError(f"max_atoms={max_atoms} is smaller than one primitive bilayer cell")
    # bottom vectors in the 60-degree sector [0, 60): i >= 1, j >= 0, sorted by length
    r = int(np.sqrt(max_sites)) + 1
    i, j = np.meshgrid(np.arange(1, r + 1), np.arange(0, r + 1), indexing="ij")
    i, j = i.ravel().astype(np.int64), j.ravel().astype(np.int64)
    sites = i * i + i * j + j * j
    keep = sites <= max_sites
    order = np.argsort(sites[keep], kind="stable")
    i, j, sites = i[keep][order], j[keep][order], sites[keep][order]

    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    tol_rad = np.radians(angle_tol)
    best: tuple | None = None
    for start in range(0, len(i), chunk):
        ci, cj, cs = i[start : start + chunk], j[start : start + chunk], sites[start : start + chunk]
        if best is not None and cs[0] * per_site > best[0]:
            break
        # ideal top vector R(-angle) v a_b / a_t in the top primitive basis
        x, y = ci + cj / 2, cj * SQRT3 / 2
        xr, yr = (c * x + s * y), (-s * x + c * y)
        scale = a_bottom / a_top
        pf, qf = scale * (xr - yr / SQRT3), scale * (2 * yr / SQRT3)
        radius = np.sqrt(cs.max() * ratio2) * (max_strain + tol_rad) / (1 - max_strain)
        k = int(np.ceil(2 * radius / SQRT3)) + 1
        off = np.arange(-k, k + 1)
        p = (np.round(pf)[:, None, None] + off[None, :, None]).astype(np.int64)
        q = (np.round(qf)[:, None, None] + off[None, None, :]).astype(np.int64)
        p, q = np.broadcast_arrays(p, q)
        tsites = p * p + p * q + q * q
        theta = _arg(ci, cj)[:, None, None] - _arg(p, q)
        err = np.abs((theta - angle + 180.0) % 360.0 - 180.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            strain = np.sqrt(cs[:, None, None] / tsites) * scale - 1.0
        n_atoms = cs[:, None, None] * nb_b + tsites * nb_t
        ok = (tsites > 0) & (err <= angle_tol) & (np.abs(strain) <= max_strain) & (n_atoms <= max_atoms)
        if not ok.any():
            continue
        idx = np.nonzero(ok)
        first = np.lexsort((err[idx], np.abs(strain[idx]), n_atoms[idx]))[0]
        k = tuple(ax[first] for ax in idx)  # (bottom vector, p offset, q offset)
        cand = (int(n_atoms[k]), abs(float(strain[k])), float(err[k]))
        if best is None or cand < best[:3]:
            best = cand + ((int(ci[k[0]]), int(cj[k[0]])), (int(p[k]), int(q[k])))
    if best is None:
        raise ValueError(
            f"no coincidence cell within max_strain={max_strain} and angle_tol={angle_tol} deg "
            f"of {angle} deg with at most {max_atoms} atoms (a_bottom={a_bottom}, a_top={a_top} "
            "Angstrom); raise max_strain, angle_tol or max_atoms"
        )
    vb, vt = best[3], best[4]
    theta, strain = vector_match(vb, vt, a_bottom, a_top)
    theta = angle + ((theta - angle + 180.0) % 360.0 - 180.0)
    return HeteroMatch(vb, vt, theta, strain, best[0])
