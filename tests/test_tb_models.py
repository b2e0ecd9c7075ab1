"""Two-centre pz models: graphene nearest neighbours and Moon-Koshino."""

import numpy as np
import pytest
from ase import Atoms

from wander.structures import bilayer, graphene, twisted_bilayer
from wander.tb import bandpath_2d, graphene_nn, moon_koshino, pz_model
from wander.tb.slater_koster import MOON_KOSHINO, pz_model_summary


def _eig(ham, k):
    return np.linalg.eigvalsh(ham.hk(k).toarray())


def test_moon_koshino_parameters_and_limits():
    g = moon_koshino(graphene())
    # nearest neighbour hopping is V0_pi exactly at the C-C distance a/sqrt(3)
    nn = g.t[np.isclose(np.abs(g.t), 2.7, atol=1e-9)]
    assert len(nn) == 3 and np.allclose(nn, -2.7)
    # next-nearest (d = a): V0_pi exp(-(a - a0)/delta)
    d = 2.46
    assert np.any(np.isclose(g.t.real, -2.7 * np.exp(-(d - d / np.sqrt(3)) / (0.184 * d))))
    b = moon_koshino(bilayer("graphene", stacking="AB", distance=3.35))
    # vertical dimer: pure sigma bond at d0 -> V0_sigma
    assert np.any(np.isclose(b.t.real, 0.48, atol=1e-12))
    assert np.all(g.t.imag == 0) and MOON_KOSHINO["cutoff"] == 5.0


def test_moon_koshino_ab_bilayer_interlayer_splitting_at_K():
    atoms = bilayer("graphene", stacking="AB")
    ham = moon_koshino(atoms)
    K = bandpath_2d(atoms.cell[:]).special_points["K"]
    e = _eig(ham, K)
    # two non-dimer states stay degenerate; the dimer pair is split by 2 gamma_1, with the
    # effective gamma_1 = 0.48 eV minus the 6 second-shell interlayer terms (~0.3-0.4 eV)
    assert abs(e[1] - e[2]) < 1e-10
    gamma1 = 0.5 * (e[3] - e[0])
    assert 0.3 < gamma1 < 0.4
    assert e[0] < e[1] < e[3]


def test_moon_koshino_tbg_hermitian_and_symmetric():
    atoms = twisted_bilayer("graphene", m=1, n=2)  # 21.79 deg, 28 atoms, D3 about the origin
    ham = moon_koshino(atoms)
    assert ham.n_orbitals == 28 and np.all(ham.orbital_labels == "pz")
    sp = bandpath_2d(atoms.cell[:]).special_points
    K = sp["K"]
    h = ham.hk(K).toarray()
    assert np.abs(h - h.conj().T).max() < 1e-14
    # K' = -K (time reversal: real hoppings)
    assert np.abs(_eig(ham, K) - _eig(ham, -K)).max() < 1e-10
    # C3 about z maps k to an equivalent point: E(C3 k) = E(k) at a generic k
    cell = atoms.cell[:]
    B = 2 * np.pi * np.linalg.inv(cell).T
    c, s = np.cos(2 * np.pi / 3), np.sin(2 * np.pi / 3)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    k = np.array([0.17, 0.06, 0.0])
    k_rot = (rot @ (k @ B)) @ np.linalg.inv(B)
    assert np.abs(_eig(ham, k) - _eig(ham, k_rot)).max() < 1e-10
    # the layer tags are reported, not used
    assert "interlayer" in pz_model_summary(atoms, ham)


def test_graphene_nn_neighbours_and_cutoff():
    atoms = graphene().repeat((3, 3, 1))
    atoms.rattle(0.02, seed=0)
    ham = graphene_nn(atoms, t=3.0)
    assert ham.n_hoppings == 3 * len(atoms) // 2  # three bonds per atom, each stored once
    assert np.all(ham.t == -3.0)


def test_pz_model_errors():
    with pytest.raises(ValueError, match="unknown tight-binding model"):
        pz_model(graphene(), "slater")
    bn = Atoms("BN", positions=[[0, 0, 0], [1.45, 0, 0]], cell=[[2.5, 0, 0], [1.25, 2.165, 0], [0, 0, 20]], pbc=(1, 1, 0))
    with pytest.raises(ValueError, match="carbon pz model"):
        moon_koshino(bn)
    bulk = graphene()
    bulk.pbc = (True, True, True)
    assert moon_koshino(bulk).pbc == (True, True, True)
    with pytest.raises(ValueError, match="cutoff"):
        moon_koshino(graphene(), cutoff=1.0)


@pytest.mark.slow
def test_magic_angle_flat_bands():
    """1.05 deg TBG: four bands within a few meV of E_F, remote bands tens of meV away."""
    from wander.tb import band_structure, fermi_level_at_k

    atoms = twisted_bilayer("graphene", angle=1.05)
    ham = moon_koshino(atoms)
    h0 = ham.assembler(ordered=True, diagonal=True).matrix(np.zeros(3))
    e0 = fermi_level_at_k(h0, ham.n_orbitals)
    bs = band_structure(ham, "GMKG", 7, n_bands=8, energy=e0, n_electrons=ham.n_orbitals)
    e = bs.energies[0] - bs.reference
    flat = e[:, 2:6]
    assert np.abs(flat).max() < 0.03  # flat bands within 30 meV of E_F
    assert np.abs(e[:, [0, 7]]).min() > np.abs(flat).max()  # remote bands outside
