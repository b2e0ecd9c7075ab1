"""Neighbour lists, graph batches and dataset readers of the force field."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read
from ase.neighborlist import neighbor_list as ase_neighbor_list

from fixtures.ff.helpers import NPY_DIR, TRAIN_XYZ, bilayer
from fixtures.ff.helpers import one_thread  # noqa: F401  (autouse fixture)
from wander.data.datasets import frame_labels, load_graphs, read_deepmd_npy, read_frames, write_deepmd_npy
from wander.data.graph import AtomGraph, collate
from wander.data.neighbors import neighbor_list
from wander.io.errors import FormatError


def _canonical(i, j, s) -> np.ndarray:
    rows = np.column_stack([i, j, s]).astype(np.int64)
    return rows[np.lexsort(rows.T[::-1])]


def _random_atoms(rng, n, cell, pbc) -> Atoms:
    frac = rng.uniform(-0.3, 1.3, (n, 3))  # some atoms outside the cell on purpose
    return Atoms("C" * n, positions=frac @ np.asarray(cell, float), cell=cell, pbc=pbc)


SKEWED = [[2.1, 0.0, 0.0], [-1.6, 1.9, 0.0], [0.0, 0.0, 9.0]]  # 130 degree in-plane angle
CELLS = {
    "small_hex": [[2.46, 0, 0], [1.23, 2.13, 0], [0, 0, 12.0]],
    "skewed": SKEWED,
    "triclinic": [[3.0, 0.2, 0.1], [1.1, 2.7, -0.3], [0.4, -0.5, 4.0]],
}


@pytest.mark.parametrize("pbc", [(True, True, False), (True, True, True)])
@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("cutoff", [1.7, 6.0])
def test_neighbor_list_equals_ase(pbc, name, cutoff) -> None:
    # zlib.crc32, not hash(): str hashing is salted per interpreter, which made the draw vary
    rng = np.random.default_rng(zlib.crc32(f"{name}-{cutoff}".encode()))
    atoms = _random_atoms(rng, 7, CELLS[name], pbc)
    ours = neighbor_list(atoms, cutoff)
    ref = _canonical(*ase_neighbor_list("ijS", atoms, cutoff))
    assert len(ref) > 0
    np.testing.assert_array_equal(_canonical(ours.i, ours.j, ours.shift), ref)
    d = ours.vectors(atoms.positions, atoms.cell)
    assert np.all(np.linalg.norm(d, axis=1) < cutoff)
    assert np.all(np.diff(ours.i) >= 0)
    if not pbc[2]:
        assert np.all(ours.shift[:, 2] == 0)


def test_neighbor_list_slab_with_zero_c_vector_and_open_cluster() -> None:
    rng = np.random.default_rng(5)
    slab = _random_atoms(rng, 6, CELLS["small_hex"], (True, True, False))
    ref = _canonical(*ase_neighbor_list("ijS", slab, 4.0))
    slab.cell[2] = 0.0  # the open axis carries no cell vector
    nl = neighbor_list(slab, 4.0)
    np.testing.assert_array_equal(_canonical(nl.i, nl.j, nl.shift), ref)

    cluster = Atoms("C5", positions=rng.uniform(0, 3, (5, 3)) + 40.0)  # no cell at all
    nl = neighbor_list(cluster, 2.5)
    dist = np.linalg.norm(cluster.positions[:, None] - cluster.positions[None], axis=-1)
    expected = {(a, b) for a in range(5) for b in range(5) if a != b and dist[a, b] < 2.5}
    assert set(zip(nl.i.tolist(), nl.j.tolist())) == expected
    assert np.all(nl.shift == 0)


def test_neighbor_list_rejects_bad_input() -> None:
    atoms = Atoms("C2", positions=[[0, 0, 0], [1, 0, 0]], cell=[[2, 0, 0], [4, 0, 0], [0, 0, 5]], pbc=True)
    with pytest.raises(ValueError, match="linearly dependent"):
        neighbor_list(atoms, 1.5)
    with pytest.raises(ValueError, match="cutoff"):
        neighbor_list(Atoms("C"), -1.0)
    bad = Atoms("C2", positions=[[0, 0, 0], [np.nan, 0, 0]])
    with pytest.raises(ValueError, match="non-finite"):
        neighbor_list(bad, 1.0)


def test_graph_edge_vectors_and_collate_offsets() -> None:
    a = bilayer(n=1, seed=1)
    b = bilayer(n=2, seed=2)
    ga = AtomGraph.from_atoms(a, ["C", "B"], 3.0)
    gb = AtomGraph.from_atoms(b, ["C", "B"], 3.0)
    batch = collate([ga, gb])
    assert batch.num_frames == 2 and batch.positions.shape == (len(a) + len(b), 3)
    assert batch.batch.tolist() == [0] * len(a) + [1] * len(b)
    vec = batch.edge_vectors()
    ref = np.concatenate([neighbor_list(x, 3.0).vectors(x.positions, x.cell) for x in (a, b)])
    np.testing.assert_allclose(vec.numpy(), ref, atol=1e-12)
    assert int(batch.edge_index[:, ga.edge_index.shape[1]:].min()) == len(a)


def test_graph_validates_shapes_and_species() -> None:
    with pytest.raises(ValueError, match="not in type_map"):
        AtomGraph.from_atoms(Atoms("N", cell=np.eye(3)), ["C", "B"], 2.0)
    g = AtomGraph.from_atoms(bilayer(n=1), ["C", "B"], 2.0)
    with pytest.raises(ValueError, match="positions"):
        AtomGraph(positions=g.positions[:, :2], species=g.species, cell=g.cell, pbc=g.pbc,
                  edge_index=g.edge_index, edge_shift=g.edge_shift, batch=g.batch, n_atoms=g.n_atoms)


def test_collate_masks_missing_labels() -> None:
    a = bilayer(n=1, seed=1)
    g_lab = AtomGraph.from_atoms(a, ["C", "B"], 3.0, labels={"energy": -1.5, "forces": np.ones((len(a), 3))})
    g_none = AtomGraph.from_atoms(a, ["C", "B"], 3.0)
    batch = collate([g_none, g_lab])
    assert batch.label_mask["energy"].tolist() == [False, True]
    assert float(batch.labels["energy"][1]) == -1.5
    assert batch.labels["forces"].shape == (2 * len(a), 3)


def test_frame_labels_stress_to_virial() -> None:
    atoms = bilayer(n=1)
    stress = np.array([[0.1, 0.02, 0.0], [0.02, -0.05, 0.01], [0.0, 0.01, 0.03]])
    voigt = stress.reshape(-1)[[0, 4, 8, 5, 2, 1]]
    atoms.calc = SinglePointCalculator(atoms, energy=-3.0, forces=np.zeros((4, 3)), stress=voigt)
    labels = frame_labels(atoms)
    np.testing.assert_allclose(labels["virial"], -stress * atoms.get_volume(), rtol=1e-14)
    assert float(labels["energy"]) == -3.0
    cluster = Atoms("C", positions=[[0, 0, 0]])
    cluster.calc = SinglePointCalculator(cluster, stress=voigt)
    with pytest.raises(ValueError, match="non-zero volume"):
        frame_labels(cluster)


def test_extxyz_and_deepmd_npy_fixture_agree() -> None:
    xyz = read_frames(TRAIN_XYZ)
    npy = read_frames(NPY_DIR)
    assert len(xyz) == len(npy) == 40
    key = lambda a: (len(a), round(float(frame_labels(a)["energy"]), 8))  # noqa: E731
    for a, b in zip(sorted(xyz, key=key), sorted(npy, key=key)):
        la, lb = frame_labels(a), frame_labels(b)
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-7)  # extxyz keeps 8 decimals
        for k in ("energy", "forces", "virial"):
            np.testing.assert_allclose(la[k], lb[k], rtol=1e-7, atol=1e-7)


def test_deepmd_npy_roundtrip_and_errors(tmp_path) -> None:
    frames = [f for f in read(TRAIN_XYZ, ":") if len(f) == 16][:3]
    write_deepmd_npy(frames, tmp_path / "sys", ["C"])
    back = read_deepmd_npy(tmp_path / "sys", pbc=(True, True, False))
    assert [tuple(b.pbc) for b in back] == [(True, True, False)] * 3
    for a, b in zip(frames, back):
        for k, v in frame_labels(a).items():
            np.testing.assert_allclose(frame_labels(b)[k], v, rtol=1e-12, atol=1e-12)
    with pytest.raises(FileNotFoundError, match="type.raw"):
        read_deepmd_npy(tmp_path)
    np.save(tmp_path / "sys" / "set.000" / "force.npy", np.zeros((3, 5)))
    with pytest.raises(FormatError, match="force.npy:0: expected 144 values"):
        read_deepmd_npy(tmp_path / "sys")
    (tmp_path / "sys" / "type.raw").write_text("0\n0\nx\n")
    with pytest.raises(FormatError, match="type.raw:3: expected integer"):
        read_deepmd_npy(tmp_path / "sys")
    (tmp_path / "broken.extxyz").write_text("3\nLattice=oops\nC 0 0\n")
    with pytest.raises(FormatError, match="broken.extxyz"):
        read_frames(tmp_path / "broken.extxyz")
    with pytest.raises(ValueError, match="same symbols"):
        write_deepmd_npy([frames[0], bilayer(n=1)], tmp_path / "mixed", ["C", "B"])


def test_load_graphs_labels_and_cutoff() -> None:
    graphs = load_graphs([TRAIN_XYZ], ["C"], 3.0)
    assert len(graphs) == 40
    g = graphs[0]
    assert set(g.labels) == {"energy", "forces", "virial"}
    assert g.positions.dtype == torch.float64
    assert float(g.edge_vectors().norm(dim=-1).max()) < 3.0
