"""Commensurate twisted bilayers: counts, angles, lattices, registry, strain, errors."""

from math import gcd

import numpy as np
import pytest
from matscipy.neighbours import neighbour_list as neighbor_list

from wander.structures import (
    commensurate_angles,
    graphene,
    hbn,
    layer_planes,
    monolayer,
    mx2,
    twist_angle,
    twisted_bilayer,
)

A_G = 2.46


def rot(deg):
    t = np.radians(deg)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def primitive(a):
    return np.array([[a, 0.0], [a / 2, a * np.sqrt(3) / 2]])


def theory_tbg_atoms(i):
    return 4 * (3 * i * i + 3 * i + 1)


def theory_tbg_angle(i):
    return np.degrees(np.arccos((3 * i * i + 3 * i + 0.5) / (3 * i * i + 3 * i + 1)))


def assert_integer(x, atol=1e-6):
    x = np.asarray(x)
    assert np.abs(x - np.round(x)).max() < atol


def assert_perfect_layer(atoms, layer, vectors, origin, basis_frac, basis_symbols, atol=1e-6):
    """Every atom of ``layer`` is origin + (integer + basis) @ vectors with the right species."""
    sel = atoms.arrays["layer"] == layer
    xy = atoms.positions[sel, :2] - origin
    u = np.linalg.solve(vectors.T, xy.T).T  # (n, 2)
    resid = u[:, None, :] - np.asarray(basis_frac)[None, :, :]
    on_site = np.abs(resid - np.round(resid)).max(axis=-1) < atol  # (n, n_basis)
    sym = np.array(atoms.get_chemical_symbols())[sel]
    match = on_site & (sym[:, None] == np.asarray(basis_symbols)[None, :])
    assert match.any(axis=1).all(), "atom off the expected lattice"
    # every basis site is populated equally (sites sharing an in-plane position, e.g. the
    # two chalcogens of 2H-MX2, are counted once per atom stacked there)
    b = np.asarray(basis_frac, dtype=float)
    db = b[:, None, :] - b[None, :, :]
    multiplicity = (np.abs(db - np.round(db)).max(axis=-1) < atol).sum(axis=1)
    assert np.all(on_site.sum(axis=0) == sel.sum() * multiplicity // len(b))


def inplane_nearest(atoms, point, layer):
    """In-plane distances (sorted) from ``point`` to atoms of ``layer`` (minimum image)."""
    cell = atoms.cell.array[:2, :2]
    sel = atoms.arrays["layer"] == layer
    d = atoms.positions[sel, :2] - point
    frac = np.linalg.solve(cell.T, d.T).T
    d = (frac - np.round(frac)) @ cell
    return np.sort(np.linalg.norm(d, axis=1)), np.array(atoms.get_chemical_symbols())[sel][
        np.argsort(np.linalg.norm(d, axis=1))
    ]


@pytest.mark.parametrize("i", [1, 2, 3, 5, 10, 31])
def test_tbg_counts_and_angles_match_theory(i):
    atoms = twisted_bilayer("graphene", m=i, n=i + 1)
    assert len(atoms) == theory_tbg_atoms(i)
    assert np.bincount(atoms.arrays["layer"]).tolist() == [len(atoms) // 2] * 2
    assert atoms.info["angle"] == pytest.approx(theory_tbg_angle(i), abs=1e-10)
    assert twist_angle(i, i + 1) == pytest.approx(theory_tbg_angle(i), abs=1e-10)
    # cell area agrees with the count: one primitive cell (2 atoms per layer) per atom pair
    area = abs(np.linalg.det(atoms.cell.array[:2, :2]))
    assert area / (A_G**2 * np.sqrt(3) / 2) == pytest.approx(len(atoms) / 4)


def test_landmark_cells():
    assert len(twisted_bilayer("graphene", m=1, n=2)) == 28
    tbg = twisted_bilayer("graphene", angle=1.05)
    assert len(tbg) == 11908 and (tbg.info["m"], tbg.info["n"]) == (31, 32)
    assert tbg.info["angle"] == pytest.approx(1.0501, abs=1e-4)
    assert twisted_bilayer("graphene", angle=21.79).info["angle"] == pytest.approx(21.7868, abs=1e-4)


def shortest_common_vector(atoms):
    """Brute force: shortest non-zero bottom-lattice vector that is also a top-lattice vector."""
    theta = atoms.info["angle"]
    pb = primitive(A_G)
    pt = (rot(theta) @ pb.T).T
    limit = np.linalg.norm(atoms.cell.array[0, :2]) + 1e-6
    r = int(limit / A_G * 2) + 2
    ij = np.array([(i, j) for i in range(-r, r + 1) for j in range(-r, r + 1) if (i, j) != (0, 0)])
    v = ij @ pb
    v = v[np.linalg.norm(v, axis=1) <= limit]
    in_top = np.abs(np.linalg.solve(pt.T, v.T).T - np.round(np.linalg.solve(pt.T, v.T).T)).max(axis=1) < 1e-8
    return np.linalg.norm(v[in_top], axis=1).min()


@pytest.mark.parametrize("m,n", [(1, 2), (1, 4), (2, 5), (1, 3), (4, 7), (3, 5), (5, 8), (2, 3)])
def test_general_mn_is_primitive_coincidence_cell(m, n):
    """The cell is the smallest common lattice of both layers, incl. the (n - m) % 3 == 0 case."""
    atoms = twisted_bilayer("graphene", m=m, n=n)
    big = m * m + m * n + n * n
    expected = 4 * (big // 3 if (n - m) % 3 == 0 else big)
    assert len(atoms) == expected
    cell = atoms.cell.array[:2, :2]
    # both cell vectors are equal-length, 60 degrees apart, and the shortest common vector
    assert np.linalg.norm(cell[0]) == pytest.approx(np.linalg.norm(cell[1]))
    assert cell[0] @ cell[1] == pytest.approx(0.5 * np.linalg.norm(cell[0]) ** 2)
    assert np.linalg.norm(cell[0]) == pytest.approx(shortest_common_vector(atoms))


@pytest.mark.parametrize("m,n", [(1, 2), (2, 5), (6, 7)])
def test_cell_vectors_are_lattice_vectors_of_both_layers(m, n):
    atoms = twisted_bilayer("graphene", m=m, n=n)
    cell = atoms.cell.array[:2, :2]
    pb = primitive(A_G)
    pt = (rot(atoms.info["angle"]) @ pb.T).T
    assert_integer(np.linalg.solve(pb.T, cell.T).T, atol=1e-9)
    assert_integer(np.linalg.solve(pt.T, cell.T).T, atol=1e-9)


@pytest.mark.parametrize(
    "stacking,center,shift",
    [("AA", "atom", 0.0), ("AB", "atom", 1 / 3), ("AA", "hexagon", 0.0), ("BA", (0.1, 0.3), 2 / 3)],
)
def test_layers_are_perfect_rotated_lattices(stacking, center, shift):
    atoms = twisted_bilayer("graphene", m=4, n=5, stacking=stacking, center=center)
    theta = atoms.info["angle"]
    pb = primitive(A_G)
    pt = (rot(theta) @ pb.T).T
    fc = np.array({"atom": (0, 0), "hexagon": (2 / 3, 2 / 3)}.get(center, center), dtype=float)
    c = fc @ pb
    basis = np.array([[0, 0], [1 / 3, 1 / 3]])
    assert_perfect_layer(atoms, 0, pb, np.zeros(2), basis, ["C", "C"])
    # top: untwisted stacked layer (basis + shift) rotated about c
    assert_perfect_layer(atoms, 1, pt, c - fc @ pt, basis + shift, ["C", "C"])


@pytest.mark.parametrize("i", [1, 4, 12])
def test_no_overlaps_and_intralayer_coordination(i):
    atoms = twisted_bilayer("graphene", m=i, n=i + 1)
    ii, jj, d = neighbor_list("ijd", atoms, 1.6)
    assert d.min() == pytest.approx(A_G / np.sqrt(3))  # > 1.3 A: no duplicated atoms anywhere
    same = atoms.arrays["layer"][ii] == atoms.arrays["layer"][jj]
    assert np.all(same)  # layers 3.35 A apart: no interlayer pair below 1.6 A
    assert np.all(np.bincount(ii, minlength=len(atoms)) == 3)  # every C three-fold coordinated
    planes = layer_planes(atoms)
    assert planes[1] - planes[0] == pytest.approx(3.35)
    z = atoms.positions[:, 2]
    assert abs(z.min() + z.max()) < 1e-9
    assert atoms.cell[2, 2] == pytest.approx(20.0 + 3.35)


def test_registry_at_rotation_centre():
    a0 = A_G / np.sqrt(3)
    # AA about an atom: atoms on the axis in both layers
    aa = twisted_bilayer("graphene", m=10, n=11, stacking="AA", center="atom")
    for layer in (0, 1):
        assert inplane_nearest(aa, np.zeros(2), layer)[0][0] == pytest.approx(0, abs=1e-9)
    # AB about the bottom A atom: the top layer has a hexagon centre on the axis
    ab = twisted_bilayer("graphene", m=10, n=11, stacking="AB", center="atom")
    assert inplane_nearest(ab, np.zeros(2), 0)[0][0] == pytest.approx(0, abs=1e-9)
    d_top = inplane_nearest(ab, np.zeros(2), 1)[0]
    assert np.allclose(d_top[:6], a0) and d_top[6] > a0 + 0.1
    # AA about a hexagon centre: six atoms of each layer around the empty axis
    hx = twisted_bilayer("graphene", m=10, n=11, stacking="AA", center="hexagon")
    c = np.array([2 / 3, 2 / 3]) @ primitive(A_G)
    for layer in (0, 1):
        d = inplane_nearest(hx, c, layer)[0]
        assert np.allclose(d[:6], a0) and d[6] > a0 + 0.1


def test_twisted_hbn_aa_prime_b_over_n():
    i = 8
    atoms = twisted_bilayer("hbn", m=i, n=i + 1, stacking="AA'", center=(1 / 6, 1 / 6))
    assert len(atoms) == theory_tbg_atoms(i)
    assert sorted(set(atoms.get_chemical_symbols())) == ["B", "N"]
    for layer in (0, 1):
        sym = np.array(atoms.get_chemical_symbols())[atoms.arrays["layer"] == layer]
        assert (sym == "B").sum() == (sym == "N").sum() == len(atoms) // 4
    # near the rotation axis (bond centre) top B sits over bottom N and top N over bottom B
    c = np.array([1 / 6, 1 / 6]) @ primitive(2.504)
    top = np.where(atoms.arrays["layer"] == 1)[0]
    near = top[np.linalg.norm(atoms.positions[top, :2] - c, axis=1) < 2.0]
    assert len(near) >= 2
    for k in near:
        d, sym = inplane_nearest(atoms, atoms.positions[k, :2], 0)
        assert d[0] < 0.15
        assert sym[0] != atoms.get_chemical_symbols()[k]


@pytest.mark.parametrize("i", [1, 3])
def test_twisted_mos2(i):
    atoms = twisted_bilayer("mos2", m=i, n=i + 1, stacking="AA'")
    assert len(atoms) == 6 * (3 * i * i + 3 * i + 1)
    sym = np.array(atoms.get_chemical_symbols())
    assert (sym == "S").sum() == 2 * (sym == "Mo").sum()
    mo = atoms.positions[sym == "Mo"]
    mo_layer = atoms.arrays["layer"][sym == "Mo"]
    assert mo[mo_layer == 1, 2].mean() - mo[mo_layer == 0, 2].mean() == pytest.approx(6.15)
    i_, j_, d = neighbor_list("ijd", atoms, 2.5)
    assert d.min() > 2.3  # Mo-S bonds only, no overlaps
    a = 3.19
    pt = (rot(atoms.info["angle"]) @ primitive(a).T).T
    basis = 1 / 3 - np.array([[0, 0], [1 / 3, 1 / 3], [1 / 3, 1 / 3]])  # AA': 180-degree rotated
    assert_perfect_layer(atoms, 1, pt, np.zeros(2), basis, ["Mo", "S", "S"])


def test_commensurate_angles_table():
    cells = commensurate_angles("graphene", max_atoms=12000)
    angles = [c.angle for c in cells]
    assert angles == sorted(angles)
    assert all(c.n_atoms <= 12000 for c in cells)
    lookup = {(c.m, c.n): c for c in cells}
    assert lookup[(1, 2)].n_atoms == 28 and lookup[(31, 32)].n_atoms == 11908
    for i in range(1, 32):
        assert lookup[(i, i + 1)].angle == pytest.approx(theory_tbg_angle(i))
    assert all(gcd(c.m, c.n) == 1 and 0 < c.m < c.n for c in cells)
    for c in cells[-5:] + cells[:3]:  # records describe what twisted_bilayer builds
        atoms = twisted_bilayer("graphene", m=c.m, n=c.n)
        assert len(atoms) == c.n_atoms and atoms.info["angle"] == pytest.approx(c.angle)
    window = commensurate_angles(max_atoms=12000, min_angle=5, max_angle=10)
    assert window and all(5 <= c.angle <= 10 for c in window)
    mos2 = commensurate_angles(mx2("MoS2"), max_atoms=200)
    assert {(c.m, c.n): c.n_atoms for c in mos2}[(1, 2)] == 42
    assert commensurate_angles(hbn(), max_atoms=30)[0].n_atoms == 28


def test_angle_selection_and_errors():
    pos = twisted_bilayer("graphene", angle=9.43)
    neg = twisted_bilayer("graphene", angle=-9.43)
    assert (pos.info["m"], pos.info["n"]) == (3, 4) and (neg.info["m"], neg.info["n"]) == (4, 3)
    assert neg.info["angle"] == pytest.approx(-pos.info["angle"])
    with pytest.raises(ValueError, match="no commensurate angle"):
        twisted_bilayer("graphene", angle=1.05, max_atoms=5000)
    with pytest.raises(ValueError, match="no commensurate angle"):
        twisted_bilayer("graphene", angle=1.05, angle_tol=1e-9)
    bad = [
        dict(angle=1.0, m=1, n=2),
        dict(m=1),
        dict(),
        dict(m=2, n=4),  # not coprime
        dict(m=3, n=3),  # untwisted
        dict(m=-1, n=2),
        dict(m=1, n=2, stacking="ABC"),
        dict(m=1, n=2, center="bridge"),
        dict(angle=0.0),
        dict(angle=75.0),
        dict(m=1, n=2, distance=0.5, top=mx2("MoS2", a=2.46)),
    ]
    for kw in bad:
        with pytest.raises(ValueError):
            twisted_bilayer("graphene", **kw)
    with pytest.raises(ValueError, match="primitive"):
        twisted_bilayer(graphene().repeat((2, 2, 1)), m=1, n=2)


def test_hetero_graphene_hbn_strain():
    atoms = twisted_bilayer("graphene", angle=0.0, top="hbn", max_strain=0.001)
    info = atoms.info
    assert abs(info["strain"]) <= 0.001 and info["angle"] == pytest.approx(0.0, abs=0.01)
    # reported strain is what the top layer carries: B-N bond = a_hBN (1 + strain) / sqrt(3)
    i, j, d = neighbor_list("ijd", atoms, 1.6)
    top = atoms.arrays["layer"][i] == 1
    assert np.allclose(d[top], 2.504 * (1 + info["strain"]) / np.sqrt(3))
    assert np.allclose(d[~top], A_G / np.sqrt(3))
    nb = info["m"] ** 2 + info["m"] * info["n"] + info["n"] ** 2
    nt = info["m_top"] ** 2 + info["m_top"] * info["n_top"] + info["n_top"] ** 2
    assert len(atoms) == 2 * nb + 2 * nt
    assert info["strain"] == pytest.approx(np.sqrt(nb / nt) * A_G / 2.504 - 1)
    sym = np.array(atoms.get_chemical_symbols())
    assert (sym[atoms.arrays["layer"] == 1] == "B").sum() == nt
    # top layer is a perfect rotated, strained hBN lattice
    pt = (rot(info["angle"]) @ primitive(2.504 * (1 + info["strain"])).T).T
    assert_perfect_layer(atoms, 1, pt, np.zeros(2), [[0, 0], [1 / 3, 1 / 3]], ["B", "N"])
    assert_integer(np.linalg.solve(pt.T, atoms.cell.array[:2, :2].T), atol=1e-8)
    # loose tolerance: the 1x1 cell with the full 1.8 % mismatch
    small = twisted_bilayer("graphene", angle=0.0, top="hbn", max_strain=0.02)
    assert len(small) == 4 and small.info["strain"] == pytest.approx(A_G / 2.504 - 1)


def test_hetero_twisted_and_refusals():
    atoms = twisted_bilayer("mos2", angle=2.0, top="mose2", max_strain=0.002, angle_tol=0.05)
    assert abs(atoms.info["angle"] - 2.0) <= 0.05 and abs(atoms.info["strain"]) <= 0.002
    assert sorted(set(atoms.get_chemical_symbols())) == ["Mo", "S", "Se"]
    assert (np.array(atoms.get_chemical_symbols())[atoms.arrays["layer"] == 1] == "S").sum() == 0
    assert neighbor_list("d", atoms, 2.3).size == 0
    # explicit vectors: strain above max_strain is refused, below it is built and reported
    with pytest.raises(ValueError, match="max_strain"):
        twisted_bilayer("graphene", m=1, n=0, top="hbn", top_mn=(1, 0), max_strain=0.01)
    ok = twisted_bilayer("graphene", m=1, n=0, top="hbn", top_mn=(1, 0), max_strain=0.02)
    assert ok.info["strain"] == pytest.approx(A_G / 2.504 - 1)
    with pytest.raises(ValueError, match="top_mn"):
        twisted_bilayer("graphene", m=1, n=0, top="hbn")
    # rotation about the hollow site: that point of both lattices stays on the axis
    hx = twisted_bilayer("graphene", angle=1.0, top="hbn", center="hexagon", stacking="AB")
    info = hx.info
    fc = np.array([2 / 3, 2 / 3])
    pt = (rot(info["angle"]) @ primitive(2.504 * (1 + info["strain"])).T).T
    basis = np.array([[0, 0], [1 / 3, 1 / 3]]) + 1 / 3  # AB start
    assert_perfect_layer(hx, 1, pt, fc @ primitive(A_G) - fc @ pt, basis, ["B", "N"])
    assert abs(info["angle"] - 1.0) <= 0.01 and abs(info["strain"]) <= 0.001
    with pytest.raises(ValueError, match="no coincidence cell"):
        twisted_bilayer("mos2", angle=0.0, top="ws2", max_strain=1e-4, max_atoms=20000)


def test_hundred_thousand_atoms_exact():
    i = 91
    atoms = twisted_bilayer(monolayer("graphene"), m=i, n=i + 1)
    assert len(atoms) == theory_tbg_atoms(i) == 100468
    layer = atoms.arrays["layer"]
    assert np.bincount(layer).tolist() == [50234, 50234]
    # no duplicated sites: distinct wrapped fractional positions in each layer
    frac = atoms.get_scaled_positions(wrap=False)[:, :2]
    assert frac.min() >= 0 and frac.max() < 1
    for k in (0, 1):
        key = np.round(frac[layer == k] * 4 * 10**5).astype(np.int64)
        assert len(np.unique(key, axis=0)) == (layer == k).sum()
    # every atom three-fold coordinated within its layer at the C-C bond length, none closer
    i_, j_, d = neighbor_list("ijd", atoms, 1.6)
    assert np.bincount(i_, minlength=len(atoms)).min() == 3 == np.bincount(i_).max()
    assert np.allclose(d, A_G / np.sqrt(3)) and np.all(layer[i_] == layer[j_])
    # every bottom atom on the lattice
    assert_perfect_layer(atoms, 0, primitive(A_G), np.zeros(2), [[0, 0], [1 / 3, 1 / 3]], ["C", "C"])
