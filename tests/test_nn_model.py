"""Physics of the force field: derivatives, symmetries, smoothness, locality, batching, reference descriptor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms

from fixtures.ff.helpers import bilayer, random_rotation, rotation_z, tiny_model_config
from fixtures.ff.helpers import one_thread  # noqa: F401  (autouse fixture)
from wander.data.graph import AtomGraph, collate
from wander.data.neighbors import neighbor_list
from wander.nn.fitting import energy_bias_from_data
from wander.nn.model import ForceField

TYPE_MAP = ["C", "B"]
FD_STEP = 1e-5
FD_TOL = 1e-7        # eV/A, central differences with h = 1e-5 in float64
SYM_TOL = 1e-10      # symmetry checks, float64


def _model(**kw) -> ForceField:
    model = ForceField.from_config(tiny_model_config(**kw)).eval()
    model.compute_statistics([AtomGraph.from_atoms(bilayer(n=2, seed=9), TYPE_MAP, model.rcut)])
    with torch.no_grad():  # distinct per-type biases make type mix-ups visible
        model.fitting.bias_atom_e.copy_(torch.tensor([-7.0, -6.0], dtype=torch.float64))
    return model


@pytest.fixture(scope="module")
def model() -> ForceField:
    return _model()


def _eval(model: ForceField, atoms: Atoms, **kw) -> dict[str, np.ndarray]:
    out = model(AtomGraph.from_atoms(atoms, model.type_map, model.rcut), **kw)
    return {k: v[0].numpy() if k in ("energy", "virial", "stress") else v.numpy() for k, v in out.items()}


def _energy(model: ForceField, atoms: Atoms) -> float:
    return float(_eval(model, atoms, compute_forces=False, compute_virial=False)["energy"])


def _cluster(seed: int = 0) -> Atoms:
    """Open 10-atom cluster (no cell, pbc False)."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, 4.0, (10, 3))
    atoms = Atoms("C7B3", positions=pos)
    return atoms


# ------------------------------------------------------------------ derivatives
def test_forces_equal_central_finite_differences(model) -> None:
    atoms = bilayer(n=1, rattle=0.08, seed=2, boron=(1,))
    forces = _eval(model, atoms)["forces"]
    fd = np.zeros_like(forces)
    for k in range(len(atoms)):
        for c in range(3):
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[k, c] += sign * FD_STEP
                fd[k, c] -= sign * _energy(model, moved) / (2 * FD_STEP)
    assert np.abs(forces).max() > 1e-3
    np.testing.assert_allclose(forces, fd, atol=FD_TOL, rtol=0)


@pytest.mark.parametrize("pbc", [(True, True, False), (True, True, True)])
def test_virial_and_stress_equal_strain_finite_differences(model, pbc) -> None:
    atoms = bilayer(n=1, rattle=0.08, seed=3, boron=(2,), vacuum_c=7.0)  # c < 2 rcut: z images count
    atoms.pbc = pbc
    out = _eval(model, atoms)
    fd = np.zeros((3, 3))
    cell0 = np.array(atoms.cell)
    for a in range(3):
        for b in range(3):
            for sign in (1, -1):
                eps = np.zeros((3, 3))
                eps[a, b] = sign * FD_STEP
                strained = atoms.copy()
                strained.set_cell(cell0 @ (np.eye(3) + eps), scale_atoms=True)
                fd[a, b] += sign * _energy(model, strained) / (2 * FD_STEP)
    virial_fd = -fd  # W = -dE/d(eps); the strain derivative of a rotation-invariant E is symmetric
    assert np.abs(out["virial"]).max() > 1e-2
    np.testing.assert_allclose(out["virial"], virial_fd, atol=FD_TOL * 10, rtol=0)
    np.testing.assert_allclose(out["virial"], out["virial"].T, atol=1e-12)
    np.testing.assert_allclose(out["stress"], -out["virial"] / atoms.get_volume(), rtol=1e-12)


def test_open_system_stress_is_nan_but_virial_finite(model) -> None:
    out = _eval(model, _cluster())
    assert np.isfinite(out["virial"]).all() and np.isnan(out["stress"]).all()


# ------------------------------------------------------------------ symmetries
def _rotated(atoms: Atoms, rot: np.ndarray) -> Atoms:
    """Copy of ``atoms`` with positions and cell rotated by ``rot``."""
    turned = atoms.copy()
    turned.positions = atoms.positions @ rot.T
    turned.cell = np.array(atoms.cell) @ rot.T
    return turned


def test_rotation_about_z_of_2d_slab(model) -> None:
    rng = np.random.default_rng(1)
    atoms = bilayer(n=2, seed=5)
    rot = rotation_z(rng.uniform(0, 2 * np.pi))
    a, b = _eval(model, atoms), _eval(model, _rotated(atoms, rot))
    assert abs(a["energy"] - b["energy"]) < SYM_TOL
    np.testing.assert_allclose(b["forces"], a["forces"] @ rot.T, atol=SYM_TOL)
    np.testing.assert_allclose(b["virial"], rot @ a["virial"] @ rot.T, atol=SYM_TOL)


@pytest.mark.parametrize("system", ["cluster", "rotated_cell"])
def test_general_rotation(model, system) -> None:
    rng = np.random.default_rng(2)
    rot = random_rotation(rng)
    atoms = _cluster() if system == "cluster" else bilayer(n=1, seed=6, vacuum_c=8.0)
    if system == "rotated_cell":
        atoms.pbc = True  # a fully periodic cell may point anywhere
    a, b = _eval(model, atoms), _eval(model, _rotated(atoms, rot))
    assert abs(a["energy"] - b["energy"]) < SYM_TOL
    np.testing.assert_allclose(b["forces"], a["forces"] @ rot.T, atol=SYM_TOL)
    assert np.abs(a["forces"]).max() > 1e-3


def test_translation_and_wrapping(model) -> None:
    atoms = bilayer(n=2, seed=7)
    moved = atoms.copy()
    moved.positions += np.array([1.7, -0.9, 0.6])
    moved.wrap()  # in-plane wrapping changes the images, not the physics
    a, b = _eval(model, atoms), _eval(model, moved)
    assert abs(a["energy"] - b["energy"]) < SYM_TOL
    np.testing.assert_allclose(a["forces"], b["forces"], atol=SYM_TOL)
    np.testing.assert_allclose(a["virial"], b["virial"], atol=SYM_TOL)


def test_permutation(model) -> None:
    atoms = bilayer(n=2, seed=8)
    perm = np.random.default_rng(3).permutation(len(atoms))
    shuffled = atoms[perm]
    a, b = _eval(model, atoms), _eval(model, shuffled)
    assert abs(a["energy"] - b["energy"]) < SYM_TOL
    np.testing.assert_allclose(b["forces"], a["forces"][perm], atol=SYM_TOL)
    np.testing.assert_allclose(b["atom_energy"], a["atom_energy"][perm], atol=SYM_TOL)


def test_slab_and_periodic_with_thick_vacuum_agree(model) -> None:
    slab = bilayer(n=2, seed=10, vacuum_c=20.0)
    bulk = slab.copy()
    bulk.pbc = True
    a, b = _eval(model, slab), _eval(model, bulk)
    assert abs(a["energy"] - b["energy"]) < SYM_TOL
    np.testing.assert_allclose(a["forces"], b["forces"], atol=SYM_TOL)


# ------------------------------------------------------------------ smoothness and locality
def test_energy_and_force_continuous_as_neighbour_crosses_cutoff(model) -> None:
    rc = model.rcut
    base = Atoms("CB", positions=[[0, 0, 0], [1.3, 0.2, -0.1]])
    isolated = Atoms("C", positions=[[0, 0, 0]]), Atoms("B", positions=[[0, 0, 0]])

    def with_third(r: float) -> Atoms:
        atoms = base.copy()
        atoms += Atoms("C", positions=[[-r, 0.0, 0.0]])  # distance r from atom 0, > rc from atom 1
        return atoms

    e_in, e_out = _eval(model, with_third(rc - 1e-7)), _eval(model, with_third(rc + 1e-7))
    assert abs(e_in["energy"] - e_out["energy"]) < 1e-12
    np.testing.assert_allclose(e_in["forces"], e_out["forces"], atol=1e-10)
    # beyond the cutoff the third atom is a free atom: energies add exactly
    e_free = _energy(model, base) + _energy(model, isolated[0])
    assert abs(e_out["energy"] - e_free) < 1e-12
    # and inside the switching region it does interact
    assert abs(_energy(model, with_third(rc - 0.8)) - e_free) > 1e-6
    assert np.abs(_eval(model, Atoms("C2", positions=[[0, 0, 0], [rc - 1e-4, 0, 0]]))["forces"]).max() < 1e-8


def test_energy_smooth_when_neighbour_count_exceeds_sel() -> None:
    """More neighbours than sel: no truncation, so E stays smooth when neighbours swap distance order.

    A list truncated to the sel nearest neighbours (DeePMD-kit) would jump when the moving atom
    passes the third-nearest one at 1.6 Angstrom.
    """
    small_sel = _model(sel=[3, 3])
    small_sel.descriptor.set_stats(_model().descriptor.davg, _model().descriptor.dstd)
    energies = []
    for r in np.linspace(1.56, 1.64, 17):
        atoms = Atoms("C5", positions=[[0, 0, 0], [1.4, 0, 0], [0, 1.5, 0], [0, 0, 1.6], [-r * 0.6, -r * 0.8, 0]])
        energies.append(_energy(small_sel, atoms))
    second_diff = np.abs(np.diff(energies, 2))
    assert np.ptp(energies) > 1e-6   # the moving atom matters
    assert second_diff.max() < 1e-3 * np.ptp(energies)


def test_isolated_atoms_and_padding_give_finite_gradients(model) -> None:
    lonely = Atoms("CB", positions=[[0, 0, 0], [30, 0, 0]], cell=[40, 40, 40], pbc=True)
    graph = AtomGraph.from_atoms(lonely, TYPE_MAP, model.rcut)
    assert graph.edge_index.shape[1] == 0
    model.train()
    try:
        out = model(graph, create_graph=True)
        loss = out["energy"].sum() ** 2 + out["forces"].pow(2).sum() + out["virial"].pow(2).sum()
        loss.backward()
    finally:
        model.eval()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert torch.all(out["forces"] == 0)
    model.zero_grad(set_to_none=True)
    # an isolated atom's energy is its padding-only value plus bias, identical for both atoms of a type
    e = model(AtomGraph.from_atoms(Atoms("C", positions=[[0, 0, 0]]), TYPE_MAP, model.rcut))["energy"]
    assert torch.isclose(out["atom_energy"][0], e[0], atol=1e-13)


def test_coincident_atoms_do_not_produce_nan(model) -> None:
    atoms = Atoms("CC", positions=[[0, 0, 0], [0, 0, 0]])
    graph = AtomGraph.from_atoms(atoms, TYPE_MAP, model.rcut)
    assert graph.edge_index.shape[1] == 2
    out = model(graph)
    assert torch.isfinite(out["forces"]).all() and torch.isfinite(out["energy"]).all()


def test_batch_equals_per_structure(model) -> None:
    frames = [bilayer(n=1, seed=1), _cluster(3), bilayer(n=2, seed=2)]
    frames[2].pbc = True
    single = [_eval(model, a) for a in frames]
    batch = collate([AtomGraph.from_atoms(a, TYPE_MAP, model.rcut) for a in frames])
    out = model(batch)
    offsets = np.cumsum([0] + [len(a) for a in frames])
    for k, ref in enumerate(single):
        assert abs(float(out["energy"][k]) - ref["energy"]) < 1e-12
        np.testing.assert_allclose(out["forces"][offsets[k]:offsets[k + 1]].numpy(), ref["forces"], atol=1e-12)
        np.testing.assert_allclose(out["virial"][k].numpy(), ref["virial"], atol=1e-12)


def test_float32_model_agrees_with_float64() -> None:
    cfg64 = tiny_model_config()
    cfg32 = tiny_model_config()
    cfg32["descriptor"]["precision"] = "float32"
    m64 = ForceField.from_config(cfg64).eval()
    m32 = ForceField.from_config(cfg32).eval()
    m32.load_state_dict({k: v.to(torch.float32) for k, v in m64.state_dict().items()})
    atoms = bilayer(n=2, seed=12)
    o64, o32 = m64(AtomGraph.from_atoms(atoms, TYPE_MAP, 4.0)), m32(AtomGraph.from_atoms(atoms, TYPE_MAP, 4.0))
    assert o32["forces"].dtype == torch.float32
    assert torch.allclose(o32["energy"].double(), o64["energy"], rtol=1e-5)
    assert torch.allclose(o32["forces"].double(), o64["forces"], atol=1e-4 * float(o64["forces"].abs().max()))


# ------------------------------------------------------------------ reference implementation
def _numpy_se_a(model: ForceField, atoms: Atoms) -> np.ndarray:
    """DeePMD se_e2_a in NumPy with an explicit per-type padded, distance-sorted neighbour matrix."""
    d = model.descriptor
    sel, ntypes, rs, rc = d.sel, d.ntypes, d.rcut_smth, d.rcut
    species = np.array([model.type_map.index(s) for s in atoms.get_chemical_symbols()])
    nl = neighbor_list(atoms, rc)
    vec = nl.vectors(atoms.positions, atoms.cell)
    davg, dstd = d.davg.numpy(), d.dstd.numpy()
    params = [[(l.matrix.detach().numpy(), l.bias.detach().numpy(),
                None if l.idt is None else l.idt.detach().numpy()) for l in net.layers] for net in d.embeddings]

    def embed(net_params, x):
        for w, b, idt in net_params:
            y = np.tanh(x @ w + b)
            y = y * idt if idt is not None else y
            x = y + x if w.shape[0] == w.shape[1] else (y + np.concatenate([x, x], -1) if w.shape[1] == 2 * w.shape[0] else y)
        return x

    out = []
    for i in range(len(atoms)):
        rows = np.zeros((sum(sel), 4))  # empty slots: zero rows
        types_slot = np.repeat(np.arange(ntypes), sel)
        for t in range(ntypes):
            mine = np.flatnonzero((nl.i == i) & (species[nl.j] == t))
            mine = mine[np.argsort(np.linalg.norm(vec[mine], axis=1))][: sel[t]]
            r = np.linalg.norm(vec[mine], axis=1)
            u = np.clip((r - rs) / (rc - rs), 0, 1)
            s = (u**3 * (-6 * u**2 + 15 * u - 10) + 1) / r
            block = np.column_stack([s, s[:, None] * vec[mine] / r[:, None]])
            rows[sum(sel[:t]): sum(sel[:t]) + len(mine)] = block
        rr = (rows - davg[species[i]]) / dstd[species[i]]
        g = np.stack([embed(params[d.net_index(species[i], t)], rr[k, :1]) for k, t in enumerate(types_slot)])
        tmat = rr.T @ g / sum(sel)
        out.append((tmat.T @ tmat[:, : d.axis_neuron]).ravel())
    return np.array(out)


@pytest.mark.parametrize("type_one_side", [False, True])
def test_descriptor_equals_numpy_reference(type_one_side) -> None:
    model = _model(type_one_side=type_one_side)
    atoms = bilayer(n=1, seed=13, boron=(0, 2))
    desc, _ = model.compute_descriptor(AtomGraph.from_atoms(atoms, TYPE_MAP, model.rcut))
    ref = _numpy_se_a(model, atoms)
    np.testing.assert_allclose(desc.detach().numpy(), ref, rtol=1e-11, atol=1e-13)
    assert np.abs(ref).max() > 1e-3


def test_energy_bias_least_squares() -> None:
    counts = np.array([[4, 0], [2, 2], [1, 3], [3, 1]])
    true = np.array([-7.5, -6.25])
    np.testing.assert_allclose(energy_bias_from_data(counts, counts @ true), true, rtol=1e-12)
    only_c = energy_bias_from_data(np.array([[4, 0], [8, 0]]), np.array([-30.0, -60.0]))
    np.testing.assert_allclose(only_c, [-7.5, 0.0])


def test_bad_inputs_raise(model) -> None:
    g = AtomGraph.from_atoms(bilayer(n=1), TYPE_MAP, model.rcut)
    with pytest.raises(ValueError, match="species"):
        model.descriptor(g.edge_vectors(), g.edge_index, g.species + 5)
    with pytest.raises(ValueError, match="edge_vec"):
        model.descriptor(g.edge_vectors()[:, :2], g.edge_index, g.species)
    with pytest.raises(ValueError, match="sel"):
        ForceField.from_config(tiny_model_config(sel=[10]))
