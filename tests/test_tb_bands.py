"""Band paths, analytic graphene bands, Fermi levels."""

import numpy as np
import pytest
from ase import Atoms

from wander.structures import graphene, twisted_bilayer
from wander.tb import band_structure, bandpath_2d, fermi_level, graphene_nn
from wander.tb.dos import grid_eigenvalues
from wander.tb.kpath import lattice_2d

A = 2.46
T = 2.7


def _cart(cell, k):
    return np.asarray(k) @ (2 * np.pi * np.linalg.inv(cell).T)


def _graphene_120():
    """Graphene in a 120-degree cell (a2' = a2 - a1), atoms unchanged."""
    g = graphene(A)
    cell = g.cell[:].copy()
    cell[1] = cell[1] - cell[0]
    g.set_cell(cell, scale_atoms=False)
    return g


def _analytic(atoms, kpts):
    """+- t |f(k)|, f(k) = sum over the three bond vectors of exp(i k.d)."""
    pos = atoms.positions
    bonds = []
    for shift in np.array([[a, b, 0] for a in (-1, 0, 1) for b in (-1, 0, 1)]):
        d = pos[1] + shift @ atoms.cell[:] - pos[0]
        if abs(np.linalg.norm(d) - A / np.sqrt(3)) < 1e-6:
            bonds.append(d)
    assert len(bonds) == 3
    f = np.exp(1j * _cart(atoms.cell[:], kpts) @ np.array(bonds).T).sum(axis=1)
    return np.c_[-T * np.abs(f), T * np.abs(f)]


@pytest.mark.parametrize("make", [graphene, _graphene_120], ids=["60deg", "120deg"])
def test_graphene_nn_analytic_bands_on_GMKG(make):
    atoms = make()
    bs = band_structure(graphene_nn(atoms, t=T), "GMKG", npoints=60)
    e = bs.energies[0]
    assert e.shape == (60, 2)
    assert np.abs(e - _analytic(atoms, bs.path.kpts)).max() < 1e-10
    sp = bs.path.special_points
    # the K point is the Dirac point, M gives +-t
    assert np.abs(np.linalg.eigvalsh(graphene_nn(atoms).hk(sp["K"]).toarray())).max() < 1e-12
    assert np.allclose(np.linalg.eigvalsh(graphene_nn(atoms).hk(sp["M"]).toarray()), [-T, T], atol=1e-12)


@pytest.mark.parametrize("make", [graphene, _graphene_120], ids=["60deg", "120deg"])
def test_hexagonal_special_points_are_geometric(make):
    cell = make().cell[:]
    sp = bandpath_2d(cell).special_points
    K, M = _cart(cell, sp["K"]), _cart(cell, sp["M"])
    assert np.isclose(np.linalg.norm(K), 4 * np.pi / (3 * A))
    assert np.isclose(np.linalg.norm(M), 2 * np.pi / (np.sqrt(3) * A))
    # K is a zone corner: as far from Gamma as from the nearest reciprocal lattice points
    B = 2 * np.pi * np.linalg.inv(cell).T
    G = np.array([[a, b, 0] for a in (-1, 0, 1) for b in (-1, 0, 1)]) @ B
    d = np.sort(np.linalg.norm(K - G, axis=1))
    assert np.allclose(d[:3], np.linalg.norm(K))


def test_twisted_cell_path_not_standardised():
    atoms = twisted_bilayer("graphene", m=1, n=2)  # rotated 60-degree cell
    cell = atoms.cell[:]
    bp = bandpath_2d(cell, "GMKG", 31)
    assert np.allclose(np.asarray(bp.cell), cell)
    a = np.linalg.norm(cell[0])
    assert np.isclose(np.linalg.norm(_cart(cell, bp.special_points["K"])), 4 * np.pi / (3 * a))
    # a skewed but equivalent basis (a1, a1 + a2) is still detected as hexagonal
    skew = cell.copy()
    skew[1] = cell[0] + cell[1]
    assert lattice_2d(skew)[0] == "hexagonal"
    K = _cart(skew, bandpath_2d(skew).special_points["K"])
    assert np.isclose(np.linalg.norm(K), 4 * np.pi / (3 * a))


def test_rectangular_and_oblique_paths():
    rect = np.diag([3.0, 5.0, 20.0])
    assert lattice_2d(rect)[0] == "rectangular"
    sp = bandpath_2d(rect).special_points
    assert np.allclose(sp["X"], [0.5, 0, 0]) and np.allclose(sp["Y"], [0, 0.5, 0]) and np.allclose(sp["S"], [0.5, 0.5, 0])
    assert "".join(bandpath_2d(rect).path.split(",")) == "GXSYG"
    square = np.diag([3.0, 3.0, 20.0])
    assert lattice_2d(square)[0] == "square" and bandpath_2d(square).path == "GXMG"
    oblique = np.array([[3.0, 0, 0], [1.1, 4.0, 0], [0, 0, 20.0]])
    assert lattice_2d(oblique)[0] == "oblique"
    assert len(bandpath_2d(oblique, npoints=40).kpts) == 40
    with pytest.raises(ValueError, match="unknown"):
        bandpath_2d(rect, "GKM")
    with pytest.raises(ValueError, match="zero z"):
        bandpath_2d(np.array([[3.0, 0, 0.5], [0, 3, 0], [0, 0, 20]]))


@pytest.mark.parametrize("n", [6, 7])
def test_fermi_level_of_graphene_is_dirac_point(n):
    # 6x6 contains K (degenerate Dirac point), 7x7 does not (gap midpoint)
    eig, w = grid_eigenvalues(graphene_nn(graphene()), (n, n, 1))
    assert abs(fermi_level(eig, 2.0, w)) < 1e-12


def test_fermi_level_counts_and_windows():
    rng = np.random.default_rng(0)
    u = rng.random((5, 6))
    eig = np.c_[u[:, 0] - 10, u[:, 1] - 2, u[:, 2] - 0.5, u[:, 3] + 1, u[:, 4:] + 10]  # ascending per k
    w = rng.random(5)
    ef = fermi_level(eig, 5.4, w)  # 2.7 states: a metal
    count = 2 * (w / w.sum()) @ (eig <= ef + 1e-12).sum(axis=1)
    below = 2 * (w / w.sum()) @ (eig < ef - 1e-12).sum(axis=1)
    assert below < 5.4 <= count + 1e-9
    # the same level from windows of 3 bands with their global offsets
    win = eig[:, 1:4]
    assert fermi_level(win, 5.4, w, band_offset=np.ones(5, int)) == ef
    with pytest.raises(ValueError, match="window"):
        fermi_level(eig[:, 4:6], 5.4, w, band_offset=np.full(5, 4))
    # an insulator: midpoint of the gap
    assert fermi_level(np.array([[-1.0, 2.0], [-1.5, 3.0]]), 2) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="do not fit"):
        fermi_level(eig, 13, w)


def test_band_structure_window_and_reference():
    ham = graphene_nn(graphene())
    bs = band_structure(ham, npoints=20, n_bands=1, energy=1.0, fermi_level=0.0)
    assert bs.energies.shape == (1, 20, 1)
    assert np.all(bs.energies >= 0)  # the band nearest +1 eV is the conduction band
    bs2 = band_structure(ham, npoints=20, n_electrons=2)
    assert bs2.reference == pytest.approx(0.0, abs=1e-12)  # path contains K
    with pytest.raises(ValueError, match="n_bands and energy"):
        band_structure(ham, npoints=5, method="sparse")


def test_non_carbon_rejected():
    with pytest.raises(ValueError, match="carbon"):
        graphene_nn(Atoms("BN", positions=[[0, 0, 0], [1.4, 0, 0]], cell=[2.5, 2.5, 20], pbc=(1, 1, 0)))


def test_plot_with_dos_panel(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from wander.tb import density_of_states
    from wander.tb.plotting import plot_band_structure

    ham = graphene_nn(graphene())
    bs = band_structure(ham, "GMKG", 30, fermi_level=0.0)
    dos = density_of_states(ham, (30, 30, 1), width=0.1, npts=400)
    fig = plot_band_structure(bs, dos=dos, emin=-3, emax=3)
    band_ax, dos_ax = fig.axes
    assert [t.get_text() for t in band_ax.get_xticklabels()] == ["Γ", "M", "K", "Γ"]
    assert band_ax.get_ylim() == (-3, 3) and "E - E_F" in band_ax.get_ylabel()
    assert "DOS" in dos_ax.get_xlabel()
    fig.savefig(tmp_path / "p.png")
