"""Half-stored pair lists and their categories (onsite, intralayer near / long, interlayer)."""

from __future__ import annotations

import numpy as np
import pytest

from wander.nn.hamiltonian.categories import (CATEGORIES, INTER, INTRA_LONG, INTRA_NEAR, ONSITE, half_stored,
                                              hamiltonian_pairs)
from wander.structures import bilayer

R_CUT, R_NEAR = 7.0, 3.3


def brute_force_pairs(atoms, r_cut, n_img=5):
    """Every directed pair (i, j, R) with 0 < |x_j + R.cell - x_i| < r_cut by explicit image sums."""
    pos, cell = atoms.positions, atoms.cell.array
    n = len(atoms)
    img = np.stack(np.meshgrid(np.arange(-n_img, n_img + 1), np.arange(-n_img, n_img + 1), [0], indexing="ij"),
                   -1).reshape(-1, 3)
    d = pos[None, :, None, :] + (img @ cell)[None, None, :, :] - pos[:, None, None, :]   # (i, j, R, 3)
    dist = np.linalg.norm(d, axis=-1)
    i, j, r = np.nonzero((dist < r_cut) & (dist > 0))
    return i, j, img[r], dist[i, j, r]


@pytest.fixture(scope="module")
def ab_bilayer():
    return bilayer("graphene", stacking="AB", vacuum=15.0).repeat((3, 3, 1))


def test_ab_bilayer_category_counts_match_direct_count(ab_bilayer):
    atoms = ab_bilayer
    pairs = hamiltonian_pairs(atoms, R_CUT, R_NEAR)
    i, j, R, dist = brute_force_pairs(atoms, R_CUT)
    layer = atoms.arrays["layer"]
    same = layer[i] == layer[j]
    # every unordered pair is listed once: half of the directed count
    expect = {
        "onsite": len(atoms),
        "intra_near": int((same & (dist < R_NEAR)).sum()) // 2,
        "intra_long": int((same & (dist >= R_NEAR)).sum()) // 2,
        "inter": int((~same).sum()) // 2,
    }
    assert pairs.counts() == expect
    # graphene shells within 3.3 A: 3 + 6 + 3 neighbours per atom
    assert expect["intra_near"] == len(atoms) * 12 // 2
    # the listed pairs are exactly the half-stored subset of the direct enumeration
    keep = half_stored(i, j, R)
    direct = {(a, b, *r) for a, b, r in zip(i[keep], j[keep], R[keep].tolist())}
    listed = {(a, b, *r) for a, b, r in zip(pairs.i, pairs.j, pairs.R.tolist()) if not (a == b and not any(r))}
    assert listed == direct
    np.testing.assert_allclose(np.linalg.norm(pairs.vectors(atoms), axis=1), pairs.distance, atol=1e-12)
    hop = pairs.category != ONSITE
    assert np.all(pairs.distance[hop] > 0) and np.all(pairs.distance[hop] < R_CUT)
    near = pairs.category == INTRA_NEAR
    assert np.all(pairs.distance[near] < R_NEAR)
    assert np.all(pairs.distance[pairs.category == INTRA_LONG] >= R_NEAR)
    inter = pairs.category == INTER
    assert np.all(layer[pairs.i[inter]] != layer[pairs.j[inter]])
    assert pairs.distance[inter].min() == pytest.approx(3.35, abs=1e-9)   # AB dimer sites


def test_half_storage_rule():
    R = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0], [1, -3, 0], [-1, 5, 0], [0, 1, 0], [0, -1, 0], [0, 0, 0]])
    i = np.array([0, 1, 2, 5, 5, 3, 3, 4])
    j = np.array([1, 0, 2, 1, 1, 3, 3, 4])
    np.testing.assert_array_equal(half_stored(i, j, R), [True, False, True, True, False, True, False, True])


def test_single_layer_model_and_missing_layers(ab_bilayer):
    atoms = ab_bilayer.copy()
    mono = hamiltonian_pairs(atoms, R_CUT, R_NEAR, layered=False)
    both = hamiltonian_pairs(atoms, R_CUT, R_NEAR, layered=True)
    assert INTER not in mono.category and len(mono) == len(both)
    del atoms.arrays["layer"]
    with pytest.raises(ValueError, match="layer"):
        hamiltonian_pairs(atoms, R_CUT, R_NEAR, layered=True)
    with pytest.raises(ValueError, match="r_near"):
        hamiltonian_pairs(ab_bilayer, 3.0, 3.3)
    assert CATEGORIES[ONSITE] == "onsite"
