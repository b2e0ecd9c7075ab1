"""Density of states: exact (Gaussian-broadened eigenvalues) or KPM, on uniform k-grids.

DOS values are states per eV per cell for one spin channel (spinless orbitals): the DOS
integrates to the number of orbitals.
"""

from __future__ import annotations

import numpy as np
from ase.spectrum.dosdata import GridDOSData

from wander.tb.eigen import eigvalsh_dense
from wander.tb.hamiltonian import TBHamiltonian
from wander.tb.kpm import kpm_density, kpm_moments, moments_for_width, spectral_bounds

__all__ = [
    "density_of_states",
    "local_density_of_states",
    "kgrid_points",
    "auto_kgrid",
    "grid_eigenvalues",
    "gaussian_dos",
]


def auto_kgrid(ham: TBHamiltonian, length: float = 40.0) -> tuple[int, int, int]:
    """k-grid with about ``length / |a_i|`` points along each periodic direction.

    Counts are rounded up to a multiple of 3 (so hexagonal grids contain K) unless a single
    point suffices (cells longer than ``length``).
    """
    out = []
    for axis in range(3):
        if not ham.pbc[axis]:
            out.append(1)
            continue
        m = int(np.ceil(length / np.linalg.norm(ham.cell[axis])))
        out.append(1 if m <= 1 else 3 * int(np.ceil(m / 3)))
    return tuple(out)


def kgrid_points(ham: TBHamiltonian, kgrid: tuple[int, int, int] | int) -> tuple[np.ndarray, np.ndarray]:
    """Gamma-centred uniform grid.

    Parameters
    ----------
    kgrid : (3,) int or int
        Points per reciprocal direction; must be 1 along non-periodic directions (an int sets
        every periodic direction).

    Returns
    -------
    kpts : (nk, 3) float, fractional
    weights : (nk,) float, summing to 1
    """
    if np.ndim(kgrid) == 0:
        kgrid = tuple(int(kgrid) if p else 1 for p in ham.pbc)
    g = np.asarray(kgrid)
    if g.shape != (3,) or np.any(g < 1) or np.any(g != np.round(g)):
        raise ValueError(f"kgrid must be 3 positive integers, got {kgrid!r}")
    g = g.astype(int)
    for axis in range(3):
        if not ham.pbc[axis] and g[axis] != 1:
            raise ValueError(f"kgrid must be 1 along non-periodic direction {axis}, got {tuple(g)}")
    axes = [np.arange(n) / n for n in g]
    kpts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return kpts, np.full(len(kpts), 1.0 / len(kpts))


def grid_eigenvalues(ham: TBHamiltonian, kgrid: tuple[int, int, int] | int) -> tuple[np.ndarray, np.ndarray]:
    """All eigenvalues on a uniform grid (dense diagonalisation).

    Returns
    -------
    eigenvalues : (nk, n_orb) eV
    weights : (nk,)
    """
    kpts, wk = kgrid_points(ham, kgrid)
    return np.array([eigvalsh_dense(ham.hk(k)) for k in kpts]), wk


def _grid(emin: float, emax: float, npts: int) -> np.ndarray:
    if npts < 2 or not emax > emin:
        raise ValueError(f"need npts >= 2 and emax > emin, got {npts}, [{emin}, {emax}]")
    return np.linspace(emin, emax, int(npts))


def gaussian_dos(eigenvalues: np.ndarray, weights: np.ndarray, energies: np.ndarray, width: float) -> np.ndarray:
    """Gaussian-broadened DOS ``sum_k w_k sum_n N(E; e_nk, width)`` (states/eV).

    Parameters
    ----------
    eigenvalues : (nk, nb) eV
    weights : (nk,), summing to 1
    energies : (npts,) eV, increasing
    width : float
        Gaussian standard deviation, eV.
    """
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    e = np.asarray(eigenvalues, dtype=float)
    w = np.broadcast_to(np.asarray(weights, dtype=float)[:, None], e.shape).ravel()
    e = e.ravel()
    keep = (e > energies[0] - 8 * width) & (e < energies[-1] + 8 * width)
    e, w = e[keep], w[keep]
    out = np.zeros(len(energies))
    norm = 1.0 / (np.sqrt(2 * np.pi) * width)
    chunk = max(1, 2**22 // len(energies))
    for s in range(0, len(e), chunk):  # chunks of eigenvalues, vectorised over the grid
        x = (energies[None, :] - e[s : s + chunk, None]) / width
        out += (w[s : s + chunk, None] * np.exp(-0.5 * x * x)).sum(axis=0)
    return out * norm


def density_of_states(
    ham: TBHamiltonian,
    kgrid: tuple[int, int, int] | int = (6, 6, 1),
    *,
    method: str = "exact",
    width: float = 0.01,
    npts: int = 2000,
    emin: float | None = None,
    emax: float | None = None,
    moments: int | None = None,
    vectors: int = 10,
    seed: int | None = 0,
    progress: bool = False,
) -> GridDOSData:
    """Total density of states.

    Parameters
    ----------
    ham : TBHamiltonian
    kgrid : 3 ints or int
        Gamma-centred Monkhorst-Pack grid.
    method : {"exact", "kpm"}
        ``"exact"``: dense eigenvalues at every k, Gaussian broadening of standard deviation
        ``width``. ``"kpm"``: stochastic kernel polynomial method (scales to 10^6 orbitals);
        ``width`` sets the Jackson resolution ``pi a / N`` at the band centre unless ``moments``
        is given.
    width : float, eV
    npts : int
        Energy grid points.
    emin, emax : float, eV, optional
        Grid limits (default: spectrum +- 5 width).
    moments : int, optional
        KPM moments ``N``.
    vectors : int
        KPM random vectors per k-point.
    seed : int, optional
    progress : bool
        Progress bar for KPM.

    Returns
    -------
    ase.spectrum.dosdata.GridDOSData
        States per eV per cell per spin; ``info`` records the method and parameters.
    """
    if method == "exact":
        eig, wk = grid_eigenvalues(ham, kgrid)
        lo = eig.min() - 5 * width if emin is None else emin
        hi = eig.max() + 5 * width if emax is None else emax
        energies = _grid(lo, hi, npts)
        rho = gaussian_dos(eig, wk, energies, width)
        info = {"method": "exact", "width": f"{width:g}", "kgrid": "x".join(str(x) for x in np.atleast_1d(kgrid))}
        return GridDOSData(energies, rho, info=info)
    if method == "kpm":
        kpts, wk = kgrid_points(ham, kgrid)
        energies, rho, info = _kpm_total(ham, kpts, wk, None, width, npts, emin, emax, moments, vectors, seed, progress)
        return GridDOSData(energies, rho, info=info)
    raise ValueError(f"method must be 'exact' or 'kpm', got {method!r}")


def local_density_of_states(
    ham: TBHamiltonian,
    orbitals: np.ndarray,
    kgrid: tuple[int, int, int] | int = (1, 1, 1),
    *,
    width: float = 0.01,
    npts: int = 2000,
    emin: float | None = None,
    emax: float | None = None,
    moments: int | None = None,
    vectors: int = 10,
    seed: int | None = 0,
    progress: bool = False,
) -> GridDOSData:
    """KPM local DOS summed over a set of orbitals (e.g. one layer, or the AA region).

    Exact (unit vectors) when the set has at most ``vectors`` orbitals, stochastic otherwise.
    Parameters as in :func:`density_of_states`; integrates to ``len(orbitals)``.
    """
    kpts, wk = kgrid_points(ham, kgrid)
    energies, rho, info = _kpm_total(
        ham, kpts, wk, np.asarray(orbitals), width, npts, emin, emax, moments, vectors, seed, progress
    )
    info["orbitals"] = str(len(np.unique(orbitals)))
    return GridDOSData(energies, rho, info=info)


def _kpm_total(ham, kpts, wk, orbitals, width, npts, emin, emax, moments, vectors, seed, progress):
    lows, highs = zip(*(spectral_bounds(ham.hk(k)) for k in kpts))
    bounds = (min(lows), max(highs))
    a = 0.5 * (bounds[1] - bounds[0])
    n_mom = moments_for_width(width, a) if moments is None else int(moments)
    mu = np.zeros(n_mom)
    for idx, (k, w) in enumerate(zip(kpts, wk)):
        s = None if seed is None else seed + idx
        mu += w * kpm_moments(ham.hk(k), n_mom, bounds, n_vectors=vectors, orbitals=orbitals, seed=s, progress=progress)
    energies = _grid(bounds[0] if emin is None else emin, bounds[1] if emax is None else emax, npts)
    info = {
        "method": "kpm",
        "moments": str(n_mom),
        "vectors": str(vectors),
        "resolution": f"{np.pi * a / n_mom:.4g}",
        "kpoints": str(len(kpts)),
        "bounds": f"{bounds[0]!r} {bounds[1]!r}",
    }
    return energies, kpm_density(mu, bounds, energies), info
