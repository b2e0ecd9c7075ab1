"""Commensurate twist angles and moire supercells of hexagonal bilayers.

Homobilayer theory (both layers with the same hexagonal lattice, a1 and a2 60 degrees
apart).  For coprime integers ``m, n >= 0`` the bottom-lattice vector ``t = m a1 + n a2``
and the top-lattice vector ``s = n a1 + m a2`` have the same length; rotating the top layer
counter-clockwise by

    theta = atan2(sqrt(3) (n^2 - m^2), m^2 + 4 m n + n^2)
    cos theta = (m^2 + 4 m n + n^2) / (2 (m^2 + m n + n^2))

makes them coincide.  The coincidence lattice is hexagonal; with N = m^2 + m n + n^2 it has
N lattice points of each layer per cell when ``(m - n) % 3 != 0`` (cell vectors t and t
rotated by 60 degrees) and N / 3 when ``(m - n) % 3 == 0`` (cell vectors (t + t60) / 3 and its
60-degree rotation).  For (m, n) = (i, i + 1): cos theta = (3i^2 + 3i + 1/2) / (3i^2 + 3i + 1)
and twisted bilayer graphene has 4 (3i^2 + 3i + 1) atoms (28 at 21.79 deg, 11,908 at 1.05 deg).
"""

from __future__ import annotations

from math import gcd
from typing import NamedTuple

import numpy as np


class CommensurateCell(NamedTuple):
    """One commensurate twisted cell: ``(m, n)``, twist angle (degrees) and atom count."""

    m: int
    n: int
    angle: float
    n_atoms: int


def twist_angle(m: int, n: int) -> float:
    """Twist angle (degrees, counter-clockwise positive) of the commensurate pair (m, n).

    Positive for ``n > m``, in (0, 60] for ``0 <= m < n``.
    """
    m, n = _check_mn(m, n)
    return float(np.degrees(np.arctan2(np.sqrt(3.0) * (n * n - m * m), m * m + 4 * m * n + n * n)))


def _check_mn(m: int, n: int) -> tuple[int, int]:
    if isinstance(m, bool) or isinstance(n, bool):
        raise TypeError("m and n must be integers")
    try:
        mi, ni = int(m), int(n)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"m and n must be integers, got {m!r}, {n!r}") from exc
    if mi != m or ni != n:
        raise TypeError(f"m and n must be integers, got {m!r}, {n!r}")
    if mi < 0 or ni < 0:
        raise ValueError(f"m and n must be >= 0, got ({mi}, {ni})")
    if mi == ni:
        raise ValueError(f"m == n = {mi} is the untwisted bilayer; use bilayer() instead")
    if gcd(mi, ni) != 1:
        g = gcd(mi, ni)
        raise ValueError(f"(m, n) = ({mi}, {ni}) are not coprime; use ({mi // g}, {ni // g})")
    return mi, ni


def hexagonal_supercell(p: int, q: int) -> np.ndarray:
    """Supercell matrix with rows (p, q) and its 60-degree rotation (-q, p + q).

    Returns
    -------
    numpy.ndarray, shape (2, 2), int64
        Rows are supercell vectors in primitive coordinates; det = p^2 + p q + q^2.
    """
    return np.array([[p, q], [-q, p + q]], dtype=np.int64)


def supercell_matrices(m: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Primitive moire supercell of the commensurate pair (m, n) in both layers' coordinates.

    Returns
    -------
    bottom : numpy.ndarray, shape (2, 2), int64
        Supercell vectors (rows) in the bottom layer's primitive basis.
    top : numpy.ndarray, shape (2, 2), int64
        The same vectors in the (unrotated) top layer's primitive basis.
    """
    m, n = _check_mn(m, n)
    if (m - n) % 3:
        return hexagonal_supercell(m, n), hexagonal_supercell(n, m)
    return (
        hexagonal_supercell((m - n) // 3, (m + 2 * n) // 3),
        hexagonal_supercell((n - m) // 3, (n + 2 * m) // 3),
    )


def sites_per_layer(m: int, n: int) -> int:
    """Number of primitive cells of each layer in the moire cell of (m, n)."""
    m, n = _check_mn(m, n)
    big = m * m + m * n + n * n
    return big // 3 if (m - n) % 3 == 0 else big


def enumerate_pairs(max_sites: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All coprime 0 < m < n whose moire cell holds at most ``max_sites`` cells per layer.

    Returns
    -------
    m, n, sites : numpy.ndarray of int64, shape (k,)
    angle : numpy.ndarray of float, shape (k,), degrees in (0, 60)
    """
    if max_sites < 1:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, np.zeros(0)
    n_max = int(np.sqrt(3.0 * max_sites)) + 1
    n_all = np.arange(2, n_max + 1, dtype=np.int64)
    counts = n_all - 1
    n = np.repeat(n_all, counts)
    m = np.arange(len(n), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts) + 1
    keep = np.gcd(m, n) == 1
    m, n = m[keep], n[keep]
    big = m * m + m * n + n * n
    sites = np.where((m - n) % 3 == 0, big // 3, big)
    keep = sites <= max_sites
    m, n, sites = m[keep], n[keep], sites[keep]
    angle = np.degrees(np.arctan2(np.sqrt(3.0) * (n * n - m * m), m * m + 4 * m * n + n * n))
    return m, n, sites, angle


def commensurate_angles(
    monolayer="graphene",
    *,
    max_atoms: int = 20000,
    min_angle: float = 0.0,
    max_angle: float = 60.0,
) -> list[CommensurateCell]:
    """Commensurate twist angles of a homobilayer, sorted by increasing angle.

    Parameters
    ----------
    monolayer : ase.Atoms or str
        The layer (its atom count sets ``n_atoms``) or a material name ("graphene", "hbn",
        "mos2", ...).
    max_atoms : int
        Largest bilayer cell to list.
    min_angle, max_angle : float
        Angle window in degrees (inclusive), within (0, 60).

    Returns
    -------
    list of CommensurateCell
        ``(m, n, angle, n_atoms)`` with ``0 < m < n`` coprime; ``n_atoms = 2 * n_basis * sites``.
    """
    from wander.structures.bilayers import as_layer

    n_basis = len(as_layer(monolayer, "monolayer"))
    if max_atoms < 1:
        raise ValueError(f"max_atoms must be positive, got {max_atoms}")
    if not 0 <= min_angle <= max_angle:
        raise ValueError(f"need 0 <= min_angle <= max_angle, got {min_angle}, {max_angle}")
    m, n, sites, angle = enumerate_pairs(max_atoms // (2 * n_basis))
    keep = (angle >= min_angle) & (angle <= max_angle)
    order = np.lexsort((sites[keep], angle[keep]))
    return [
        CommensurateCell(int(a), int(b), float(t), int(2 * n_basis * s))
        for a, b, t, s in zip(m[keep][order], n[keep][order], angle[keep][order], sites[keep][order])
    ]


def closest_pair(
    angle: float, max_atoms: int, angle_tol: float, atoms_per_cell: int = 4
) -> tuple[int, int]:
    """Smallest commensurate cell whose twist angle is within ``angle_tol`` of ``angle``.

    Among cells of equal size the one closest in angle wins.  Negative angles give the
    mirror pair (m > n).

    Parameters
    ----------
    angle : float
        Requested twist (degrees), 0 < |angle| < 60.
    max_atoms : int
        Largest bilayer cell considered.
    angle_tol : float
        Largest accepted |actual - requested| angle (degrees).
    atoms_per_cell : int
        Atoms of one primitive cell of both layers together (4 for graphene, 6 for MX2).

    Returns
    -------
    (m, n) : tuple of int

    Raises
    ------
    ValueError
        If no cell with at most ``max_atoms`` atoms lies within the tolerance.
    """
    if not np.isfinite(angle) or not 0 < abs(angle) < 60:
        raise ValueError(f"twist angle must be in (0, 60) degrees in magnitude, got {angle}")
    if not angle_tol > 0:
        raise ValueError(f"angle_tol must be positive, got {angle_tol}")
    m, n, sites, theta = enumerate_pairs(max_atoms // atoms_per_cell)
    err = np.abs(theta - abs(angle))
    ok = np.where(err <= angle_tol)[0]
    if len(ok) == 0:
        near = np.argsort(err)[:3]
        options = ", ".join(
            f"{theta[k]:.4f} deg (m={m[k]}, n={n[k]}, {atoms_per_cell * sites[k]} atoms)" for k in near
        )
        raise ValueError(
            f"no commensurate angle within {angle_tol} deg of {angle} deg with at most "
            f"{max_atoms} atoms; nearest: {options or 'none'}. Raise angle_tol or max_atoms."
        )
    best = ok[np.lexsort((err[ok], sites[ok]))[0]]
    mm, nn = int(m[best]), int(n[best])
    return (mm, nn) if angle > 0 else (nn, mm)
