"""Fermi level from an electron count (zero temperature).

:func:`fermi_level` works on full spectra (dense diagonalisation) and on windows of bands from the
sparse shift-invert solver, whose global band indices are known from the inertia count
(``band_offset``). :func:`fermi_level_at_k` finds the level of one k-point of a large sparse
Hamiltonian by bisection on the inertia count, without computing the spectrum.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fermi_level", "fermi_level_at_k", "fermi_level_from_dos"]

_WINDOW = 16  # eigenvalues inspected once the count is within _WINDOW / 2 of the filling


def fermi_level(
    eigenvalues: np.ndarray,
    n_electrons: float,
    weights: np.ndarray | None = None,
    spin_degeneracy: int = 2,
    *,
    band_offset: np.ndarray | None = None,
) -> float:
    """Zero-temperature Fermi level for ``n_electrons`` per cell.

    Parameters
    ----------
    eigenvalues : (nk, nb) float, eV
        Band energies at ``nk`` k-points (any order within a k-point).
    n_electrons : float
        Electrons per cell.
    weights : (nk,) float, optional
        k-point weights (normalised internally); default uniform.
    spin_degeneracy : int
        Electrons per state (2 for spin-degenerate spinless orbitals).
    band_offset : (nk,) int, optional
        Number of bands below the given window at each k-point (for partial spectra). The
        Fermi level must then fall inside every window.

    Returns
    -------
    float
        Where the filling lands exactly between two levels (an insulator, or a semimetal with
        the last electron on a degenerate level), the midpoint of the highest occupied and the
        lowest empty level; otherwise the partially filled level.

    Raises
    ------
    ValueError
        Counts outside ``0 .. spin_degeneracy * bands``, or a window that does not contain the
        Fermi level.
    """
    e = np.asarray(eigenvalues, dtype=float)
    if e.ndim == 1:
        e = e[None, :]
    if e.ndim != 2 or e.size == 0 or not np.all(np.isfinite(e)):
        raise ValueError("eigenvalues must be a finite (nk, nb) array")
    nk, nb = e.shape
    w = np.full(nk, 1.0 / nk) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (nk,) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be (nk,) non-negative with a positive sum")
    w = w / w.sum()
    off = np.zeros(nk) if band_offset is None else np.asarray(band_offset, dtype=float)
    if off.shape != (nk,):
        raise ValueError("band_offset must have one entry per k-point")
    target = float(n_electrons) / spin_degeneracy  # states to fill per cell
    base = float(w @ off)
    if not base - 1e-9 <= target <= base + nb + 1e-9:
        if band_offset is None:
            raise ValueError(
                f"{n_electrons} electrons do not fit in {nb} bands x {spin_degeneracy} (spin degeneracy)"
            )
        raise ValueError("the band windows do not contain the Fermi level: use more bands or another energy")
    flat = e.ravel()
    order = np.argsort(flat, kind="stable")
    levels = flat[order]
    cum = base + np.cumsum(np.repeat(w, nb)[order])
    tol = 1e-9
    if band_offset is not None and not base + tol < target < base + nb - tol:
        raise ValueError("the band windows do not contain the Fermi level: use more bands or another energy")
    idx = min(int(np.searchsorted(cum, target - tol)), len(levels) - 1)  # first level reaching target
    if abs(cum[idx] - target) <= tol and idx + 1 < len(levels):
        ef = 0.5 * (levels[idx] + levels[idx + 1])
    else:
        ef = levels[idx]
    if band_offset is not None:
        # every window must bracket E_F, or bands outside a window could be below E_F
        if np.any(e.max(axis=1) < ef - 1e-12) or np.any(e.min(axis=1) > ef + 1e-12):
            raise ValueError(
                "the band windows do not contain the Fermi level at every k-point: use more bands"
            )
    return float(ef)


def fermi_level_at_k(
    h,
    n_electrons: float,
    *,
    spin_degeneracy: int = 2,
    bounds: tuple[float, float] | None = None,
    max_factorisations: int = 60,
) -> float:
    """Fermi level of one k-point of a large sparse Hamiltonian, from inertia counts.

    With ``q = n_electrons / spin_degeneracy`` states to fill and ``m = ceil(q)`` the number of
    (partly) occupied states, regula falsi (Illinois variant) on the count ``c(x)`` of
    eigenvalues below ``x`` (one sparse ``LDL^H`` factorisation per step) finds ``x`` with
    ``c(x) = m``; the eigenvalues just below and above ``x`` (two small ARPACK runs with the
    same factorisation) are then the highest occupied and the lowest empty state. Once ``c(x)``
    is within a few states of ``m`` (a degenerate level can make ``c`` jump over ``m``), the
    16 eigenvalues nearest ``x`` with their global indices settle it.

    Parameters
    ----------
    h : (n, n) sparse Hermitian (CSR), ideally in a fill-reducing order
    n_electrons : float
        Electrons per cell.
    spin_degeneracy : int
    bounds : (float, float), optional
        Spectral bounds; estimated by Lanczos if omitted.
    max_factorisations : int

    Returns
    -------
    float
        Midpoint of the highest occupied and the lowest empty level (integer ``q``), or the
        partly filled level, eV.
    """
    from wander.tb.eigen import ShiftInvert, eigenvalues_around, eigsh_near
    from wander.tb.kpm import spectral_bounds

    n = h.shape[0]
    q = float(n_electrons) / spin_degeneracy
    if not 0 < q < n:
        raise ValueError(f"{n_electrons} electrons: need 0 < n_electrons / spin_degeneracy < {n}")
    m = int(np.ceil(q - 1e-9))
    integer = abs(q - m) < 1e-9
    lo, hi = spectral_bounds(h) if bounds is None else bounds
    c_lo, c_hi = 0.0, float(n)
    side = 0
    for _ in range(max_factorisations):
        if c_hi > c_lo:  # regula falsi (Illinois): converges for any monotone count
            x = lo + (hi - lo) * (m - c_lo) / (c_hi - c_lo)
            x = min(max(x, lo + 1e-3 * (hi - lo)), hi - 1e-3 * (hi - lo))
        else:
            x = 0.5 * (lo + hi)
        f = ShiftInvert(h, x)
        for nudge in (1e-4, -1e-4, 1e-3, -1e-3):  # an unstable LDL^H at x: any nearby shift will do
            if f.n_below is not None:
                break
            f = ShiftInvert(h, min(max(x + nudge * (hi - lo), lo), hi))
        if f.n_below is None:
            raise RuntimeError(f"no inertia count near {x:.6g} eV (unstable factorisation)")
        c = f.n_below
        if c == m:
            below, above = eigenvalues_around(h, f)
            return float(0.5 * (below + above) if integer else below)
        if abs(c - m) <= _WINDOW // 2 - 1:
            # few states between x and the Fermi level (e.g. a degenerate level): look at them
            res = eigsh_near(h, f.sigma, _WINDOW, factor=f)
            if res.n_below is not None and res.n_below <= m - 1 and m <= res.n_below + _WINDOW - 1:
                return fermi_level(
                    res.eigenvalues[None, :], n_electrons, spin_degeneracy=spin_degeneracy,
                    band_offset=np.array([res.n_below]),
                )
        if c < m:
            lo, c_lo = f.sigma, float(c)
            if side == -1:
                c_hi = m + (c_hi - m) / 2  # Illinois: damp the stale end
            side = -1
        else:
            hi, c_hi = f.sigma, float(c)
            if side == 1:
                c_lo = m - (m - c_lo) / 2
            side = 1
    raise RuntimeError(f"Fermi level search did not converge in {max_factorisations} factorisations")


def fermi_level_from_dos(
    energies: np.ndarray, dos: np.ndarray, n_electrons: float, spin_degeneracy: int = 2
) -> float:
    """Energy where the integrated DOS reaches ``n_electrons / spin_degeneracy`` states.

    Accurate to the broadening of the DOS (use :func:`fermi_level` on eigenvalues when they are
    available).

    Parameters
    ----------
    energies : (npts,) eV, increasing
    dos : (npts,) states/eV per cell per spin
    n_electrons : float
    spin_degeneracy : int
    """
    e = np.asarray(energies, dtype=float)
    d = np.asarray(dos, dtype=float)
    if e.ndim != 1 or e.shape != d.shape or len(e) < 2 or np.any(np.diff(e) <= 0):
        raise ValueError("energies must be an increasing 1D grid matching dos")
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (d[1:] + d[:-1]) * np.diff(e))])
    target = float(n_electrons) / spin_degeneracy
    if not 0 <= target <= cum[-1]:
        raise ValueError(f"{n_electrons} electrons do not fit: the DOS integrates to {cum[-1]:.4g} states")
    cum = np.maximum.accumulate(cum)  # KPM ripples can make the integral locally decrease
    idx = int(np.searchsorted(cum, target))
    idx = min(max(idx, 1), len(e) - 1)
    c0, c1 = cum[idx - 1], cum[idx]
    frac = 0.0 if c1 == c0 else (target - c0) / (c1 - c0)
    return float(e[idx - 1] + frac * (e[idx] - e[idx - 1]))
