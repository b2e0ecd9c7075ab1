"""Moire maps: interlayer distance, displacement field, stacking registry, LDOS at an energy."""

from __future__ import annotations

import numpy as np
import pytest

from wander.moire.ldos import ldos_at_energy, ldos_map, state_density_map
from wander.moire.maps import displacement_field, interlayer_distance_map, stacking_registry
from wander.structures import bilayer, twisted_bilayer
from wander.tb import band_windows, bandpath_2d, density_of_states, moon_koshino


@pytest.fixture(scope="module")
def tbg6():
    """6.01 degree twisted bilayer graphene, 364 atoms, AA at the origin."""
    return twisted_bilayer("graphene", m=5, n=6, stacking="AA", center="atom")


def _frac(xy: np.ndarray, cell2: np.ndarray) -> np.ndarray:
    return np.linalg.solve(cell2.T, xy.T).T


def test_interlayer_distance_of_rigid_tbg_is_flat(tbg6):
    m = interlayer_distance_map(tbg6)
    np.testing.assert_allclose(m.values, 3.35, atol=1e-10)
    assert m.values.shape == (len(tbg6),)


def test_interlayer_distance_recovers_corrugation(tbg6):
    """Layers rippled with the moire period: d(r) = d0 + 2 A cos(G.r) is recovered at every atom."""
    atoms = tbg6.copy()
    cell2 = np.array(atoms.cell)[:2, :2]
    g = 2 * np.pi * np.linalg.inv(cell2).T[0]                # first moire reciprocal vector
    amp = 0.15
    layer = atoms.arrays["layer"]
    phase = np.cos(atoms.positions[:, :2] @ g)
    atoms.positions[:, 2] += np.where(layer == 1, amp, -amp) * phase
    m = interlayer_distance_map(atoms)
    expected = 3.35 + 2 * amp * np.cos(m.xy @ g)
    sigma = 1.42
    damping = np.exp(-0.5 * sigma ** 2 * g @ g)                # Gaussian smoothing of the ripple
    np.testing.assert_allclose(m.values, 3.35 + (expected - 3.35) * damping, atol=3e-3)  # 1 % of 2A
    assert m.values.max() - m.values.min() > 3.5 * amp         # the ripple is resolved, not averaged away


def test_displacement_field_recovers_imposed_rotation_and_ignores_affine_strain(tbg6):
    relaxed = tbg6.copy()
    top = relaxed.arrays["layer"] == 1
    centre = relaxed.positions[top, :2].mean(0)
    d = np.radians(0.3)
    rot = np.array([[np.cos(d), -np.sin(d)], [np.sin(d), np.cos(d)]])
    xy = relaxed.positions[top, :2] - centre
    relaxed.positions[top, :2] = xy @ rot.T + centre
    relaxed.positions[:, 2] += np.where(top, 0.05, -0.02)     # rigid layer shifts along z
    m = displacement_field(tbg6, relaxed)
    expected = np.zeros((len(tbg6), 3))
    expected[top, :2] = xy @ rot.T - xy
    expected[top] -= expected[top].mean(0)
    np.testing.assert_allclose(m.values, expected, atol=1e-10)
    assert np.linalg.norm(m.values[top, :2], axis=1).max() > 0.05
    # a homogeneous in-plane strain of cell and atoms is not a moire displacement
    strained = tbg6.copy()
    strained.set_cell(np.array(strained.cell) * [[1.01], [1.01], [1.0]], scale_atoms=True)
    np.testing.assert_allclose(displacement_field(tbg6, strained).values, 0.0, atol=1e-10)
    with pytest.raises(ValueError, match="same atoms"):
        displacement_field(tbg6, tbg6[:-1])


@pytest.mark.parametrize("material", ["graphene", "hbn", "mos2"])
@pytest.mark.parametrize("stacking", ["AA", "AB", "BA"])
def test_registry_of_untwisted_bilayers(material, stacking):
    reg = stacking_registry(bilayer(material, stacking=stacking).repeat((3, 3, 1)))
    assert set(reg.extra["label"]) == {stacking}


def test_registry_finds_aa_at_rotation_centre_and_ab_ba_domains(tbg6):
    reg = stacking_registry(tbg6)
    labels = reg.extra["label"]
    frac = _frac(reg.xy, reg.cell2)
    at_origin = np.linalg.norm(reg.xy, axis=1) < 1e-6
    assert at_origin.sum() == 1 and labels[at_origin][0] == "AA"
    counts = {k: int((labels == k).sum()) for k in ("AA", "AB", "BA", "SP")}
    assert min(counts.values()) > 5
    # AB and BA domains centre on the triangles at (1/3, 1/3) and (2/3, 2/3) of the moire cell
    np.testing.assert_allclose(np.median(frac[labels == "AB"], axis=0), [1 / 3, 1 / 3], atol=0.03)
    np.testing.assert_allclose(np.median(frac[labels == "BA"], axis=0), [2 / 3, 2 / 3], atol=0.03)
    assert counts["AB"] == counts["BA"]
    # the hexagon-centred twist puts the origin in an AB-like (not AA) region
    hexa = stacking_registry(twisted_bilayer("graphene", m=5, n=6, center="hexagon"))
    near = np.linalg.norm(hexa.xy, axis=1) < 2.0
    assert "AA" not in set(hexa.extra["label"][near])


def test_maps_need_layers_and_2d():
    atoms = bilayer("graphene", stacking="AB")
    del atoms.arrays["layer"]
    with pytest.raises(ValueError, match="layer"):
        interlayer_distance_map(atoms)
    bulk = bilayer("graphene", stacking="AB")
    bulk.pbc = True
    with pytest.raises(ValueError, match="2D"):
        stacking_registry(bulk)


def test_ldos_integrates_to_one_per_orbital_and_sums_to_dos():
    atoms = twisted_bilayer("graphene", m=1, n=2)             # 21.79 deg, 28 atoms
    ham = moon_koshino(atoms)
    width, kgrid = 0.15, (2, 2, 1)
    energies = np.linspace(-13.0, 8.5, 431)                     # spectrum: -11.7 .. 6.9 eV
    rho = ldos_at_energy(ham, energies, width=width, kgrid=kgrid)   # (nE, n_orb)
    de = energies[1] - energies[0]
    np.testing.assert_allclose(rho.sum(0) * de, 1.0, atol=1e-6)                           # every orbital
    dos = density_of_states(ham, kgrid, width=width, emin=energies[0], emax=energies[-1], npts=len(energies))
    np.testing.assert_allclose(rho.sum(1), dos.get_weights(), rtol=1e-8, atol=1e-10)
    m = ldos_map(ham, atoms, 1.0, width=width, kgrid=kgrid)
    np.testing.assert_allclose(m.values, np.bincount(ham.orbital_atoms, weights=m.extra["orbital_ldos"]))


def test_ldos_kpm_agrees_with_exact():
    atoms = twisted_bilayer("graphene", m=1, n=2)
    ham = moon_koshino(atoms)
    from wander.tb.kpm import jackson_width, spectral_bounds

    n_mom_width = 0.25
    energy = -2.5                                              # inside the pi band
    lo, hi = spectral_bounds(ham.hk(np.zeros(3)))
    a, b = 0.5 * (hi - lo), 0.5 * (hi + lo)
    kpm = ldos_at_energy(ham, energy, width=n_mom_width, method="kpm", n_vectors=600, seed=1)
    sigma = float(jackson_width(int(np.ceil(np.pi * a / n_mom_width)), a, (energy - b) / a))
    exact = ldos_at_energy(ham, energy, width=sigma)
    assert exact.sum() > 1.0
    assert kpm.sum() == pytest.approx(exact.sum(), rel=0.05)
    np.testing.assert_allclose(kpm, exact, atol=0.2 * exact.max())
    grid = ldos_at_energy(ham, np.array([energy, energy + 1.0]), width=n_mom_width, method="kpm", n_vectors=600, seed=1)
    np.testing.assert_allclose(grid[0], kpm)                   # same seed, same vectors: identical
    with pytest.raises(ValueError, match="spectrum"):
        ldos_at_energy(ham, 50.0, method="kpm")


def test_flat_band_ldos_is_largest_in_aa_regions():
    """7.34 deg TBG with the interlayer coupling scaled to the magic ratio (x5.5): the flat bands sit
    in the AA regions, so the LDOS at the flat-band centre is several times larger there."""
    atoms = twisted_bilayer("graphene", m=4, n=5)             # 244 atoms
    ham = moon_koshino(atoms, v0_sigma=0.48 * 5.5)
    n = ham.n_orbitals
    ks = np.array([[0, 0, 0], [0.5, 0, 0], [1 / 3, 2 / 3, 0]])
    e = np.array([np.linalg.eigvalsh(ham.hk(k).toarray()) for k in ks])
    flat = e[:, n // 2 - 2:n // 2 + 2]
    centre, width = flat.mean(), flat.max() - flat.min()
    assert width < 0.4                                         # flat compared with the eV scale of the pi bands
    m = ldos_map(ham, atoms, centre, width=width / 2, kgrid=(2, 2, 1))
    reg = stacking_registry(atoms)
    labels, sampled = reg.extra["label"], reg.extra["atoms"]
    mean = {k: m.values[sampled[labels == k]].mean() for k in ("AA", "AB", "BA", "SP")}
    assert mean["AA"] > 3 * max(mean["AB"], mean["BA"])
    assert mean["AA"] > 1.5 * mean["SP"]
    corners = np.array([[0, 0], [1, 0], [0, 1], [1, 1]]) @ m.cell2     # AA sites of the moire lattice
    peak = m.xy[m.values.argmax()]
    assert np.linalg.norm(corners - peak, axis=1).min() < 5.0


def test_flat_band_density_on_a_path_is_largest_in_aa_regions():
    """The same magic-ratio 7.34 deg cell: the four flat bands' |psi|^2 averaged over the k-points of
    the moire path (what ``wander run`` maps) is several times the cell mean in AA regions; the
    unnormalised map sums to the number of bands, and a band of uniform weight maps to 1."""
    atoms = twisted_bilayer("graphene", m=4, n=5)
    ham = moon_koshino(atoms, v0_sigma=0.48 * 5.5)
    n = ham.n_orbitals
    kpts = bandpath_2d(ham.cell, None, 12).kpts
    win = band_windows(ham, kpts, n_bands=4, first_band=n // 2 - 2, method="dense", densities=True)
    m = state_density_map(win.densities, ham.orbital_atoms, atoms)
    assert m.values.mean() == pytest.approx(1.0)
    assert m.extra["states_per_atom"].sum() == pytest.approx(4.0, rel=1e-5)
    reg = stacking_registry(atoms)
    labels, sampled = reg.extra["label"], reg.extra["atoms"]
    mean = {k: m.values[sampled[labels == k]].mean() for k in ("AA", "AB", "BA", "SP")}
    assert mean["AA"] > 3 * max(mean["AB"], mean["BA"])
    assert mean["AA"] > 1.5
    uniform = np.full((2, 1, n), 1.0 / n)
    np.testing.assert_allclose(state_density_map(uniform, ham.orbital_atoms, atoms).values, 1.0)
    with pytest.raises(ValueError, match="orbital owners"):
        state_density_map(uniform[:, :, :-1], ham.orbital_atoms, atoms)
