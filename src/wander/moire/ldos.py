"""Local density of states at one energy, per orbital and per atom, for real-space moire maps.

``rho_i(E) = (1/N_k) sum_k sum_n |psi_nk(i)|^2 delta(E - e_nk)``   (states / eV / orbital, spin not counted)

with the delta broadened into a Gaussian of standard deviation ``width`` (``method="exact"``) or by
the Jackson kernel (``method="kpm"``). ``|psi(i)|^2`` is the same in both Bloch gauges. Summed over
orbitals ``rho_i`` is the DOS; integrated over energy it is 1 for every orbital.

- ``"exact"``: eigenvectors of every ``H(k)``: dense for up to ``dense_limit`` orbitals, otherwise the
  ``n_eig`` eigenpairs nearest to ``E`` by shift-invert (:func:`wander.tb.eigen.eigsh_near`; states
  outside that window are not counted, so ``n_eig`` must cover ``E +- 4 width``);
- ``"kpm"``: stochastic Chebyshev expansion with ``n_vectors`` random-phase vectors, accumulated
  directly at ``E`` per orbital: memory ``O(n_orb * n_vectors)``, cost ``N_moments`` sparse products
  of ``H(k)`` with the block, ``N_moments ~ pi a / width`` (``a`` the half-width of the spectrum).
  The stochastic error per orbital decreases as ``1 / sqrt(n_vectors)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms

from wander.moire.geometry import PeriodicPlane, _check_2d
from wander.moire.maps import MoireMap

__all__ = ["kgrid_points", "ldos_at_energy", "ldos_map", "state_density_map"]


def kgrid_points(kgrid: tuple[int, int, int] | np.ndarray) -> np.ndarray:
    """Gamma-centred uniform grid of fractional k-points, (nk, 3); an (nk, 3) array is returned as is."""
    arr = np.asarray(kgrid)
    if arr.ndim == 2 and arr.shape[1] == 3:
        return arr.astype(float)
    n = np.asarray(kgrid, dtype=int).reshape(3)
    if (n < 1).any():
        raise ValueError(f"kgrid entries must be >= 1, got {tuple(n)}")
    axes = [np.arange(m) / m for m in n]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def _gaussian(x: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-0.5 * (x / width) ** 2) / (np.sqrt(2 * np.pi) * width)


def _exact_k(h: Any, energies: np.ndarray, width: float, dense_limit: int, n_eig: int) -> np.ndarray:
    n = h.shape[0]
    if n <= dense_limit:
        e, v = np.linalg.eigh(h.toarray())
    else:
        from wander.tb.eigen import eigsh_near

        res = eigsh_near(h.tocsr(), float(energies.mean()), min(n_eig, n))
        e, v = res.eigenvalues, res.vectors
    w = _gaussian(energies[:, None] - e[None, :], width)          # (nE, nb)
    return w @ (np.abs(v) ** 2).T                                  # (nE, n)


def _kpm_k(h: Any, energies: np.ndarray, width: float, n_vectors: int, rng: np.random.Generator) -> np.ndarray:
    import scipy.sparse as sp

    from wander.tb.kpm import jackson_kernel, moments_for_width, spectral_bounds

    n = h.shape[0]
    emin, emax = spectral_bounds(h)
    if not (emin < energies.min() and energies.max() < emax):
        raise ValueError(f"energies {energies.min()}..{energies.max()} eV leave the spectrum [{emin:.3f}, {emax:.3f}] eV")
    a, b = 0.5 * (emax - emin), 0.5 * (emax + emin)
    n_mom = moments_for_width(width, a)
    x = (energies - b) / a                                          # (nE,)
    coef = jackson_kernel(n_mom)[None, :] * np.cos(np.arange(n_mom)[None, :] * np.arccos(x)[:, None])
    coef /= (np.pi * a * np.sqrt(1 - x * x))[:, None]
    coef[:, 1:] *= 2.0                                              # (nE, n_mom)
    ht = ((h - b * sp.identity(n, format="csr")) / a).tocsr()
    r = np.exp(2j * np.pi * rng.random((n, n_vectors)))             # E[r r^H] = identity
    acc = np.zeros((len(energies), n))
    t0, t1 = r, ht @ r
    for m in range(n_mom):  # Chebyshev recursion: one sparse product with the block per moment
        if m >= 2:
            t0, t1 = t1, 2.0 * (ht @ t1) - t0
        diag = np.real(np.conj(r) * (r if m == 0 else t1)).mean(axis=1)   # (n,) estimate of T_m(H)_ii
        acc += coef[:, m, None] * diag[None, :]
    return acc


def ldos_at_energy(
    ham: Any,
    energy: float | np.ndarray,
    width: float = 0.01,
    kgrid: tuple[int, int, int] | np.ndarray = (1, 1, 1),
    method: str = "exact",
    dense_limit: int = 6000,
    n_eig: int = 64,
    n_vectors: int = 16,
    seed: int | None = 0,
) -> np.ndarray:
    """Per-orbital LDOS ``rho_i(E)`` in states / eV / orbital, averaged over ``kgrid``.

    Returns (n_orb,) for a scalar ``energy`` and (n_E, n_orb) for an array of energies (one
    diagonalisation / one Chebyshev recursion per k-point serves all energies).

    Parameters
    ----------
    ham
        A :class:`wander.tb.TBHamiltonian`.
    energy
        eV, scalar or (n_E,).
    width
        Gaussian standard deviation (exact) or Jackson resolution at the band centre (KPM), eV.
    kgrid
        ``(n1, n2, 1)`` Gamma-centred grid, or explicit (nk, 3) fractional k-points (uniform weights).
    method
        ``"exact"`` or ``"kpm"`` (see the module docstring).
    dense_limit, n_eig
        Exact method: dense eigh up to ``dense_limit`` orbitals, else ``n_eig`` shift-invert pairs.
    n_vectors, seed
        KPM: random vectors and seed.
    """
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    if method not in ("exact", "kpm"):
        raise ValueError(f"method must be 'exact' or 'kpm', got {method!r}")
    ks = kgrid_points(kgrid)
    rng = np.random.default_rng(seed)
    energies = np.atleast_1d(np.asarray(energy, dtype=float))
    total = np.zeros((len(energies), ham.n_orbitals))
    for k in ks:  # loop over k-points; each is a vectorised solve
        h = ham.hk(k)
        if method == "exact":
            total += _exact_k(h, energies, float(width), dense_limit, n_eig)
        else:
            total += _kpm_k(h, energies, float(width), int(n_vectors), rng)
    total /= len(ks)
    return total[0] if np.ndim(energy) == 0 else total


def ldos_map(
    ham: Any,
    atoms: Atoms,
    energy: float,
    width: float = 0.01,
    kgrid: tuple[int, int, int] | np.ndarray = (1, 1, 1),
    method: str = "exact",
    **kwargs: Any,
) -> MoireMap:
    """LDOS at ``energy`` summed over the orbitals of every atom, sampled at the atoms.

    ``values`` (N,) states / eV / atom; ``extra["orbital_ldos"]`` the per-orbital values. Other keyword
    arguments go to :func:`ldos_at_energy`.
    """
    cell2 = _check_2d(atoms)
    owners = np.asarray(ham.orbital_atoms, dtype=np.int64)
    if owners.size and (owners.max() >= len(atoms) or owners.min() < 0):
        raise ValueError(f"the Hamiltonian's orbitals belong to atoms beyond the structure's {len(atoms)}")
    rho = ldos_at_energy(ham, energy, width=width, kgrid=kgrid, method=method, **kwargs)
    per_atom = np.bincount(owners, weights=rho, minlength=len(atoms))
    xy = PeriodicPlane(atoms.positions[:, :2], cell2, 0.0).wrap(atoms.positions[:, :2])
    return MoireMap(xy, per_atom, cell2, f"LDOS at {energy:+.4f} eV", "states/eV/atom",
                    extra={"orbital_ldos": rho})


def state_density_map(orbital_densities: np.ndarray, orbital_atoms: np.ndarray, atoms: Atoms,
                      name: str = "flat-band density") -> MoireMap:
    """Per-atom density of a set of states, relative to the cell mean (1 = uniform).

    ``orbital_densities`` (nk, nb, n_orb) holds ``|psi_nk(i)|^2`` of the chosen bands at each k-point
    (e.g. :attr:`wander.tb.BandWindows.densities` of the flat bands); the map is
    ``(1/N_k) sum_k sum_n |psi_nk|^2`` summed over each atom's orbitals, i.e. the LDOS integrated over
    the energies of those bands, divided by its mean over the atoms. ``extra["states_per_atom"]``
    keeps the unnormalised values (they sum to the number of bands).
    """
    cell2 = _check_2d(atoms)
    dens = np.asarray(orbital_densities, dtype=float)
    if dens.ndim != 3 or dens.shape[0] == 0 or dens.shape[1] == 0:
        raise ValueError(f"orbital_densities must be (nk, nb, n_orb) with nk, nb >= 1, got {dens.shape}")
    owners = np.asarray(orbital_atoms, dtype=np.int64)
    if owners.shape != (dens.shape[2],):
        raise ValueError(f"{dens.shape[2]} orbital densities for {owners.shape[0]} orbital owners")
    if owners.size and (owners.max() >= len(atoms) or owners.min() < 0):
        raise ValueError(f"the orbitals belong to atoms beyond the structure's {len(atoms)}")
    per_atom = np.bincount(owners, weights=dens.sum(axis=1).mean(axis=0), minlength=len(atoms))
    xy = PeriodicPlane(atoms.positions[:, :2], cell2, 0.0).wrap(atoms.positions[:, :2])
    return MoireMap(xy, per_atom / per_atom.mean(), cell2, name, "relative to the cell mean",
                    extra={"states_per_atom": per_atom})
