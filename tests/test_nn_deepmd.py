"""Optional cross-check against DeePMD-kit's PyTorch se_e2_a: same weights give the same numbers.

Runs only where ``deepmd.pt`` imports (DeePMD-kit 3.x; see docs/model.md for the install recipe).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import graphene

from fixtures.ff.helpers import one_thread  # noqa: F401  (autouse fixture)
from wander.data.graph import AtomGraph
from wander.nn.env_mat import EnvStatAccumulator, environment_rows
from wander.nn.model import ForceField

pytestmark = pytest.mark.deepmd

dp_descriptor = pytest.importorskip("deepmd.pt.model.descriptor")
dp_nlist = pytest.importorskip("deepmd.pt.utils.nlist")
dp_fitting = pytest.importorskip("deepmd.pt.model.task.ener")

RCUT, RCUT_SMTH = 4.5, 1.0
SEL = [40, 30]
NEURON, AXIS, FIT = [6, 12, 24], 4, [16, 16]
TOL = 1e-10


def _bilayer() -> Atoms:
    """Rattled 2x2 AB bilayer with one B atom, fully periodic with 14 Angstrom of vacuum."""
    a = graphene(size=(2, 2, 1), vacuum=7.0)
    b = a.copy()
    b.positions[:, 2] += 3.35
    b.positions[:, 0] += 1.42
    atoms = a + b
    atoms.pbc = True
    atoms.rattle(0.08, seed=3)
    atoms.symbols[[0, 5, 11]] = "B"
    return atoms


def _models(type_one_side: bool):
    cfg = {
        "type_map": ["C", "B"],
        "descriptor": {"rcut": RCUT, "rcut_smth": RCUT_SMTH, "sel": SEL, "neuron": NEURON,
                       "axis_neuron": AXIS, "resnet_dt": True, "type_one_side": type_one_side, "seed": 7},
        "fitting_net": {"neuron": FIT, "resnet_dt": True, "seed": 8},
    }
    ours = ForceField.from_config(cfg).eval()
    # non-trivial statistics
    davg = torch.tensor([[0.11, 0.0, 0.0, 0.0], [0.07, 0.0, 0.0, 0.0]], dtype=torch.float64)
    dstd = torch.tensor([[0.21, 0.13, 0.13, 0.13], [0.17, 0.09, 0.09, 0.09]], dtype=torch.float64)
    ours.descriptor.set_stats(davg, dstd)
    ours.fitting.bias_atom_e.copy_(torch.tensor([-9.1, -7.3], dtype=torch.float64))

    theirs = dp_descriptor.DescrptSeA(
        RCUT, RCUT_SMTH, SEL, neuron=NEURON, axis_neuron=AXIS, resnet_dt=True,
        type_one_side=type_one_side, precision="float64", seed=1,
    )
    ntypes = 2
    nnei = sum(SEL)
    with torch.no_grad():
        theirs.sea.mean.copy_(davg[:, None, :].expand(ntypes, nnei, 4))
        theirs.sea.stddev.copy_(dstd[:, None, :].expand(ntypes, nnei, 4))
        for idx, net in enumerate(theirs.sea.filter_layers.networks):
            if type_one_side:
                mine = ours.descriptor.embeddings[idx]
            else:  # DeePMD: idx = centre + neighbour * ntypes
                mine = ours.descriptor.embeddings[ours.descriptor.net_index(idx % ntypes, idx // ntypes)]
            _copy_layers(mine.layers, net.layers)
    fit = dp_fitting.EnergyFittingNet(ntypes, ours.descriptor.dim_out, neuron=FIT, resnet_dt=True,
                                      precision="float64", mixed_types=False, seed=2)
    with torch.no_grad():
        for t, net in enumerate(fit.filter_layers.networks):
            _copy_layers(ours.fitting.nets[t].layers, net.layers)
        fit.bias_atom_e.copy_(ours.fitting.bias_atom_e.reshape(fit.bias_atom_e.shape))
    return ours, theirs, fit


def _copy_layers(src, dst) -> None:
    assert len(src) == len(dst)
    for a, b in zip(src, dst):
        assert b.matrix.shape == a.matrix.shape
        b.matrix.copy_(a.matrix)
        b.bias.copy_(a.bias)
        assert (a.idt is None) == (b.idt is None)
        if a.idt is not None:
            b.idt.copy_(a.idt)


def _deepmd_eval(theirs, fit, atoms: Atoms):
    coord = torch.tensor(atoms.positions.reshape(1, -1), dtype=torch.float64, requires_grad=True)
    atype = torch.tensor(np.where(np.array(atoms.get_chemical_symbols()) == "C", 0, 1)).reshape(1, -1)
    box = torch.tensor(np.array(atoms.cell).reshape(1, 9), dtype=torch.float64)
    ext_coord, ext_atype, mapping, nlist = dp_nlist.extend_input_and_build_neighbor_list(
        coord, atype, RCUT, SEL, mixed_types=False, box=box,
    )
    desc = theirs(ext_coord, ext_atype, nlist, mapping)[0]
    atom_e = fit(desc, atype)["energy"]
    energy = atom_e.sum()
    (grad,) = torch.autograd.grad(energy, coord)
    return desc[0].detach(), atom_e[0, :, 0].detach(), energy.detach(), -grad.reshape(-1, 3)


@pytest.mark.parametrize("type_one_side", [False, True])
def test_same_weights_same_descriptor_energy_forces(type_one_side: bool) -> None:
    atoms = _bilayer()
    ours, theirs, fit = _models(type_one_side)
    graph = AtomGraph.from_atoms(atoms, ours.type_map, RCUT)
    d_ref, e_atom_ref, e_ref, f_ref = _deepmd_eval(theirs, fit, atoms)
    desc, _ = ours.compute_descriptor(graph)
    out = ours(graph)
    assert torch.allclose(desc, d_ref, rtol=0, atol=TOL * d_ref.abs().max())
    assert torch.allclose(out["atom_energy"], e_atom_ref, rtol=0, atol=TOL)
    assert torch.allclose(out["energy"][0], e_ref, rtol=0, atol=TOL)
    assert torch.allclose(out["forces"], f_ref, rtol=0, atol=TOL)
    # the comparison is not vacuous: the descriptor and forces are far from zero
    assert d_ref.abs().max() > 1e-3 and f_ref.abs().max() > 1e-2


def test_environment_statistics_match_deepmd() -> None:
    from deepmd.dpmodel.utils.env_mat_stat import EnvMatStatSe

    atoms = _bilayer()
    ours, theirs, _ = _models(type_one_side=False)
    frames = [atoms]
    other = atoms.copy()
    other.rattle(0.05, seed=9)
    frames.append(other)
    acc = EnvStatAccumulator(2, SEL)
    for a in frames:
        g = AtomGraph.from_atoms(a, ours.type_map, RCUT)
        rows, _ = environment_rows(g.edge_vectors(), RCUT_SMTH, RCUT)
        acc.add(rows, g.edge_index, g.species)
    davg, dstd = acc.compute()

    data = [{
        "coord": torch.tensor(np.stack([a.positions.reshape(-1) for a in frames])),
        "atype": torch.tensor(np.stack([np.where(np.array(a.get_chemical_symbols()) == "C", 0, 1) for a in frames])),
        "box": torch.tensor(np.stack([np.array(a.cell).reshape(-1) for a in frames])),
    }]
    stat = EnvMatStatSe(theirs.sea)
    stat.compute_stats(data)
    mean, std = stat()
    assert mean.shape == (2, sum(SEL), 4) and float(mean[0, 0, 0]) > 0
    assert np.allclose(davg.numpy(), mean[:, 0, :], rtol=1e-12, atol=1e-14)
    assert np.allclose(dstd.numpy(), std[:, 0, :], rtol=1e-12, atol=1e-14)
