"""Targets: TB Hamiltonian / hopping lists / DFT dataset <-> atom-pair blocks; per-category losses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms

from wander.nn.hamiltonian.assemble import hoppings_from_blocks, tb_from_blocks
from wander.nn.hamiltonian.basis import OrbitalBasis
from wander.nn.hamiltonian.batch import collate_targets, pair_vectors
from wander.nn.hamiltonian.categories import (CATEGORIES, INTER, INTRA_NEAR, ONSITE, half_stored,
                                              hamiltonian_pairs)
from wander.nn.hamiltonian.losses import category_losses
from wander.nn.hamiltonian.targets import align_blocks, blocks_from_hoppings, blocks_from_tb, dataset_targets
from wander.structures import bilayer

FIXTURE = Path(__file__).parent / "fixtures" / "blg_w90"
MOS2 = OrbitalBasis({"Mo": "d", "S": "p"})


def random_blocks(atoms, basis, r_cut, seed):
    """Half-stored pairs of ``atoms`` with random blocks (symmetric onsite), zero padded."""
    pairs = hamiltonian_pairs(atoms, r_cut, min(3.0, r_cut), layered=False)
    counts = basis.orbital_counts(atoms.get_chemical_symbols())
    rng = np.random.default_rng(seed)
    m = basis.max_orbitals
    blocks = rng.normal(size=(len(pairs), m, m))
    ons = pairs.category == ONSITE
    blocks[ons] = 0.5 * (blocks[ons] + np.transpose(blocks[ons], (0, 2, 1)))
    a = np.arange(m)
    mask = (a[None, :, None] < counts[pairs.i][:, None, None]) & (a[None, None, :] < counts[pairs.j][:, None, None])
    return pairs, np.where(mask, blocks, 0.0), counts


@pytest.fixture(scope="module")
def mos2():
    atoms = bilayer("mos2", stacking="AA'", vacuum=12.0).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=2)
    return atoms


def test_blocks_hoppings_round_trip(mos2):
    pairs, blocks, counts = random_blocks(mos2, MOS2, 4.0, 0)
    R, i, j, t = hoppings_from_blocks(pairs.i, pairs.j, pairs.R, blocks, counts, chunk_size=5)
    orb_atoms, orb_labels, _ = MOS2.orbital_table(mos2.get_chemical_symbols())
    # half storage at orbital level, one entry per real matrix element (onsite: upper triangle)
    n_el = (counts[pairs.i] * counts[pairs.j]).sum() - (counts * (counts - 1) // 2).sum()
    assert len(t) == n_el
    assert half_stored(i, j, R).all()
    assert len({(a, b, *r) for a, b, r in zip(i, j, R.tolist())}) == len(t)
    bi, bj, bR, back = blocks_from_hoppings(mos2, MOS2, R, i, j, t, orb_atoms, orb_labels)
    got = align_blocks(pairs, bi, bj, bR, back, counts)
    np.testing.assert_array_equal(got.blocks, blocks)
    assert got.n_outside == 0
    # a full list (both directions, shuffled) gives the same blocks
    full = np.r_[np.arange(len(t)), np.arange(len(t))]
    rev = np.r_[np.zeros(len(t), bool), np.ones(len(t), bool)]
    perm = np.random.default_rng(1).permutation(len(full))
    Rf = np.where(rev[:, None], -R[full], R[full])[perm]
    fi, fj = np.where(rev, j[full], i[full])[perm], np.where(rev, i[full], j[full])[perm]
    bi, bj, bR, back = blocks_from_hoppings(mos2, MOS2, Rf, fi, fj, t[full][perm], orb_atoms, orb_labels)
    np.testing.assert_allclose(align_blocks(pairs, bi, bj, bR, back, counts).blocks, blocks, atol=1e-15)


def test_orbitals_in_a_different_order_and_label_checks(mos2):
    """Hoppings whose orbital list is ordered differently (all S first) map to the same blocks."""
    pairs, blocks, counts = random_blocks(mos2, MOS2, 3.5, 3)
    R, i, j, t = hoppings_from_blocks(pairs.i, pairs.j, pairs.R, blocks, counts)
    orb_atoms, orb_labels, _ = MOS2.orbital_table(mos2.get_chemical_symbols())
    new_order = np.argsort(np.array(mos2.get_chemical_symbols())[orb_atoms] != "S", kind="stable")
    old_to_new = np.empty_like(new_order)
    old_to_new[new_order] = np.arange(len(new_order))
    bi, bj, bR, back = blocks_from_hoppings(mos2, MOS2, R, old_to_new[i], old_to_new[j], t,
                                            orb_atoms[new_order], orb_labels[new_order])
    np.testing.assert_allclose(align_blocks(pairs, bi, bj, bR, back, counts).blocks, blocks, atol=1e-15)
    bad = orb_labels.copy()
    bad[[0, 1]] = bad[[1, 0]]
    with pytest.raises(ValueError, match="the basis expects"):
        blocks_from_hoppings(mos2, MOS2, R, i, j, t, orb_atoms, bad)
    with pytest.raises(ValueError, match="imaginary"):
        blocks_from_hoppings(mos2, MOS2, R, i, j, t + 0.1j, orb_atoms, orb_labels)


def _blg_atoms():
    a = 2.46
    cell = np.array([[a, 0, 0], [a / 2, a * np.sqrt(3) / 2, 0], [0, 0, 20.0]])
    frac = np.array([[0, 0], [1 / 3, 1 / 3], [1 / 3, 1 / 3], [2 / 3, 2 / 3]])
    pos = np.c_[frac @ cell[:2, :2], [-1.675, -1.675, 1.675, 1.675]]
    atoms = Atoms("C4", positions=pos, cell=cell, pbc=(True, True, False))
    atoms.arrays["layer"] = np.array([0, 0, 1, 1])
    return atoms


def test_blocks_from_wannier90_bilayer_graphene():
    """Real DFT + Wannier90 data: the fixture's hoppings land on the right pairs and categories."""
    from wander.tb import TBHamiltonian

    tb = TBHamiltonian.from_wannier90(FIXTURE / "blg_hr.dat", FIXTURE / "blg.win",
                                      wsvec_path=FIXTURE / "blg_wsvec.dat")
    atoms = _blg_atoms()
    basis = OrbitalBasis({"C": "pz"})
    bi, bj, bR, blocks = blocks_from_tb(tb, atoms, basis)
    targets = align_blocks(hamiltonian_pairs(atoms, 7.0, 3.3), bi, bj, bR, blocks, np.ones(4, int))
    pairs, h = targets.pairs, targets.blocks[:, 0, 0]
    nn = (pairs.category == INTRA_NEAR) & (np.abs(pairs.distance - 2.46 / np.sqrt(3)) < 1e-6)
    dimer = (pairs.category == INTER) & (np.abs(pairs.distance - 3.35) < 1e-6)
    assert nn.sum() == 6 and dimer.sum() == 1                      # 4 atoms x 3 bonds / 2; one dimer pair
    np.testing.assert_allclose(h[nn], -2.864, atol=2e-3)           # README of the fixture
    np.testing.assert_allclose(h[dimer], 0.277, atol=2e-3)
    assert targets.outside_max < 0.05 and targets.n_outside > 0
    # the inverse map rebuilds the TB Hamiltonian exactly
    back = tb_from_blocks(atoms, basis, bi, bj, bR, blocks)
    assert back.n_hoppings == tb.n_hoppings
    for k in ([0.0, 0, 0], [1 / 3, 1 / 3, 0], [0.21, 0.4, 0]):
        np.testing.assert_allclose(back.hk(np.array(k)).toarray(), tb.hk(np.array(k)).toarray(), atol=1e-12)


def _dataset_layout(atoms, basis, bi, bj, bR, blocks):
    """One frame in the hamiltonians.npz layout of wander.dft.dataset (both directions, ragged)."""
    counts = basis.orbital_counts(atoms.get_chemical_symbols())
    orb_atoms, orb_labels, _ = basis.orbital_table(atoms.get_chemical_symbols())
    keep = ~((bi == bj) & ~bR.any(1))
    pi, pj, pR = np.r_[bi, bj[keep]], np.r_[bj, bi[keep]], np.r_[bR, -bR[keep]]
    blk = np.concatenate([blocks, np.transpose(blocks[keep], (0, 2, 1))])
    vals = [blk[p, :counts[a], :counts[b]].ravel() for p, (a, b) in enumerate(zip(pi, pj))]
    sizes = counts[pi] * counts[pj]
    return {"atom_offset": np.array([0, len(atoms)]), "orb_offset": np.array([0, len(orb_atoms)]),
            "pair_offset": np.array([0, len(pi)]), "orb_count": counts, "orb_atom": orb_atoms,
            "orb_label": orb_labels, "pair_i": pi, "pair_j": pj, "pair_R": pR,
            "block_offset": np.r_[0, np.cumsum(sizes)], "block_values": np.concatenate(vals)}


def test_dataset_targets_from_npz_layout(mos2):
    pairs, blocks, counts = random_blocks(mos2, MOS2, 6.0, 5)
    ham = _dataset_layout(mos2, MOS2, pairs.i, pairs.j, pairs.R, blocks)
    targets = dataset_targets(ham, 0, mos2, MOS2, r_cut=4.0, r_near=3.0, layered=True)
    ref = hamiltonian_pairs(mos2, 4.0, 3.0)
    assert targets.pairs.counts() == ref.counts() and targets.pairs.counts()["inter"] > 0
    look = {(a, b, *r): p for p, (a, b, r) in enumerate(zip(pairs.i, pairs.j, pairs.R.tolist()))}
    idx = [look[(a, b, *r)] for a, b, r in zip(ref.i, ref.j, ref.R.tolist())]
    np.testing.assert_array_equal(targets.blocks, blocks[idx])
    assert targets.n_outside == len(pairs) - len(ref)
    assert targets.mask.sum() == (counts[ref.i] * counts[ref.j]).sum()
    with pytest.raises(ValueError, match="atoms"):
        dataset_targets(ham, 0, mos2[:-1], MOS2, 4.0, 3.0)


def test_category_losses_match_direct_computation():
    rng = np.random.default_rng(0)
    p, m = 40, 3
    counts = rng.integers(1, m + 1, size=(p, 2))
    a = np.arange(m)
    mask = (a[None, :, None] < counts[:, :1, None]) & (a[None, None, :] < counts[:, 1:, None])
    pred, target = rng.normal(size=(p, m, m)), rng.normal(size=(p, m, m))
    cat = rng.integers(0, 3, size=p)                     # no interlayer pairs in this batch
    out = category_losses(torch.tensor(pred, requires_grad=True), torch.tensor(target), torch.tensor(mask),
                          torch.tensor(cat), weights={"onsite": 2.0})
    total = 0.0
    for code in range(3):
        sel = mask & (cat == code)[:, None, None]
        d = (pred - target)[sel]
        assert out[f"mse/{CATEGORIES[code]}"].item() == pytest.approx(np.mean(d**2), rel=1e-12)
        assert out[f"mae/{CATEGORIES[code]}"].item() == pytest.approx(np.mean(np.abs(d)), rel=1e-12)
        total += (2.0 if code == 0 else 1.0) * np.mean(d**2)
    assert "mse/inter" not in out
    assert out["loss"].item() == pytest.approx(total, rel=1e-12)
    out["loss"].backward()
    with pytest.raises(ValueError, match="unknown groups"):
        category_losses(torch.tensor(pred), torch.tensor(target), torch.tensor(mask), torch.tensor(cat), {"near": 1})


def test_magnitude_weighted_category_losses():
    """With magnitude_scale h0 the loss of a category is the mean of the squared errors weighted by
    1 + |H_ref| / h0; the reported MSE / MAE stay unweighted; h0 <= 0 is refused."""
    rng = np.random.default_rng(1)
    p, m, h0 = 30, 2, 0.1
    mask = np.ones((p, m, m), bool)
    mask[::3, 1, :] = mask[::3, :, 1] = False
    pred, target = rng.normal(size=(p, m, m)), rng.normal(scale=0.5, size=(p, m, m))
    cat = rng.integers(0, 4, size=p)
    args = (torch.tensor(pred), torch.tensor(target), torch.tensor(mask), torch.tensor(cat))
    plain = category_losses(*args, weights={"inter": 3.0})
    out = category_losses(*args, weights={"inter": 3.0}, magnitude_scale=h0)
    total = 0.0
    for code, name in enumerate(CATEGORIES):
        sel = mask & (cat == code)[:, None, None]
        d, w = (pred - target)[sel], 1 + np.abs(target[sel]) / h0
        assert out[f"mse/{name}"].item() == pytest.approx(plain[f"mse/{name}"].item(), rel=1e-12)
        assert out[f"mae/{name}"].item() == pytest.approx(np.mean(np.abs(d)), rel=1e-12)
        total += (3.0 if name == "inter" else 1.0) * np.sum(w * d**2) / np.sum(w)
    assert out["loss"].item() == pytest.approx(total, rel=1e-12)
    assert out["loss"].item() != pytest.approx(plain["loss"].item(), rel=1e-3)
    with pytest.raises(ValueError, match="magnitude_scale"):
        category_losses(*args, magnitude_scale=0.0)


def test_collate_targets_and_pair_vectors(mos2):
    t1 = dataset_targets(_dataset_layout(mos2, MOS2, *_pairs_blocks(mos2)), 0, mos2, MOS2, 4.0, 3.0)
    other = mos2.copy()
    other.positions += 0.3
    batch = collate_targets([t1, t1], [len(mos2), len(other)])
    pos = torch.tensor(np.r_[mos2.positions, other.positions])
    cell = torch.tensor(np.stack([mos2.cell.array, other.cell.array]))
    frame = torch.tensor([0] * len(mos2) + [1] * len(other))
    vec = pair_vectors(pos, cell, frame, batch.pair_index, batch.pair_R).numpy()
    np.testing.assert_allclose(vec[: len(t1.pairs)], t1.pairs.vectors(mos2), atol=1e-12)
    np.testing.assert_allclose(vec[len(t1.pairs):], t1.pairs.vectors(mos2), atol=1e-12)   # rigid shift
    assert int(batch.pair_index.max()) == 2 * len(mos2) - 1


def _pairs_blocks(atoms):
    pairs, blocks, _ = random_blocks(atoms, MOS2, 5.0, 9)
    return pairs.i, pairs.j, pairs.R, blocks
