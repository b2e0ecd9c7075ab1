"""Exact symmetries of the Hamiltonian heads.

Rotations / reflections of full s, p, d shells, the reduced symmetry of pz-only blocks, Hermiticity of
H(k), permutation and translation invariance, smoothness at r_near and r_cut, descriptor modes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from scipy.spatial.transform import Rotation

pytest.importorskip("e3nn")
from e3nn import o3  # noqa: E402

from fixtures.ff.helpers import one_thread  # noqa: E402, F401  (autouse fixture)
from wander.data.neighbors import neighbor_list  # noqa: E402
from wander.nn.hamiltonian import HamiltonianHeads, HeadsConfig, hamiltonian_pairs, wigner_w90  # noqa: E402
from wander.nn.hamiltonian.assemble import hoppings_from_blocks, predict_blocks, species_of  # noqa: E402
from wander.nn.hamiltonian.categories import half_stored  # noqa: E402
from wander.nn.hamiltonian.features import cutoff_envelope  # noqa: E402
from wander.structures import bilayer  # noqa: E402

TOL = 1e-12          # float64 round-off of exact symmetries (blocks are O(1) eV)
SPD = {"Li": "s", "C": "p", "Mo": "d"}
TYPE_MAP = ("Li", "C", "Mo")
SMALL = dict(density_channels=3, tp_channels=3, n_rbf=6, hidden=(12,), seed=1)


# ---------------------------------------------------------------------------- helpers
def descriptor(atoms: Atoms, type_map, r: float = 4.0) -> torch.Tensor:
    """Invariant stand-in for the se_e2_a descriptor: smooth radial counts per neighbour species."""
    nl = neighbor_list(atoms, r)
    dist = torch.as_tensor(np.linalg.norm(nl.vectors(atoms.positions, atoms.cell), axis=1))
    z = torch.as_tensor(species_of(atoms, type_map))
    feats = torch.stack([torch.exp(-(dist / w) ** 2) for w in (1.0, 1.7, 2.5)], 1)
    feats = feats * cutoff_envelope(dist, r)[:, None]
    out = torch.zeros(len(atoms), len(type_map), 3, dtype=torch.float64)
    out.index_put_((torch.as_tensor(nl.i), z[torch.as_tensor(nl.j)]), feats, accumulate=True)
    return out.reshape(len(atoms), -1)


def directed_blocks(model: HamiltonianHeads, atoms: Atoms, desc_r: float = 4.0):
    """Blocks of every directed pair (both (i, j, R) and (j, i, -R)) within r_cut, plus onsite.

    ``desc_r``: cutoff of the invariant stand-in descriptor."""
    cfg = model.config
    nl = neighbor_list(atoms, cfg.r_cut)
    n = len(atoms)
    i = np.concatenate([np.arange(n), nl.i])
    j = np.concatenate([np.arange(n), nl.j])
    R = np.concatenate([np.zeros((n, 3), int), nl.shift])
    vec = atoms.positions[j] - atoms.positions[i] + R @ atoms.cell.array
    env = neighbor_list(atoms, cfg.r_env)
    layer = torch.as_tensor(atoms.arrays["layer"]) if cfg.layered else None
    with torch.no_grad():
        h = model(descriptor(atoms, model.type_map, desc_r), torch.as_tensor(species_of(atoms, model.type_map)),
                  torch.as_tensor(env.vectors(atoms.positions, atoms.cell)), torch.as_tensor(np.stack([env.i, env.j])),
                  torch.as_tensor(np.stack([i, j])), torch.as_tensor(vec), layer)
    return i, j, R, h.numpy()


def w90_rotation_from_functions(l: int, q: np.ndarray) -> np.ndarray:
    """D with w(Q r) = D w(r), fitted on the Wannier90 real harmonics written out in Cartesian form."""
    v = np.random.default_rng(0).normal(size=(64, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)

    def w(u):
        x, y, z = u.T
        return {0: np.ones((len(u), 1)), 1: np.stack([z, x, y], 1),
                2: np.stack([(3 * z**2 - 1) / (2 * np.sqrt(3)), x * z, y * z, (x**2 - y**2) / 2, x * y], 1)}[l]

    return np.linalg.lstsq(w(v), w(v @ q.T), rcond=None)[0].T


def padded_wigner(model: HamiltonianHeads, q: torch.Tensor) -> np.ndarray:
    """(n_types, M, M) block-diagonal Wigner matrices of every element's orbitals (Wannier90 order).

    e3nn's Wigner matrices converted to Wannier90 order, checked against the rotation law of the
    Wannier90 functions themselves.
    """
    m = model.max_orbitals
    out = np.zeros((len(model.type_map), m, m))
    for t, el in enumerate(model.type_map):
        for sh in model.basis.shells(el):
            d = wigner_w90(sh.l, q).numpy()
            np.testing.assert_allclose(d, w90_rotation_from_functions(sh.l, q.numpy()), atol=1e-12)
            out[t][np.ix_(sh.positions, sh.positions)] = d[np.ix_(sh.components, sh.components)]
    return out


def cluster(seed: int) -> Atoms:
    """Open two-layer cluster of Li, C and Mo on a jittered grid (nearest distances 1.6-2.4 A)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(3)] * 2, np.arange(2), indexing="ij"), -1).reshape(-1, 3)
    pos = 2.0 * grid + rng.uniform(-0.2, 0.2, grid.shape)
    atoms = Atoms(rng.choice(TYPE_MAP, len(pos)).tolist(), positions=pos)
    atoms.arrays["layer"] = grid[:, 2].copy()
    return atoms


def rattled_slab(seed: int, symbols=("Li", "C", "Mo", "C")) -> Atoms:
    """2D-periodic slab (pbc T, T, F) with a skewed cell and two layers."""
    rng = np.random.default_rng(seed)
    cell = np.array([[4.1, 0.0, 0.0], [1.3, 3.7, 0.0], [0.0, 0.0, 15.0]])
    frac = np.array([[0.1, 0.2], [0.6, 0.3], [0.3, 0.7], [0.8, 0.8]])
    pos = np.c_[frac @ cell[:2, :2], [0.0, 0.3, 1.8, 2.2]] + rng.normal(0, 0.08, (4, 3))
    atoms = Atoms(list(symbols), positions=pos, cell=cell, pbc=(True, True, False))
    atoms.arrays["layer"] = np.array([0, 0, 1, 1])
    return atoms


def bloch(i, j, R, blocks, counts, k, directed: bool) -> np.ndarray:
    """Dense H(k) (lattice gauge). ``directed``: every directed pair listed; else half storage."""
    off = np.concatenate([[0], np.cumsum(counts)])
    h = np.zeros((off[-1], off[-1]), complex)
    if directed:
        a = np.arange(blocks.shape[1])
        valid = (a[None, :, None] < counts[i][:, None, None]) & (a[None, None, :] < counts[j][:, None, None])
        p, ra, cb = np.nonzero(valid)
        np.add.at(h, (off[i[p]] + ra, off[j[p]] + cb), blocks[p, ra, cb] * np.exp(2j * np.pi * R[p] @ k))
        return h
    hR, hi, hj, t = hoppings_from_blocks(i, j, R, blocks, counts)
    phase = t * np.exp(2j * np.pi * hR @ k)
    np.add.at(h, (hi, hj), phase)
    diag = (hi == hj) & ~hR.any(axis=1)
    np.add.at(h, (hj[~diag], hi[~diag]), phase[~diag].conj())
    return h


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def spd_layered() -> HamiltonianHeads:
    cfg = HeadsConfig(type_map=TYPE_MAP, orbitals=SPD, descriptor_dim=9, r_cut=4.5, r_near=2.6,
                      near_width=0.4, r_env=3.5, layered=True, **SMALL)
    return HamiltonianHeads(cfg)


@pytest.fixture(scope="module")
def pz_model() -> HamiltonianHeads:
    cfg = HeadsConfig(type_map=("C",), orbitals={"C": "pz"}, descriptor_dim=3, r_cut=5.0, r_near=3.3,
                      r_env=4.0, layered=True, **SMALL)
    return HamiltonianHeads(cfg)


# ---------------------------------------------------------------------------- rotations
SHELL_PAIRS = {"s-s": ("Li", "Li"), "s-p": ("Li", "C"), "p-p": ("C", "C"), "p-d": ("C", "Mo"),
               "d-d": ("Mo", "Mo"), "d-p": ("Mo", "C")}


@pytest.fixture(scope="module")
def rotated(spd_layered):
    atoms = cluster(0)
    q = torch.as_tensor(Rotation.random(random_state=7).as_matrix())
    out = {}
    for name, qq in (("proper", q), ("improper", -q)):
        moved = atoms.copy()
        moved.positions = atoms.positions @ qq.numpy().T
        out[name] = (qq, directed_blocks(spd_layered, moved))
    return atoms, directed_blocks(spd_layered, atoms), out


@pytest.mark.parametrize("kind", ["proper", "improper"])
@pytest.mark.parametrize("shells", list(SHELL_PAIRS))
def test_blocks_rotate_with_wigner_matrices(spd_layered, rotated, shells, kind):
    """H_ij(QX) = D_i(Q) H_ij(X) D_j(Q)^T for random rotations and rotoreflections, full shells."""
    atoms, (i, j, R, h), moved = rotated
    q, (i2, j2, R2, h2) = moved[kind]
    assert np.array_equal(i, i2) and np.array_equal(j, j2)
    z = species_of(atoms, spd_layered.type_map)
    a, b = (spd_layered.type_map.index(e) for e in SHELL_PAIRS[shells])
    sel = np.flatnonzero((z[i] == a) & (z[j] == b) & (i != j))
    assert sel.size >= 2
    d = padded_wigner(spd_layered, q)
    expect = d[z[i[sel]]] @ h[sel] @ np.transpose(d[z[j[sel]]], (0, 2, 1))
    assert np.abs(h[sel]).max() > 1e-3                          # blocks are not trivially zero
    if shells != "s-s":
        assert np.abs(h2[sel] - h[sel]).max() > 1e-3            # ... and do change under Q
    np.testing.assert_allclose(h2[sel], expect, atol=TOL)


def test_onsite_blocks_rotate_and_are_symmetric(spd_layered, rotated):
    atoms, (i, j, R, h), moved = rotated
    q, (_, _, _, h2) = moved["proper"]
    z = species_of(atoms, spd_layered.type_map)
    sel = np.flatnonzero(i == j)
    d = padded_wigner(spd_layered, q)
    np.testing.assert_allclose(h2[sel], d[z[sel]] @ h[sel] @ np.transpose(d[z[sel]], (0, 2, 1)), atol=TOL)
    np.testing.assert_allclose(h[sel], np.transpose(h[sel], (0, 2, 1)), atol=0)
    mo = sel[z[sel] == 2]
    assert np.abs(h[mo] - np.eye(5) * np.trace(h[mo], axis1=1, axis2=2)[:, None, None] / 5).max() > 1e-4


# ---------------------------------------------------------------------------- pz-only
def _graphene_slab(seed: int) -> Atoms:
    atoms = bilayer("graphene", stacking="AB", vacuum=15.0).repeat((2, 2, 1))
    atoms.rattle(0.05, seed=seed)
    return atoms


def _transformed(atoms: Atoms, q: np.ndarray) -> Atoms:
    moved = atoms.copy()
    moved.positions = atoms.positions @ q.T
    moved.cell = atoms.cell.array @ q.T
    return moved


def test_pz_blocks_invariant_under_z_rotation_and_inplane_c2(pz_model):
    """pz-pz blocks keep the symmetry of pz: rotations about z, in-plane C2 axes, sigma_h mirror."""
    atoms = _graphene_slab(1)
    i, j, R, h = directed_blocks(pz_model, atoms)
    rng = np.random.default_rng(3)
    phi, theta = rng.uniform(0, 2 * np.pi, 2)
    c, s = np.cos(phi), np.sin(phi)
    rot_z = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    n = np.array([np.cos(theta), np.sin(theta), 0.0])
    c2_inplane = 2 * np.outer(n, n) - np.eye(3)                 # rotation by pi about n (in-plane)
    mirror = np.diag([1.0, 1.0, -1.0])
    for q in (rot_z, c2_inplane, mirror):
        i2, j2, R2, h2 = directed_blocks(pz_model, _transformed(atoms, q))
        assert np.array_equal(i, i2) and np.array_equal(R, R2)
        np.testing.assert_allclose(h2, h, atol=TOL)
    # a tilt mixes pz with px, py: the reduced block is not invariant under it
    tilt = o3.matrix_x(torch.tensor(0.4, dtype=torch.float64)).numpy()
    _, _, _, h3 = directed_blocks(pz_model, _transformed(atoms, tilt))
    assert np.abs(h3 - h).max() > 1e-3


def assert_blocks_rotate(model: HamiltonianHeads, atoms: Atoms, q: torch.Tensor):
    """All blocks of ``atoms`` moved by ``q`` equal ``D_i(q) H_ij D_j(q)^T`` (and do change); returns
    ``directed_blocks`` of the unmoved atoms."""
    i, j, R, h = directed_blocks(model, atoms)
    moved = atoms.copy()
    moved.positions = atoms.positions @ q.numpy().T
    _, _, _, h2 = directed_blocks(model, moved)
    z = species_of(atoms, model.type_map)
    d = padded_wigner(model, q)
    assert np.abs(h2 - h).max() > 1e-3
    np.testing.assert_allclose(h2, d[z[i]] @ h @ np.transpose(d[z[j]], (0, 2, 1)), atol=TOL)
    return i, j, R, h


def test_higher_feature_order_keeps_exact_equivariance():
    """feature_lmax above the basis' 2 l_max: blocks still rotate with the Wigner matrices (s, p, d)."""
    cfg = HeadsConfig(type_map=TYPE_MAP, orbitals=SPD, descriptor_dim=9, r_cut=4.5, r_near=2.6,
                      near_width=0.4, r_env=3.5, layered=True, feature_lmax=5, **SMALL)
    model = HamiltonianHeads(cfg)
    assert model.density.lmax == 5 and model.pair_features.lmax == 5
    assert_blocks_rotate(model, cluster(1), torch.as_tensor(Rotation.random(random_state=11).as_matrix()))
    with pytest.raises(ValueError, match="feature_lmax"):
        HamiltonianHeads(HeadsConfig(type_map=TYPE_MAP, orbitals=SPD, descriptor_dim=9, feature_lmax=3))


def _trigonal_pair(turn: float) -> Atoms:
    """Atom 0 (bottom layer) with three neighbours at 120 deg, turned by ``turn``; atom 4 above it, off axis,
    with its own fixed triangle.  Turning by 60 deg changes the bond's direction relative to atom 0's
    bonds only: every distance within 2 A and the 0-4 bond are unchanged."""
    ang = np.deg2rad(turn + np.array([0.0, 120.0, 240.0]))
    tri0 = 1.42 * np.c_[np.cos(ang), np.sin(ang), np.zeros(3)]
    top = np.array([1.0, 0.3, 3.35])
    ang1 = np.deg2rad(np.array([10.0, 130.0, 250.0]))
    tri1 = top + 1.42 * np.c_[np.cos(ang1), np.sin(ang1), np.zeros(3)]
    atoms = Atoms("C8", positions=np.vstack([[0.0, 0.0, 0.0], tri0, top, tri1]))
    atoms.arrays["layer"] = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    return atoms


@pytest.mark.parametrize("feature_lmax", [None, 3])
def test_trigonal_anisotropy_needs_feature_order_3(feature_lmax):
    """A planar triangle of neighbours has no in-plane anisotropy below L = 3: with the default order
    (2 for pz) the interlayer pz-pz hopping cannot tell a bond direction from the one 60 deg away
    relative to the layer's bonds (Fang-Kaxiras cos 3 theta terms); feature_lmax = 3 can."""
    cfg = HeadsConfig(type_map=("C",), orbitals={"C": "pz"}, descriptor_dim=3, r_cut=5.0, r_near=3.3,
                      r_env=2.0, layered=True, feature_lmax=feature_lmax, **SMALL)
    model = HamiltonianHeads(cfg)
    hop = []
    for turn in (0.0, 60.0):
        atoms = _trigonal_pair(turn)
        nl = neighbor_list(atoms, 2.0)
        assert sorted(np.round(np.linalg.norm(nl.vectors(atoms.positions, atoms.cell), axis=1), 9)) == \
            sorted(np.round(np.linalg.norm(neighbor_list(_trigonal_pair(0.0), 2.0).vectors(
                _trigonal_pair(0.0).positions, atoms.cell), axis=1), 9))
        i, j, _, h = directed_blocks(model, atoms, desc_r=2.0)
        hop.append(h[np.flatnonzero((i == 0) & (j == 4))[0], 0, 0])
    assert abs(hop[0]) > 1e-3
    if feature_lmax is None:
        assert abs(hop[1] - hop[0]) < 1e-12
    else:
        assert abs(hop[1] - hop[0]) > 1e-5


# ---------------------------------------------------------------------------- Hermiticity, permutations, translations
def _pair_lookup(i, j, R):
    return {(int(a), int(b), *map(int, r)): p for p, (a, b, r) in enumerate(zip(i, j, R))}


def test_block_of_reversed_pair_is_transpose_and_hk_hermitian(spd_layered):
    atoms = rattled_slab(0)
    i, j, R, h = directed_blocks(spd_layered, atoms)
    look = _pair_lookup(i, j, R)
    rev = np.array([look[(int(b), int(a), *map(int, -r))] for a, b, r in zip(i, j, R)])
    np.testing.assert_allclose(h[rev], np.transpose(h, (0, 2, 1)), atol=TOL)
    counts = spd_layered.basis.orbital_counts(atoms.get_chemical_symbols())
    half = half_stored(i, j, R)
    rng = np.random.default_rng(0)
    for k in rng.uniform(-1, 1, (4, 3)) * [1, 1, 0]:
        hk = bloch(i, j, R, h, counts, k, directed=True)
        assert np.abs(hk).max() > 0.1
        np.testing.assert_allclose(hk, hk.conj().T, atol=TOL)
        # half storage + H_ji(-R) = H_ij(R)^T rebuilds the same matrix
        np.testing.assert_allclose(bloch(i[half], j[half], R[half], h[half], counts, k, directed=False), hk, atol=TOL)


def _dense_hk(model, atoms, k):
    pairs, blocks = predict_blocks(model, atoms, descriptor(atoms, model.type_map), chunk_size=7)
    counts = model.basis.orbital_counts(atoms.get_chemical_symbols())
    return bloch(pairs.i, pairs.j, pairs.R, blocks, counts, k, directed=False), counts


def test_permutation_equivariance(spd_layered):
    atoms = rattled_slab(1, symbols=("Mo", "C", "Li", "Mo"))
    perm = np.array([2, 0, 3, 1])
    k = np.array([0.31, -0.17, 0.0])
    hk, counts = _dense_hk(spd_layered, atoms, k)
    hk_p, _ = _dense_hk(spd_layered, atoms[perm], k)
    off = np.concatenate([[0], np.cumsum(counts)])
    orb_perm = np.concatenate([np.arange(off[a], off[a + 1]) for a in perm])
    np.testing.assert_allclose(hk_p, hk[np.ix_(orb_perm, orb_perm)], atol=TOL)
    assert np.abs(hk_p - hk).max() > 1e-3


def test_translation_invariance(spd_layered):
    atoms = rattled_slab(2)
    pairs, blocks = predict_blocks(spd_layered, atoms, descriptor(atoms, spd_layered.type_map))
    moved = atoms.copy()
    moved.positions += [3.3, -1.9, 0.7]
    pairs2, blocks2 = predict_blocks(spd_layered, moved, descriptor(moved, spd_layered.type_map))
    assert np.array_equal(pairs.R, pairs2.R)
    np.testing.assert_allclose(blocks2, blocks, atol=TOL)
    # wrapping into the cell relabels lattice shifts; the spectrum is unchanged
    moved.wrap()
    k = np.array([0.2, 0.45, 0.0])
    e1 = np.linalg.eigvalsh(_dense_hk(spd_layered, atoms, k)[0])
    e2 = np.linalg.eigvalsh(_dense_hk(spd_layered, moved, k)[0])
    np.testing.assert_allclose(e2, e1, atol=1e-10)


# ---------------------------------------------------------------------------- smoothness
def _dimer_curve(model, r, layer):
    """pz-pz block of C dimers at distances ``r``: one structure holding all dimers 40 A apart."""
    r = np.asarray(r, dtype=float)
    direction = np.array([0.8, 0.0, 0.6])
    start = np.c_[np.zeros(len(r)), 40.0 * np.arange(len(r)), np.zeros(len(r))]
    pos = np.stack([start, start + r[:, None] * direction], 1).reshape(-1, 3)
    atoms = Atoms(f"C{2 * len(r)}", positions=pos)
    atoms.arrays["layer"] = np.tile(layer, len(r))
    i, j, R, h = directed_blocks(model, atoms)
    out = np.zeros(len(r))
    sel = (i % 2 == 0) & (j == i + 1)
    out[i[sel] // 2] = h[sel, 0, 0]
    return out


def _max_second_difference(f):
    return np.abs(f[2:] - 2 * f[1:-1] + f[:-2]).max()


@pytest.mark.parametrize("layer", [[0, 0], [0, 1]])
def test_blocks_vanish_smoothly_at_r_cut(pz_model, layer):
    rc, h = pz_model.config.r_cut, 2e-3
    r = rc + h * np.arange(-40, 10)
    f = _dimer_curve(pz_model, r, layer)
    assert np.all(f[r >= rc] == 0.0)
    # C2 envelope: the block vanishes as (r_cut - r)^3
    delta = rc - r[r < rc]
    slope = np.polyfit(np.log(delta[delta < 0.03]), np.log(np.abs(f[r < rc][delta < 0.03])), 1)[0]
    assert abs(f[0]) > 1e-7 and 2.8 < slope < 3.2
    assert _max_second_difference(f) < 1e-6


def test_near_long_blend_is_smooth_hard_switch_is_not(pz_model):
    cfg = pz_model.config
    h = 2e-3
    r = cfg.r_near + h * np.arange(-160, 160)
    smooth = _dimer_curve(pz_model, r, [0, 0])
    hard = HamiltonianHeads(HeadsConfig(**{**cfg.to_dict(), "near_width": 0.0}))
    hard.load_state_dict(pz_model.state_dict())
    jump = _dimer_curve(hard, r, [0, 0])
    step = np.abs(np.diff(smooth)).max()
    assert step < 20 * h * np.abs(smooth).max()
    assert _max_second_difference(smooth) < 1e-3
    assert _max_second_difference(jump) > 10 * _max_second_difference(smooth)


# ---------------------------------------------------------------------------- descriptor modes, errors
@pytest.mark.parametrize("mode", ["frozen", "joint"])
def test_descriptor_modes(mode):
    cfg = HeadsConfig(type_map=("C",), orbitals={"C": "pz"}, descriptor_dim=3, r_cut=5.0, r_near=3.3,
                      layered=True, descriptor_mode=mode, **SMALL)
    model = HamiltonianHeads(cfg)
    atoms = _graphene_slab(0)
    d = descriptor(atoms, ("C",)).requires_grad_(True)
    env = neighbor_list(atoms, cfg.r_env)
    pairs = hamiltonian_pairs(atoms, cfg.r_cut, cfg.r_near)
    out = model(d, torch.zeros(len(atoms), dtype=torch.int64), torch.as_tensor(env.vectors(atoms.positions, atoms.cell)),
                torch.as_tensor(np.stack([env.i, env.j])), torch.as_tensor(np.stack([pairs.i, pairs.j])),
                torch.as_tensor(pairs.vectors(atoms)), torch.as_tensor(atoms.arrays["layer"]))
    out.square().sum().backward()
    params = [p.grad for p in model.parameters() if p.grad is not None]
    assert params and max(float(g.abs().max()) for g in params) > 0
    if mode == "frozen":
        assert d.grad is None
    else:
        assert d.grad is not None and float(d.grad.abs().max()) > 0


def test_layered_model_needs_layer_tags(pz_model):
    atoms = _graphene_slab(0)
    del atoms.arrays["layer"]
    with pytest.raises(ValueError, match="layer"):
        predict_blocks(pz_model, atoms, descriptor(atoms, ("C",)))


def test_bad_inputs_raise(pz_model):
    atoms = _graphene_slab(0)
    with pytest.raises(ValueError, match="descriptors must be"):
        predict_blocks(pz_model, atoms, torch.zeros(len(atoms), 5, dtype=torch.float64))
    bad = atoms.copy()
    bad.symbols[0] = "N"
    with pytest.raises(ValueError, match="not in type_map"):
        predict_blocks(pz_model, bad, descriptor(atoms, ("C",)))
    with pytest.raises(ValueError, match="unknown Hamiltonian head settings"):
        HeadsConfig.from_dict({**pz_model.config.to_dict(), "rcut": 3})
    with pytest.raises(ValueError, match="descriptor_mode"):
        HeadsConfig(type_map=("C",), orbitals={"C": "pz"}, descriptor_dim=3, descriptor_mode="shared")


def _vertical_pair(turn: float) -> Atoms:
    """Atom 0 (bottom) and atom 4 straight above it, 3.35 A apart, each with three neighbours at
    1.42 A in its own layer; the bottom triangle turned by ``turn`` (0: AA-like, the two triangles
    aligned; 60: AB-like). The bond is along z, so no bond-direction feature can tell the two."""
    ang0 = np.deg2rad(turn + np.array([0.0, 120.0, 240.0]))
    ang1 = np.deg2rad(np.array([0.0, 120.0, 240.0]))
    tri0 = 1.42 * np.c_[np.cos(ang0), np.sin(ang0), np.zeros(3)]
    tri1 = np.array([0.0, 0.0, 3.35]) + 1.42 * np.c_[np.cos(ang1), np.sin(ang1), np.zeros(3)]
    atoms = Atoms("C8", positions=np.vstack([[0.0, 0.0, 0.0], tri0, [0.0, 0.0, 3.35], tri1]))
    atoms.arrays["layer"] = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    return atoms


@pytest.mark.parametrize("pair_overlap", [False, True])
def test_vertical_interlayer_hopping_tells_aa_from_ab_only_with_overlaps(pair_overlap):
    """DFT's vertical pz-pz hopping differs by 15 % between AA and AB stacking (blgscan frames at
    3.25 A: 389 vs 334 meV). Features linear in each atom's density see the two triangles only
    through the bond direction, which is the same for both: the hopping comes out identical. The
    overlap invariants A_i . A_j (their L = 3 part goes as cos 3 of the angle between the
    triangles) separate them, and the blocks stay exactly equivariant."""
    cfg = HeadsConfig(type_map=("C",), orbitals={"C": "pz"}, descriptor_dim=3, r_cut=5.0, r_near=3.3,
                      r_env=2.0, layered=True, feature_lmax=3, pair_overlap=pair_overlap, **SMALL)
    model = HamiltonianHeads(cfg)
    hop = []
    for turn in (0.0, 60.0):
        i, j, _, h = directed_blocks(model, _vertical_pair(turn), desc_r=2.0)
        hop.append(h[np.flatnonzero((i == 0) & (j == 4))[0], 0, 0])
    assert abs(hop[0]) > 1e-3
    if pair_overlap:
        assert abs(hop[1] - hop[0]) > 1e-5
    else:
        assert abs(hop[1] - hop[0]) < 1e-12


def test_overlap_invariants_keep_exact_equivariance():
    cfg = HeadsConfig(type_map=TYPE_MAP, orbitals=SPD, descriptor_dim=9, r_cut=4.5, r_near=2.6,
                      near_width=0.4, r_env=3.5, layered=True, pair_overlap=True, **SMALL)
    model = HamiltonianHeads(cfg)
    q = -torch.as_tensor(Rotation.random(random_state=5).as_matrix())   # a rotoreflection
    i, j, R, h = assert_blocks_rotate(model, cluster(2), q)
    look = _pair_lookup(i, j, R)
    rev = np.array([look[(int(b), int(a), *map(int, -r))] for a, b, r in zip(i, j, R)])
    np.testing.assert_allclose(h[rev], np.transpose(h, (0, 2, 1)), atol=TOL)
