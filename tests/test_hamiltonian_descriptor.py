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


@pytest.mark.parametrize("lmax", [2, 4])
def test_pair_product_equals_the_e3nn_tensor_product(lmax):
    """PairFeatures.product (channel mixing per atom, CG per pair) gives the numbers of the e3nn
    fully connected tensor product it replaces, for every output irrep of both parities."""
    from e3nn import o3

    from wander.nn.hamiltonian.features import PairFeatures, natural_irreps, split_irreps

    torch.manual_seed(0)
    dens = natural_irreps(3, lmax)
    needed = {(l, p) for l in range(lmax + 1) for p in (1, -1)}
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # so that the module's own CG constants are float64 too
    try:
        pf = PairFeatures(dens, lmax, needed, tp_channels=4)
    finally:
        torch.set_default_dtype(default)
    density = torch.randn(7, dens.dim, dtype=torch.float64)
    index = torch.randint(0, 7, (2, 40))
    vec = torch.randn(40, 3, dtype=torch.float64)
    sh = o3.spherical_harmonics(pf.irreps_sh, vec, normalize=True, normalization="component")
    ref = split_irreps(pf.tp(sh, torch.cat([density[index[0]], density[index[1]]], 1)), pf.irreps_tp)
    fast = pf.product(sh, density, index)
    assert set(fast) == set(ref) and len(ref) >= 2 * lmax
    for key in ref:
        assert fast[key].shape == ref[key].shape
        assert torch.allclose(fast[key], ref[key], atol=1e-12, rtol=0), key
    assert max(float(v.abs().max()) for v in ref.values()) > 0.1
