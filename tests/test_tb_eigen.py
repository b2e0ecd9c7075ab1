"""Sparse shift-invert against dense diagonalisation; inertia counts; sparse Fermi level."""

import numpy as np
import pytest

from wander.structures import graphene, twisted_bilayer
from wander.tb import band_structure, band_windows, eigsh_near, fermi_level, fermi_level_at_k, graphene_nn, moon_koshino
from wander.tb.eigen import ShiftInvert

TOL = 1e-9  # eV, sparse vs dense eigenvalues


@pytest.fixture(scope="module")
def rattled_tbg():
    """76-atom twisted bilayer (m, n) = (2, 3), 2x2 supercell (304 orbitals), atoms rattled."""
    atoms = twisted_bilayer("graphene", m=2, n=3).repeat((2, 2, 1))
    atoms.rattle(0.05, seed=3)
    return moon_koshino(atoms)


@pytest.mark.parametrize("target", [0.79, -1.3, 2.05])
def test_shift_invert_matches_dense(rattled_tbg, target):
    ham = rattled_tbg
    k = np.array([0.137, 0.291, 0.0])  # generic k: complex Hermitian H(k)
    dense = np.linalg.eigvalsh(ham.hk(k).toarray())
    asm = ham.assembler(ordered=True, diagonal=True)
    h = asm.matrix(k)
    res = eigsh_near(h, target, 10)
    nearest = np.sort(dense[np.argsort(np.abs(dense - target))[:10]])
    assert np.abs(res.eigenvalues - nearest).max() < TOL
    # inertia count = global index of the first eigenvalue in the window
    assert res.n_below == int(np.searchsorted(dense, nearest[0] - 1e-9))
    assert res.residual < 1e-8
    # eigenvectors: orthonormal eigenvectors of the (reordered) matrix
    v = res.vectors
    assert np.abs(v.conj().T @ v - np.eye(10)).max() < 1e-10
    assert np.abs(h @ v - v * res.eigenvalues).max() < 1e-8


def test_inertia_count_equals_dense_count(rattled_tbg):
    ham = rattled_tbg
    for k in (np.zeros(3), np.array([0.41, 0.05, 0.0])):
        dense = np.linalg.eigvalsh(ham.hk(k).toarray())
        h = ham.assembler(ordered=True, diagonal=True).matrix(k)
        for sigma in np.linspace(dense[0] - 0.5, dense[-1] + 0.5, 9):
            f = ShiftInvert(h, sigma)
            assert f.n_below == int(np.count_nonzero(dense < f.sigma))


def test_factorisation_at_the_backward_error_bound_leaves_eigenpairs_exact(rattled_tbg):
    """An accepted LDL^H may be the factorisation of H - sigma + E with ||E|| up to
    BACKWARD_ERROR_MAX ||H||: the eigenpairs still come out exact (Rayleigh-Ritz with H itself)
    and the inertia count is that of H for eigenvalues further than ||E|| from sigma."""
    import scipy.sparse as sp

    from wander.tb.eigen import BACKWARD_ERROR_MAX, RESIDUAL_MAX

    ham = rattled_tbg
    k = np.array([0.137, 0.291, 0.0])
    h = ham.assembler(ordered=True, diagonal=True).matrix(k)
    dense = np.linalg.eigvalsh(h.toarray())
    norm = float(abs(h).sum(axis=1).max())
    noise = np.random.default_rng(0).uniform(-1.0, 1.0, h.shape[0]) * BACKWARD_ERROR_MAX * norm
    perturbed = (h + sp.diags(noise)).tocsr()
    for target in (0.79, -1.3):
        factor = ShiftInvert(perturbed, target)            # a factorisation of H + E, not of H
        assert factor.sigma == target
        res = eigsh_near(h, target, 10, factor=factor)
        nearest = np.sort(dense[np.argsort(np.abs(dense - target))[:10]])
        assert np.abs(res.eigenvalues - nearest).max() < TOL
        assert res.n_below == int(np.searchsorted(dense, nearest[0] - 1e-9))
        # Ritz vectors of the perturbed operator: residual ~ ||E||, eigenvalue error ~ residual^2 / gap
        assert res.residual <= RESIDUAL_MAX * max(1.0, float(np.abs(res.eigenvalues).max()))


def test_degenerate_multiplet_at_the_shift():
    # the 9x9 graphene supercell folds K and K' onto Gamma: E = 0 is four-fold degenerate,
    # and sigma = 0 hits it exactly (the factorisation must move sigma off the singularity)
    ham = graphene_nn(graphene()).supercell(np.diag([9, 9, 1]))
    h = ham.assembler(ordered=True, diagonal=True).matrix(np.zeros(3))
    dense = np.linalg.eigvalsh(h.toarray())
    res = eigsh_near(h, 0.0, 4)
    assert np.abs(res.eigenvalues).max() < TOL
    assert res.n_below == int(np.count_nonzero(dense < -1e-9))  # 77 states below the zero modes


def test_sparse_band_structure_equals_dense(rattled_tbg):
    ham = rattled_tbg
    dense = band_structure(ham, "GMKG", 7, n_bands=6, energy=0.8, method="dense")
    sparse = band_structure(ham, "GMKG", 7, n_bands=6, energy=0.8, method="sparse")
    assert np.abs(dense.energies - sparse.energies).max() < TOL
    # the Fermi level from sparse windows (band indices from inertia) equals the dense one
    n_el = ham.n_orbitals
    full = band_structure(ham, "GMKG", 7, method="dense")
    ef_dense = fermi_level(full.energies[0], n_el)
    ef_sparse = band_structure(ham, "GMKG", 7, n_bands=8, energy=0.8, method="sparse", n_electrons=n_el).reference
    assert abs(ef_dense - ef_sparse) < TOL


def test_parallel_k_points_equal_serial(rattled_tbg):
    kpts = np.random.default_rng(0).random((5, 3)) * [1, 1, 0]
    serial = band_windows(rattled_tbg, kpts, n_bands=6, energy=0.8, method="sparse")
    forked = band_windows(rattled_tbg, kpts, n_bands=6, energy=0.8, method="sparse", workers=2)
    assert np.array_equal(serial.band_offset, forked.band_offset)
    assert np.abs(serial.energies - forked.energies).max() < TOL


def test_forked_band_workers_use_one_blas_thread_each(rattled_tbg, monkeypatch):
    """Workers x threaded BLAS oversubscribes the cores (2 workers with 2 OpenBLAS threads each on 2
    cores ran a 7-k-point path of the 1.05 deg cell in 596 s instead of 46 s)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    import wander.tb.bands as bands

    seen = []
    real = bands._sparse_rows

    def spy(*args, **kwargs):
        seen.append({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
        return real(*args, **kwargs)

    monkeypatch.setattr(bands, "_sparse_rows", spy)
    ham = rattled_tbg
    kpts = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.2, 0.0, 0.0]])
    asm = ham.assembler(ordered=True, diagonal=True)
    bands._FORKED.update(asm=asm, kpts=kpts, gauge="lattice", n_bands=4, energy=0.8, lo=150, order=None,
                         blas_threads=1)
    try:
        with threadpool_limits(limits=2, user_api="blas"):  # a threaded parent, whatever CI's env says
            rows, known, _ = bands._chunk_rows((0, 3))
    finally:
        bands._FORKED.clear()
    assert seen == [{1}] and known and np.isfinite(rows).all()
    serial = band_windows(ham, kpts, n_bands=4, energy=0.8, first_band=150, method="sparse")
    np.testing.assert_allclose(rows, serial.energies, atol=TOL)


def test_band_state_densities_match_dense_eigenvectors(rattled_tbg):
    """|psi|^2 per orbital of the window's bands, in the original orbital order (the sparse route
    factorises in a fill-reducing order), serial and forked, equal to dense eigenvectors'."""
    ham = rattled_tbg
    kpts = np.random.default_rng(1).random((4, 3)) * [1, 1, 0]
    sparse = band_windows(ham, kpts, n_bands=6, energy=0.8, method="sparse", densities=True)
    forked = band_windows(ham, kpts, n_bands=6, energy=0.8, method="sparse", workers=2, densities=True)
    dense = band_windows(ham, kpts, n_bands=6, energy=0.8, method="dense", densities=True)
    assert sparse.densities.shape == dense.densities.shape == (4, 6, ham.n_orbitals)
    assert np.array_equal(sparse.band_offset, dense.band_offset)
    assert not np.allclose(ham.fill_reducing_order, np.arange(ham.n_orbitals))  # the permutation matters
    gaps = np.diff(dense.energies, axis=1)
    assert gaps.min() > 1e-4                      # rattled: no degeneracy, |psi|^2 is gauge-free per band
    np.testing.assert_allclose(sparse.densities.sum(axis=2), 1.0, atol=1e-5)
    np.testing.assert_allclose(sparse.densities, dense.densities, atol=2e-6)
    np.testing.assert_allclose(forked.densities, sparse.densities, atol=2e-6)
    assert band_windows(ham, kpts, n_bands=6, energy=0.8, method="sparse").densities is None


def test_fermi_level_at_k_equals_dense(rattled_tbg):
    ham = rattled_tbg
    k = np.array([0.2, 0.1, 0.0])
    h = ham.assembler(ordered=True, diagonal=True).matrix(k)
    dense = np.linalg.eigvalsh(h.toarray())
    n = ham.n_orbitals
    for n_el in (n, n - 6, n + 10):
        assert abs(fermi_level_at_k(h, n_el) - fermi_level(dense[None, :], n_el)) < TOL


def test_fermi_level_at_k_survives_an_unstable_factorisation(rattled_tbg, monkeypatch):
    """An LDL^H without inertia count at one shift (seen on a relaxed 1.05 deg cell) moves the shift
    slightly instead of failing."""
    import wander.tb.eigen as eigen

    ham = rattled_tbg
    h = ham.assembler(ordered=True, diagonal=True).matrix(np.zeros(3))
    n = ham.n_orbitals
    expected = fermi_level(np.linalg.eigvalsh(h.toarray())[None, :], n)
    real, calls = eigen.ShiftInvert, []

    def flaky(m, sigma, *args, **kwargs):
        f = real(m, sigma, *args, **kwargs)
        calls.append(sigma)
        if len(calls) == 2:  # the second factorisation "fails"
            f.n_below = None
        return f

    monkeypatch.setattr(eigen, "ShiftInvert", flaky)
    assert abs(fermi_level_at_k(h, n) - expected) < TOL
    assert len(calls) >= 3 and calls[2] != calls[1]


def test_bad_requests():
    h = graphene_nn(graphene()).supercell(np.diag([9, 9, 1])).hk(np.zeros(3))
    with pytest.raises(ValueError, match="n_eig"):
        eigsh_near(h, 0.0, 0)
