"""Kernel polynomial method against exact diagonalisation."""

import numpy as np
import pytest

from wander.structures import twisted_bilayer
from wander.tb import density_of_states, local_density_of_states, moon_koshino
from wander.tb.dos import grid_eigenvalues
from wander.tb.kpm import jackson_kernel, jackson_width, kpm_density, kpm_moments, spectral_bounds

TOL_EXACT = 1e-9  # moments from unit vectors are exact up to rounding
N_MOM = 256


@pytest.fixture(scope="module")
def system():
    atoms = twisted_bilayer("graphene", m=2, n=3).repeat((2, 2, 1))  # 304 orbitals
    atoms.rattle(0.05, seed=1)
    ham = moon_koshino(atoms)
    k = np.array([0.23, 0.11, 0.0])
    h = ham.hk(k)
    e, v = np.linalg.eigh(h.toarray())
    return ham, k, h, e, v


def _exact_moments(weights, e, bounds, n):
    a, b = 0.5 * (bounds[1] - bounds[0]), 0.5 * (bounds[1] + bounds[0])
    x = (e - b) / a
    return np.cos(np.outer(np.arange(n), np.arccos(x))) @ weights


def test_spectral_bounds_contain_spectrum(system):
    _, _, h, e, _ = system
    lo, hi = spectral_bounds(h)
    assert lo < e[0] and hi > e[-1]
    assert (hi - lo) < 1.1 * (e[-1] - e[0])  # tight: margin of a few percent


def test_unit_vector_moments_are_exact(system):
    _, _, h, e, _ = system
    bounds = spectral_bounds(h)
    mu = kpm_moments(h, N_MOM, bounds, n_vectors=h.shape[0])  # one unit vector per orbital
    ref = _exact_moments(np.ones(len(e)), e, bounds, N_MOM)
    assert np.abs(mu - ref).max() < TOL_EXACT * len(e)
    assert mu[0] == pytest.approx(len(e))


def test_ldos_of_an_orbital_set_is_exact(system):
    _, _, h, e, v = system
    bounds = spectral_bounds(h)
    orbitals = np.array([3, 17, 150])
    mu = kpm_moments(h, N_MOM, bounds, n_vectors=10, orbitals=orbitals)
    weights = (np.abs(v[orbitals]) ** 2).sum(axis=0)  # sum_i |psi_n(i)|^2
    ref = _exact_moments(weights, e, bounds, N_MOM)
    assert np.abs(mu - ref).max() < 1e-10
    assert mu[0] == pytest.approx(3.0)


def test_stochastic_dos_matches_exact_moment_dos(system):
    _, _, h, e, _ = system
    bounds = spectral_bounds(h)
    grid = np.linspace(bounds[0], bounds[1], 1500)
    ref = kpm_density(_exact_moments(np.ones(len(e)), e, bounds, N_MOM), bounds, grid)
    n_vec = 32
    mu = kpm_moments(h, N_MOM, bounds, n_vectors=n_vec, seed=5)
    rho = kpm_density(mu, bounds, grid)
    # same kernel; the trace estimator's standard deviation at E is sqrt(||A_E||_F^2 / R) with
    # A_E = delta_J(E - H), ||A_E||_F^2 ~ rho(E) / (2 sqrt(pi) sigma), sigma = pi a / N
    sigma = np.pi * 0.5 * (bounds[1] - bounds[0]) / N_MOM
    std = np.sqrt(ref / (2 * np.sqrt(np.pi) * sigma * n_vec))
    assert np.abs(rho - ref).max() < 5 * std.max()
    assert 0.2 < np.mean(((rho - ref) / np.maximum(std, 1e-3 * std.max())) ** 2) < 3.0
    # integrates to the number of orbitals (mu_0 = N exactly for random-phase vectors)
    assert np.trapezoid(rho, grid) == pytest.approx(len(e), rel=1e-3)


def test_jackson_dos_is_gaussian_broadened_exact_dos(system):
    _, _, h, e, _ = system
    bounds = spectral_bounds(h)
    a, b = 0.5 * (bounds[1] - bounds[0]), 0.5 * (bounds[1] + bounds[0])
    n_mom = 1024
    grid = np.linspace(e[0], e[-1], 2000)
    rho = kpm_density(_exact_moments(np.ones(len(e)), e, bounds, n_mom), bounds, grid)
    sig = jackson_width(n_mom, a, (e - b) / a)  # energy-dependent width of the Jackson kernel
    gauss = (np.exp(-0.5 * ((grid[:, None] - e[None, :]) / sig) ** 2) / (np.sqrt(2 * np.pi) * sig)).sum(axis=1)
    # the Jackson kernel is close to, not exactly, a Gaussian: 5% of the peak height
    assert np.abs(rho - gauss).max() < 0.05 * gauss.max()
    assert jackson_kernel(n_mom)[0] == pytest.approx(1.0)


def test_density_of_states_api_kpm_vs_exact():
    ham = moon_koshino(twisted_bilayer("graphene", m=1, n=2))  # 28 orbitals
    kgrid = (3, 3, 1)
    ex = density_of_states(ham, kgrid, method="exact", width=0.05, npts=3000)
    e, w = ex.get_energies(), ex.get_weights()
    assert np.trapezoid(w, e) == pytest.approx(28, rel=1e-6)
    kp = density_of_states(ham, kgrid, method="kpm", width=0.05, npts=3000, emin=e[0], emax=e[-1], vectors=28)
    # unit vectors (vectors >= orbitals): exact moments, so the KPM DOS is the exact spectrum
    # broadened by the Jackson kernel: a Gaussian of width pi a / N at the band centre
    n_mom = int(kp.info["moments"])
    lo, hi = (float(x) for x in kp.info["bounds"].split())
    a, b = 0.5 * (hi - lo), 0.5 * (hi + lo)
    assert np.pi * a / n_mom <= 0.05
    eig, wk = grid_eigenvalues(ham, kgrid)
    sig = jackson_width(n_mom, a, (eig.ravel() - b) / a)
    z = (e[:, None] - eig.ravel()[None, :]) / sig
    gauss = (np.exp(-0.5 * z**2) / (np.sqrt(2 * np.pi) * sig)).sum(axis=1) / len(wk)
    assert np.abs(kp.get_weights() - gauss).max() < 0.05 * gauss.max()
    assert kp.info["method"] == "kpm"
    with pytest.raises(ValueError, match="method"):
        density_of_states(ham, kgrid, method="lanczos")
    with pytest.raises(ValueError, match="non-periodic"):
        density_of_states(ham, (2, 2, 2))


def test_layer_ldos_sums_to_total():
    atoms = twisted_bilayer("graphene", m=1, n=2)
    ham = moon_koshino(atoms)
    layer = atoms.arrays["layer"]
    kw = dict(kgrid=(2, 2, 1), moments=200, vectors=28, npts=2000, emin=-13.0, emax=8.0)  # spectrum -11.7..6.9
    bottom = local_density_of_states(ham, np.flatnonzero(layer == 0), **kw)
    top = local_density_of_states(ham, np.flatnonzero(layer == 1), **kw)
    total = density_of_states(ham, method="kpm", **kw)
    assert np.allclose(bottom.get_weights() + top.get_weights(), total.get_weights(), atol=1e-8)
    assert np.trapezoid(bottom.get_weights(), bottom.get_energies()) == pytest.approx(14, rel=1e-2)
