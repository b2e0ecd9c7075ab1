"""The heads on top of the shared se_e2_a descriptor: shared edge list, frozen vs joint gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("e3nn")

from wander.data.graph import AtomGraph  # noqa: E402
from wander.nn.descriptor import DescrptSeA  # noqa: E402
from wander.nn.hamiltonian import HamiltonianHeads, HeadsConfig, hamiltonian_pairs  # noqa: E402
from wander.structures import bilayer  # noqa: E402

RCUT = 5.0


@pytest.fixture(scope="module")
def setup():
    atoms = bilayer("graphene", stacking="AB", vacuum=15.0).repeat((2, 2, 1))
    atoms.rattle(0.04, seed=4)
    descriptor = DescrptSeA(ntypes=1, rcut=RCUT, rcut_smth=0.5, sel=[60], neuron=(4, 8), axis_neuron=2, seed=1)
    return atoms, descriptor


def _blocks(atoms, descriptor, mode, rotation=None):
    atoms = atoms.copy()
    if rotation is not None:
        atoms.positions = atoms.positions @ rotation.T
        atoms.cell = atoms.cell.array @ rotation.T
    cfg = HeadsConfig(type_map=("C",), orbitals={"C": "pz"}, descriptor_dim=descriptor.dim_out, r_cut=RCUT,
                      r_env=4.0, density_channels=3, tp_channels=3, n_rbf=6, hidden=(12,),
                      descriptor_mode=mode, seed=2)
    heads = HamiltonianHeads(cfg)
    graph = AtomGraph.from_atoms(atoms, ["C"], RCUT)
    edge_vec = graph.edge_vectors()
    d = descriptor(edge_vec, graph.edge_index, graph.species)
    pairs = hamiltonian_pairs(atoms, cfg.r_cut, cfg.r_near)
    # the force field's edge list (cutoff 5 A) doubles as the density's (r_env = 4 A)
    out = heads(d, graph.species, edge_vec, graph.edge_index, torch.as_tensor(np.stack([pairs.i, pairs.j])),
                torch.as_tensor(pairs.vectors(atoms)), torch.as_tensor(atoms.arrays["layer"]))
    return out


@pytest.mark.parametrize("mode", ["frozen", "joint"])
def test_gradients_reach_descriptor_only_in_joint_mode(setup, mode):
    atoms, descriptor = setup
    descriptor.zero_grad(set_to_none=True)
    _blocks(atoms, descriptor, mode).square().sum().backward()
    grads = [p.grad for p in descriptor.parameters()]
    if mode == "frozen":
        assert all(g is None for g in grads)
    else:
        assert any(g is not None and float(g.abs().max()) > 0 for g in grads)


def test_pz_blocks_with_real_descriptor_are_invariant_about_z(setup):
    atoms, descriptor = setup
    phi = 0.83
    rot = np.array([[np.cos(phi), -np.sin(phi), 0], [np.sin(phi), np.cos(phi), 0], [0, 0, 1]])
    with torch.no_grad():
        ref = _blocks(atoms, descriptor, "frozen")
        got = _blocks(atoms, descriptor, "frozen", rot)
    assert float(ref.abs().max()) > 1e-3
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-12)
