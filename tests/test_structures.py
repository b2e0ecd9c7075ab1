"""Monolayer and untwisted-bilayer builders: geometry, registry, conventions, errors."""

import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from wander.structures import (
    MATERIALS,
    bilayer,
    graphene,
    hbn,
    layer_planes,
    monolayer,
    mx2,
)


def inplane_distances(atoms, src, dst):
    """Minimum-image in-plane distances, shape (len(src), len(dst))."""
    cell = atoms.cell.array[:2, :2]
    d = atoms.positions[dst][None, :, :2] - atoms.positions[src][:, None, :2]
    shifts = np.array([[i, j] for i in (-1, 0, 1) for j in (-1, 0, 1)]) @ cell
    frac = np.linalg.solve(cell.T, d.reshape(-1, 2).T).T
    d = (frac - np.round(frac)) @ cell
    return np.linalg.norm(d[:, None, :] + shifts[None], axis=-1).min(axis=1).reshape(len(src), len(dst))


def check_conventions(atoms, vacuum):
    assert tuple(atoms.pbc) == (True, True, False)
    cell = atoms.cell.array
    assert np.allclose(cell[:2, 2], 0) and np.allclose(cell[2, :2], 0)
    z = atoms.positions[:, 2]
    assert abs(z.min() + z.max()) < 1e-9  # slab centred at z = 0
    assert cell[2, 2] == pytest.approx(vacuum + np.ptp(z))
    assert atoms.arrays["layer"].dtype.kind == "i"


@pytest.mark.parametrize("build,a,bond", [(graphene, 2.46, "CC"), (hbn, 2.504, "BN")])
def test_honeycomb_monolayers(build, a, bond):
    atoms = build(vacuum=15.0)
    check_conventions(atoms, 15.0)
    cell = atoms.cell.array
    assert np.allclose(cell[0], [a, 0, 0]) and np.allclose(cell[1], [a / 2, a * np.sqrt(3) / 2, 0])
    assert "".join(atoms.get_chemical_symbols()) == ("CC" if bond == "CC" else "BN")
    assert np.all(atoms.arrays["layer"] == 0)
    i, j, d = neighbor_list("ijd", atoms, 1.1 * a / np.sqrt(3))
    assert np.bincount(i, minlength=2).tolist() == [3, 3]  # threefold coordination
    assert np.allclose(d, a / np.sqrt(3))
    if bond == "BN":
        assert np.all(atoms.numbers[i] != atoms.numbers[j])  # B bonds only to N
    # an atom sits at the origin (the default twist centre)
    assert np.allclose(atoms.positions[0], 0)


@pytest.mark.parametrize("kind", ["2H", "1T"])
def test_mx2_geometry(kind):
    a, t = 3.19, 3.13
    atoms = mx2("MoS2", a=a, thickness=t, kind=kind, vacuum=18.0)
    check_conventions(atoms, 18.0)
    assert atoms.get_chemical_symbols() == ["Mo", "S", "S"]
    z = atoms.positions[:, 2]
    assert z[1] - z[2] == pytest.approx(t)  # X-X vertical distance
    assert z[0] == pytest.approx(0.0)
    # six S neighbours of Mo at the trigonal-prismatic / octahedral bond length
    bond = np.hypot(a / np.sqrt(3), t / 2)
    i, j, d = neighbor_list("ijd", atoms, bond + 0.05)
    mo = i == 0
    assert mo.sum() == 6 and np.allclose(d[mo], bond)
    xy = atoms.positions[1:, :2]
    same_column = np.allclose(xy[0], xy[1])
    assert same_column == (kind == "2H")


def test_materials_table_and_defaults():
    assert set(MATERIALS) >= {"graphene", "hbn", "mos2", "ws2", "mose2", "wse2"}
    for name, entry in MATERIALS.items():
        atoms = monolayer(name)
        assert atoms.cell.lengths()[0] == pytest.approx(entry["a"])
        assert np.ptp(atoms.positions[:, 2]) == pytest.approx(entry["thickness"])
        assert entry["distance"] > entry["thickness"] + 2.5
    ws2 = monolayer("WS2")
    assert ws2.get_chemical_symbols() == ["W", "S", "S"]
    nbse2 = monolayer("NbSe2", a=3.45, thickness=3.35)
    assert nbse2.get_chemical_symbols() == ["Nb", "Se", "Se"]


@pytest.mark.parametrize(
    "call",
    [
        lambda: mx2("MoS3"),
        lambda: mx2("Xx2"),
        lambda: mx2("NbSe2"),  # no defaults: a and thickness required
        lambda: mx2("MoS2", kind="3R"),
        lambda: graphene(a=-1.0),
        lambda: hbn(vacuum=0.0),
        lambda: monolayer("silicene"),
    ],
)
def test_monolayer_bad_input(call):
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize("material", ["graphene", "hbn", "mos2"])
@pytest.mark.parametrize("stacking", ["AA", "AB", "BA", "AA'"])
def test_bilayer_distance_layers_and_cell(material, stacking):
    atoms = bilayer(material, stacking=stacking, vacuum=12.0)
    check_conventions(atoms, 12.0)
    mono = monolayer(material)
    layer = atoms.arrays["layer"]
    assert np.bincount(layer).tolist() == [len(mono), len(mono)]
    assert np.all(layer[: len(mono)] == 0)
    planes = layer_planes(atoms)
    assert planes[1] - planes[0] == pytest.approx(MATERIALS[material]["distance"])
    assert np.allclose(atoms.cell.array[:2], mono.cell.array[:2])
    # every layer keeps the monolayer's intralayer geometry
    for k in (0, 1):
        z = atoms.positions[layer == k, 2]
        assert np.ptp(z) == pytest.approx(np.ptp(mono.positions[:, 2]))


def test_mos2_distance_is_metal_metal():
    atoms = bilayer("mos2", stacking="AA'", distance=6.2)
    mo = np.where(atoms.numbers == 42)[0]
    assert abs(np.diff(atoms.positions[mo, 2])[0]) == pytest.approx(6.2)


def test_ab_registry_graphene():
    atoms = bilayer("graphene", stacking="AB")
    bot, top = np.arange(2), np.arange(2, 4)
    d = inplane_distances(atoms, top, bot)
    a = 2.46
    # top A over bottom B; top B over a hexagon centre: six bottom atoms at a/sqrt(3)
    assert d[0].min() == pytest.approx(0.0, abs=1e-9)
    assert d[1].min() == pytest.approx(a / np.sqrt(3))
    big = atoms.repeat((3, 3, 1))
    layer = big.arrays["layer"]
    centre_top = np.where(layer == 1)[0][1 + 2 * 4]  # top B in the middle cell
    dd = inplane_distances(big, [centre_top], np.where(layer == 0)[0])[0]
    assert np.sum(np.isclose(dd, a / np.sqrt(3))) == 6


def test_aa_prime_registry():
    h = bilayer("hbn", stacking="AA'")
    d = inplane_distances(h, [2, 3], [0, 1])
    below = d.argmin(axis=1)
    assert np.allclose(d.min(axis=1), 0, atol=1e-9)
    # B over N and N over B
    assert h.get_chemical_symbols()[2] == "B" and h.get_chemical_symbols()[0 + below[0]] == "N"
    assert h.get_chemical_symbols()[3] == "N" and h.get_chemical_symbols()[below[1]] == "B"
    m = bilayer("mos2", stacking="AA'")
    sym = np.array(m.get_chemical_symbols())
    d = inplane_distances(m, [3], [0, 1, 2])[0]  # top Mo
    assert set(sym[:3][np.isclose(d, 0, atol=1e-9)]) == {"S"}
    # 180-degree rotation: in-plane vector Mo->S reverses in the top layer
    v_bot = (m.positions[1] - m.positions[0])[:2]
    v_top = (m.positions[4] - m.positions[3])[:2]
    frac = np.linalg.solve(m.cell.array[:2, :2].T, v_bot + v_top)
    assert np.allclose(frac, np.round(frac), atol=1e-9)
    assert not np.allclose(np.linalg.solve(m.cell.array[:2, :2].T, v_bot - v_top) % 1, 0)


def test_shift_moves_top_layer_rigidly():
    aa = bilayer("mos2", stacking="AA")
    sh = bilayer("mos2", stacking="AA", shift=(0.1, 0.2))
    disp = sh.positions - aa.positions
    expected = np.array([0.1, 0.2]) @ aa.cell.array[:2, :2]
    frac = np.linalg.solve(aa.cell.array[:2, :2].T, (disp[3:, :2] - expected).T).T
    assert np.allclose(frac, np.round(frac), atol=1e-9)
    assert np.allclose(disp[:3], 0, atol=1e-9)
    assert np.allclose(sh.info["shift"], [0.1, 0.2])
    # AB equals AA shifted by (1/3, 1/3)
    ab = bilayer("mos2", stacking="AB")
    assert np.allclose(bilayer("mos2", stacking="AA", shift=(1 / 3, 1 / 3)).positions, ab.positions)


def test_hetero_bilayer_strain():
    atoms = bilayer("graphene", "hbn", max_strain=0.02)
    assert atoms.info["strain"] == pytest.approx(2.46 / 2.504 - 1)
    # top hBN takes the graphene cell: B-N bond scaled by the strain
    d = np.linalg.norm(atoms.positions[3, :2] - atoms.positions[2, :2])
    assert d == pytest.approx(2.46 / np.sqrt(3))
    assert layer_planes(atoms)[1] - layer_planes(atoms)[0] == pytest.approx(0.5 * (3.35 + 3.33))
    with pytest.raises(ValueError, match="max_strain"):
        bilayer("graphene", "hbn")
    het = bilayer("mos2", "ws2", stacking="AA'", max_strain=0.005)
    assert het.get_chemical_symbols() == ["Mo", "S", "S", "W", "S", "S"]
    assert abs(het.info["strain"]) <= 0.005


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stacking": "ABC"},
        {"shift": (0.1,)},
        {"shift": (0.1, np.nan)},
        {"distance": 2.0},  # MoS2 layers would interpenetrate
        {"vacuum": -1.0},
    ],
)
def test_bilayer_bad_input(kwargs):
    with pytest.raises(ValueError):
        bilayer("mos2", **kwargs)


def test_bilayer_refuses_supercell_for_named_stacking():
    with pytest.raises(ValueError, match="primitive"):
        bilayer(graphene().repeat((2, 2, 1)), stacking="AB")
    # AA stacking of a supercell is well defined
    assert len(bilayer(graphene().repeat((2, 2, 1)), stacking="AA", distance=3.4)) == 16


def test_bilayer_accepts_120_degree_cells():
    from ase.build import graphene as ase_graphene

    g = ase_graphene(a=2.46, vacuum=10.0)  # 120-degree cell, vacuum on both sides, pbc True
    g.pbc = (True, True, False)
    g.cell[2] = [0, 0, 20.0]
    atoms = bilayer(g, stacking="AB", distance=3.35)
    ref = bilayer("graphene", stacking="AB")
    assert np.allclose(atoms.cell.array[:2], ref.cell.array[:2])
    d = inplane_distances(atoms, [2, 3], [0, 1]).min(axis=1)
    d_ref = inplane_distances(ref, [2, 3], [0, 1]).min(axis=1)
    assert np.allclose(np.sort(d), np.sort(d_ref))
