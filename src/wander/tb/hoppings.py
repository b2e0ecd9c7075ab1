"""Canonical half-storage of tight-binding hoppings.

A hopping ``(R, i, j, t)`` is the matrix element ``H_ij(R) = <w_i, 0 | H | w_j, R>``. Only one
half of the pairs is stored: ``R > 0`` lexicographically, or ``R = 0`` and ``i <= j``. The other
half follows from ``H_ji(-R) = conj(H_ij(R))`` (docs/conventions.md).
"""

from __future__ import annotations

import numpy as np

__all__ = ["canonicalize_hoppings", "is_lower_half", "pair_keys"]


def is_lower_half(R: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Mask of the hoppings that lie in the implied (not stored) half.

    Parameters
    ----------
    R : (m, 3) int
        Lattice vectors.
    i, j : (m,) int
        Orbital indices.

    Returns
    -------
    (m,) bool
        True where ``R < 0`` lexicographically, or ``R = 0`` and ``i > j``.
    """
    lower = np.zeros(len(R), dtype=bool)
    undecided = np.ones(len(R), dtype=bool)
    for axis in range(3):  # three lexicographic levels, each vectorised over all hoppings
        lower |= undecided & (R[:, axis] < 0)
        undecided &= R[:, axis] == 0
    return lower | (undecided & (i > j))


def pair_keys(R: np.ndarray, i: np.ndarray, j: np.ndarray, n_orbitals: int) -> np.ndarray:
    """Encode ``(R, i, j)`` as one int64 key per hopping (order-preserving: R, then i, then j).

    Raises
    ------
    ValueError
        If the lattice-vector range is too large to encode in 63 bits.
    """
    if len(R) == 0:
        return np.zeros(0, dtype=np.int64)
    lo = R.min(axis=0)
    span = R.max(axis=0) - lo + 1
    dims = (*(int(s) for s in span), int(n_orbitals), int(n_orbitals))
    if np.prod(np.asarray(dims, dtype=float)) >= 2.0**62:
        raise ValueError(f"lattice vectors span {tuple(span)} cells: too many to index")
    return np.ravel_multi_index((R[:, 0] - lo[0], R[:, 1] - lo[1], R[:, 2] - lo[2], i, j), dims).astype(
        np.int64
    )


def canonicalize_hoppings(
    R: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    t: np.ndarray,
    n_orbitals: int,
    hermitian_tol: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Map any mix of the two halves onto the stored half.

    Hoppings repeated in the same direction are summed (COO convention). A pair given in both
    directions must satisfy ``t_ij(R) = conj(t_ji(-R))`` within ``hermitian_tol`` and is stored
    once (the mean of the two). Onsite terms must be real within ``hermitian_tol``. Exact zeros
    are dropped.

    Parameters
    ----------
    R : (m, 3) int64
    i, j : (m,) int64
    t : (m,) complex128, eV
    n_orbitals : int
    hermitian_tol : float, eV

    Returns
    -------
    R, i, j, t
        Canonical hoppings sorted by ``(R, i, j)``.

    Raises
    ------
    ValueError
        Non-Hermitian pairs or complex onsite energies; the message names the worst offender.
    """
    flip = is_lower_half(R, i, j)
    Rc = np.where(flip[:, None], -R, R)
    ic = np.where(flip, j, i)
    jc = np.where(flip, i, j)
    tc = np.where(flip, np.conj(t), t)
    keys = pair_keys(Rc, ic, jc, n_orbitals)
    uniq, first, inv = np.unique(keys, return_index=True, return_inverse=True)
    n_u = len(uniq)

    def _sum(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = tc[mask]
        s = np.bincount(inv[mask], weights=w.real, minlength=n_u) + 1j * np.bincount(
            inv[mask], weights=w.imag, minlength=n_u
        )
        return s, np.bincount(inv[mask], minlength=n_u)

    fwd, n_fwd = _sum(~flip)
    rev, n_rev = _sum(flip)
    Ru, iu, ju = Rc[first], ic[first], jc[first]
    both = (n_fwd > 0) & (n_rev > 0)
    if np.any(both):
        diff = np.where(both, np.abs(fwd - rev), 0.0)
        worst = int(np.argmax(diff))
        if diff[worst] > hermitian_tol:
            raise ValueError(
                "hoppings are not Hermitian: "
                f"H_{iu[worst]},{ju[worst]}(R={tuple(int(x) for x in Ru[worst])}) = {fwd[worst]:.6g} but "
                f"conj(H_{ju[worst]},{iu[worst]}(R={tuple(int(-x) for x in Ru[worst])})) = {rev[worst]:.6g} "
                f"(|difference| {diff[worst]:.3g} eV > hermitian_tol {hermitian_tol:g})"
            )
    value = np.where(both, 0.5 * (fwd + rev), fwd + rev)
    onsite = np.all(Ru == 0, axis=1) & (iu == ju)
    if np.any(onsite):
        im = np.abs(value.imag) * onsite
        worst = int(np.argmax(im))
        if im[worst] > hermitian_tol:
            raise ValueError(
                f"onsite energy of orbital {iu[worst]} is complex ({value[worst]:.6g} eV): "
                f"|imaginary part| > hermitian_tol {hermitian_tol:g}"
            )
        value = np.where(onsite, value.real + 0j, value)
    keep = value != 0
    return Ru[keep], iu[keep], ju[keep], value[keep].astype(np.complex128)
