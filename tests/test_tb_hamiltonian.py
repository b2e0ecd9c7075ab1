"""TBHamiltonian: canonical storage, Hermiticity checks, Bloch sums, gauges, supercells."""

import numpy as np
import pytest
from tb_testing import folded_kpoints, random_hermitian_hoppings, reference_hk

from wander.structures import bilayer, graphene
from wander.tb import TBHamiltonian, graphene_nn, moon_koshino

TOL = 1e-12
CELL = np.array([[2.0, 0.0, 0.0], [0.7, 1.9, 0.0], [0.0, 0.0, 15.0]])


def _random_model(n=5, seed=0):
    R, i, j, t = random_hermitian_hoppings(n, seed)
    pos = np.random.default_rng(seed).uniform(-1, 3, size=(n, 3)) * [1, 1, 0.3]
    return TBHamiltonian.from_hoppings(CELL, pos, R, i, j, t), (R, i, j, t)


def test_full_list_is_stored_once_and_reproduces_definition():
    ham, (R, i, j, t) = _random_model()
    assert ham.n_hoppings == (len(t) + ham.n_orbitals) // 2  # one of each pair, onsite once
    k = np.array([0.123, -0.377, 0.0])
    # reference: the definition applied to the FULL input list (no half-storage involved)
    full = np.zeros((5, 5), complex)
    for Rv, a, b, v in zip(R, i, j, t):
        full[a, b] += v * np.exp(2j * np.pi * Rv @ k)
    assert np.allclose(ham.hk(k).toarray(), full, atol=TOL)
    assert np.allclose(ham.hk(k).toarray(), reference_hk(ham, k), atol=TOL)


def test_any_mix_of_halves_gives_the_same_hamiltonian():
    ham, _ = _random_model(seed=1)
    rng = np.random.default_rng(3)
    # every pair once, each in a random direction
    flip = rng.random(ham.n_hoppings) < 0.5
    R = np.where(flip[:, None], -ham.R, ham.R)
    i = np.where(flip, ham.j, ham.i)
    j = np.where(flip, ham.i, ham.j)
    t = np.where(flip, np.conj(ham.t), ham.t)
    perm = rng.permutation(ham.n_hoppings)
    h2 = TBHamiltonian.from_hoppings(CELL, ham.orbital_positions, R[perm], i[perm], j[perm], t[perm])
    assert np.array_equal(h2.R, ham.R) and np.array_equal(h2.i, ham.i) and np.array_equal(h2.j, ham.j)
    assert np.abs(h2.t - ham.t).max() == 0.0
    # the same direction twice is summed (COO convention), unlike a pair given both ways
    h3 = TBHamiltonian.from_hoppings(CELL, np.zeros((2, 3)), [[1, 0, 0], [1, 0, 0]], [0, 0], [1, 1], [0.5, 0.25])
    assert h3.n_hoppings == 1 and h3.t[0] == 0.75


def test_rejects_non_hermitian_pair_and_names_it():
    R = np.array([[1, 0, 0], [-1, 0, 0]])
    with pytest.raises(ValueError, match=r"not Hermitian.*H_0,1\(R=\(1, 0, 0\)\)"):
        TBHamiltonian.from_hoppings(CELL, np.zeros((2, 3)), R, [0, 1], [1, 0], [1.0 + 0.5j, 1.0 + 0.5j])
    # the conjugate is accepted and stored once
    h = TBHamiltonian.from_hoppings(CELL, np.zeros((2, 3)), R, [0, 1], [1, 0], [1.0 + 0.5j, 1.0 - 0.5j])
    assert h.n_hoppings == 1 and h.t[0] == 1.0 + 0.5j and tuple(h.R[0]) == (1, 0, 0)


def test_rejects_bad_input():
    pos = np.zeros((2, 3))
    with pytest.raises(ValueError, match="onsite energy of orbital 1 is complex"):
        TBHamiltonian.from_hoppings(CELL, pos, [[0, 0, 0]], [1], [1], [0.3 + 0.1j])
    with pytest.raises(ValueError, match="non-periodic direction 2"):
        TBHamiltonian.from_hoppings(CELL, pos, [[0, 0, 1]], [0], [1], [1.0])
    with pytest.raises(ValueError, match="out of range"):
        TBHamiltonian.from_hoppings(CELL, pos, [[0, 0, 0]], [0], [2], [1.0])
    with pytest.raises(ValueError, match="integer"):
        TBHamiltonian.from_hoppings(CELL, pos, [[0.5, 0, 0]], [0], [1], [1.0])
    with pytest.raises(ValueError, match="finite"):
        TBHamiltonian.from_hoppings(CELL, pos, [[1, 0, 0]], [0], [1], [np.nan])
    with pytest.raises(ValueError, match="singular"):
        TBHamiltonian.from_hoppings(np.diag([1.0, 1.0, 0.0]), pos, [[1, 0, 0]], [0], [1], [1.0])
    h = graphene_nn(graphene())
    with pytest.raises(ValueError, match="non-periodic"):
        h.hk([0.1, 0.1, 0.2])
    with pytest.raises(ValueError, match="gauge"):
        h.hk([0.1, 0.1, 0.0], gauge="atomic")


def test_arrays_are_read_only():
    h = graphene_nn(graphene())
    with pytest.raises(ValueError):
        h.t[0] = 0.0
    with pytest.raises(AttributeError):
        h.cell = np.eye(3)


@pytest.mark.parametrize("gauge", ["lattice", "position"])
def test_hk_hermitian_and_matches_reference(gauge):
    ham = moon_koshino(bilayer("graphene", stacking="AB"))
    k = np.array([0.21, 0.43, 0.0])
    hk = ham.hk(k, gauge).toarray()
    assert np.abs(hk - hk.conj().T).max() < TOL
    assert np.allclose(hk, reference_hk(ham, k, gauge), atol=TOL)


def test_lattice_gauge_periodic_and_gauges_unitarily_equivalent():
    ham = moon_koshino(bilayer("graphene", stacking="AB"))
    k = np.array([0.173, -0.291, 0.0])
    G = np.array([1, -2, 0])
    assert np.abs(ham.hk(k).toarray() - ham.hk(k + G).toarray()).max() < 1e-12
    # position gauge: H_pos(k) = U^H H_lat(k) U with U = diag(exp(2 pi i k.tau))
    U = np.diag(np.exp(2j * np.pi * ham.frac_positions @ k))
    assert np.abs(ham.hk(k, "position").toarray() - U.conj().T @ ham.hk(k).toarray() @ U).max() < 1e-12
    e_lat = np.linalg.eigvalsh(ham.hk(k).toarray())
    e_pos = np.linalg.eigvalsh(ham.hk(k, "position").toarray())
    assert np.abs(e_lat - e_pos).max() < 1e-12


@pytest.mark.parametrize(
    "P",
    [np.diag([2, 2, 1]), np.diag([3, 3, 1]), np.array([[2, 1, 0], [-1, 1, 0], [0, 0, 1]]), np.diag([1, 2, 1])],
    ids=["2x2", "3x3", "oblique-det3", "1x2"],
)
def test_supercell_folding_reproduces_primitive_spectrum(P):
    # long-range Moon-Koshino hoppings (R up to +-2) exercise the lattice-vector bookkeeping
    prim = moon_koshino(bilayer("graphene", stacking="AB"))
    sup = prim.supercell(P)
    det = int(round(np.linalg.det(P)))
    assert sup.n_orbitals == det * prim.n_orbitals
    assert np.allclose(sup.cell, P @ prim.cell)
    for k_super in (np.array([0.0, 0.0, 0.0]), np.array([0.137, 0.291, 0.0]), np.array([1 / 3, 1 / 3, 0.0])):
        kps = folded_kpoints(k_super, P)
        assert len(kps) == det
        e_prim = np.sort(np.concatenate([np.linalg.eigvalsh(prim.hk(kp).toarray()) for kp in kps]))
        e_sup = np.linalg.eigvalsh(sup.hk(k_super).toarray())
        assert np.abs(e_sup - e_prim).max() < 1e-10


def test_supercell_equals_model_built_on_supercell_structure():
    atoms = bilayer("graphene", stacking="AB")
    sup = moon_koshino(atoms).supercell(np.diag([2, 3, 1]))
    direct = moon_koshino(atoms.repeat((2, 3, 1)))
    k = np.array([0.2, 0.45, 0.0])
    e1 = np.linalg.eigvalsh(sup.hk(k).toarray())
    e2 = np.linalg.eigvalsh(direct.hk(k).toarray())
    assert sup.n_hoppings == direct.n_hoppings
    assert np.abs(e1 - e2).max() < 1e-10


def test_supercell_rejects_bad_matrix():
    h = graphene_nn(graphene())
    with pytest.raises(ValueError, match="positive determinant"):
        h.supercell(np.diag([2, -1, 1]))
    with pytest.raises(ValueError, match="non-periodic"):
        h.supercell(np.diag([1, 1, 2]))
    with pytest.raises(ValueError, match="integer"):
        h.supercell(np.diag([1.5, 1, 1]))


def test_save_load_round_trip_is_exact(tmp_path):
    ham, _ = _random_model(n=4, seed=7)
    path = tmp_path / "ham.npz"
    ham.save(path)
    back = TBHamiltonian.load(path)
    for name in ("cell", "orbital_positions", "orbital_atoms", "orbital_labels", "R", "i", "j", "t"):
        assert np.array_equal(getattr(back, name), getattr(ham, name)), name
    assert back.pbc == ham.pbc
    assert [p.name for p in tmp_path.iterdir()] == ["ham.npz"]  # no temporary left behind


def test_from_half_hoppings_equals_from_hoppings_without_copies():
    ham, _ = _random_model(seed=4)
    rng = np.random.default_rng(5)
    perm = rng.permutation(ham.n_hoppings)  # any order of the stored half
    R, i, j, t = (np.array(a[perm]) for a in (ham.R, ham.i, ham.j, ham.t))
    lean = TBHamiltonian.from_half_hoppings(CELL, ham.orbital_positions, R, i, j, t)
    assert np.shares_memory(lean.t, t) and not t.flags.writeable  # taken over, not copied
    for k in ([0.0, 0.0, 0.0], [0.31, -0.17, 0.0]):
        assert np.abs(lean.hk(k).toarray() - ham.hk(k).toarray()).max() < TOL


def test_from_half_hoppings_refuses_what_it_cannot_store():
    ham, _ = _random_model(seed=6)
    R, i, j, t = (np.array(a) for a in (ham.R, ham.i, ham.j, ham.t))
    off = int(np.flatnonzero(R.any(axis=1))[0])
    with pytest.raises(ValueError, match="more than once"):
        TBHamiltonian.from_half_hoppings(CELL, ham.orbital_positions, R[[off, off]], i[[off, off]],
                                         j[[off, off]], t[[off, off]])
    with pytest.raises(ValueError, match="implied half"):
        TBHamiltonian.from_half_hoppings(CELL, ham.orbital_positions, -R[[off]], j[[off]], i[[off]],
                                         np.conj(t[[off]]))
    with pytest.raises(ValueError, match="onsite"):
        TBHamiltonian.from_half_hoppings(CELL, ham.orbital_positions, [[0, 0, 0]], [1], [1], [0.2 + 0.1j])
    with pytest.raises(ValueError, match="non-periodic"):
        TBHamiltonian.from_half_hoppings(CELL, ham.orbital_positions, [[0, 0, 1]], [0], [1], [1.0])
