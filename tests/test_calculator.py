"""WanderCalculator: equal to the model's forward, F = -dE/dx and stress = dE/dstrain / V by finite
differences through the ASE interface, neighbour-list skin, no mutation of the input atoms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from fixtures.ff.helpers import TRAIN_XYZ, bilayer, tiny_model_config
from wander.calculator import WanderCalculator
from wander.data.graph import AtomGraph
from wander.nn.model import ForceField
from wander.sim.evaluation import build_neighbor_list, compute_descriptors

TOL = 1e-10


def stiff_model(scale: float = 50.0, type_map=("C", "B")) -> ForceField:
    """Tiny float64 model with data statistics and fitting outputs scaled up (forces ~0.1-1 eV/A)."""
    from ase.io import read

    model = ForceField.from_config(tiny_model_config(type_map=type_map, rcut=4.5, rcut_smth=1.0)).eval()
    frames = read(TRAIN_XYZ, ":8")
    model.compute_statistics([AtomGraph.from_atoms(f, model.type_map, model.rcut) for f in frames])
    with torch.no_grad():
        for net in model.fitting.nets:
            net.layers[-1].matrix.mul_(scale)
    return model


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny graphs: one torch thread (thread spin-waits dominate on a shared machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model() -> ForceField:
    return stiff_model()


@pytest.fixture
def atoms() -> Atoms:
    return bilayer(2, rattle=0.08, seed=3)


@pytest.mark.parametrize("chunk", [1, 5, 10_000])
def test_equals_model_forward(model, atoms, chunk):
    out = model(AtomGraph.from_atoms(atoms, model.type_map, model.rcut))
    calc = WanderCalculator(model, chunk_atoms=chunk)
    atoms.calc = calc
    assert atoms.get_potential_energy() == pytest.approx(float(out["energy"][0]), abs=TOL)
    assert atoms.get_potential_energy(force_consistent=True) == atoms.get_potential_energy()
    np.testing.assert_allclose(atoms.get_potential_energies(), out["atom_energy"].numpy(), atol=TOL)
    np.testing.assert_allclose(atoms.get_forces(), out["forces"].numpy(), atol=TOL)
    np.testing.assert_allclose(atoms.get_stress(voigt=False), out["stress"][0].numpy(), atol=TOL)
    assert np.abs(atoms.get_forces()).max() > 0.05  # the checks above compare non-trivial numbers


def test_forces_are_minus_energy_gradient(model, atoms):
    atoms.calc = WanderCalculator(model)
    idx = [0, 5, 9, 14]  # both species, both layers
    numeric = calculate_numerical_forces(atoms, eps=1e-4, iatoms=idx)
    np.testing.assert_allclose(atoms.get_forces()[idx], numeric, atol=2e-6)
    assert np.abs(numeric).max() > 0.05


def test_stress_matches_strain_derivative(model, atoms):
    """ASE's numerical stress strains the whole cell (vacuum included) and divides by its volume."""
    atoms.calc = WanderCalculator(model)
    numeric = calculate_numerical_stress(atoms, eps=1e-6, voigt=True)
    analytic = atoms.get_stress(voigt=True)
    np.testing.assert_allclose(analytic, numeric, atol=1e-7)
    assert np.abs(analytic).max() > 1e-4
    # 2D cell: the volume includes the vacuum, so doubling c halves the stress (same energy and forces)
    taller = atoms.copy()
    taller.cell[2] *= 2.0
    taller.calc = WanderCalculator(model)
    assert taller.get_potential_energy() == pytest.approx(atoms.get_potential_energy(), abs=TOL)
    np.testing.assert_allclose(taller.get_stress(), 0.5 * analytic, atol=1e-12)


def test_input_atoms_not_mutated(model, atoms):
    before = atoms.copy()
    arrays = {k: v.copy() for k, v in atoms.arrays.items()}
    atoms.calc = WanderCalculator(model)
    atoms.get_forces()
    atoms.get_stress()
    assert atoms == before
    assert atoms.info == before.info
    for k, v in arrays.items():
        np.testing.assert_array_equal(atoms.arrays[k], v)
    f = atoms.get_forces()
    f[:] = 0.0  # the caller's copy is independent of the cached results
    assert np.abs(atoms.get_forces()).max() > 0


def test_skin_reuses_list_and_gives_identical_results(model, atoms):
    skinned = WanderCalculator(model, skin=1.0)
    atoms.calc = skinned
    atoms.get_forces()
    rng = np.random.default_rng(0)
    moved = atoms.copy()
    moved.positions += rng.uniform(-0.2, 0.2, moved.positions.shape)  # < skin / 2 = 0.5 A per atom
    moved.calc = skinned
    f_skin, s_skin, e_skin = moved.get_forces(), moved.get_stress(), moved.get_potential_energy()
    assert skinned.n_builds == 1
    fresh = moved.copy()
    fresh.calc = WanderCalculator(model)
    np.testing.assert_allclose(f_skin, fresh.get_forces(), atol=TOL)
    np.testing.assert_allclose(s_skin, fresh.get_stress(), atol=TOL)
    assert e_skin == pytest.approx(fresh.get_potential_energy(), abs=TOL)
    far = moved.copy()
    far.positions[0] += [0.6, 0.0, 0.0]
    far.calc = skinned
    far.get_forces()
    assert skinned.n_builds == 2
    no_skin = WanderCalculator(model)
    for _ in range(2):
        atoms.positions[0, 0] += 1e-3
        atoms.calc = no_skin
        atoms.get_forces()
    assert no_skin.n_builds == 2


def test_stress_refused_without_volume(model):
    mol = Atoms("C4", positions=[[0, 0, 0], [1.4, 0, 0], [0, 1.4, 0], [0, 0, 1.4]])
    mol.calc = WanderCalculator(model)
    e = mol.get_potential_energy()
    assert np.isfinite(e)
    with pytest.raises(PropertyNotImplementedError):
        mol.get_stress()


def test_bad_inputs(model, atoms):
    with pytest.raises(ValueError, match="skin"):
        WanderCalculator(model, skin=-1.0)
    with pytest.raises(ValueError, match="chunk_atoms"):
        WanderCalculator(model, chunk_atoms=0)
    with pytest.raises(TypeError, match="ForceField"):
        WanderCalculator(torch.nn.Linear(2, 2))
    with pytest.raises(FileNotFoundError):
        WanderCalculator("/nonexistent/model.pt")
    atoms.symbols[0] = "N"
    atoms.calc = WanderCalculator(model)
    with pytest.raises(ValueError, match="type_map"):
        atoms.get_potential_energy()


def test_chunked_descriptors_equal_full(model, atoms):
    nl = build_neighbor_list(atoms, model.rcut)
    ref, _ = model.compute_descriptor(AtomGraph.from_atoms(atoms, model.type_map, model.rcut))
    for chunk in (1, 7, 100):
        np.testing.assert_allclose(compute_descriptors(model, atoms, nl, chunk_atoms=chunk).numpy(),
                                   ref.detach().numpy(), atol=TOL)


def test_float32_precision_matches_float64(model, atoms):
    """A float32 copy of the network gives the float64 results to float32 round-off; the model itself
    stays float64 and an unknown precision is refused."""
    ref = atoms.copy()
    ref.calc = WanderCalculator(model)
    low = atoms.copy()
    low.calc = WanderCalculator(model, precision="float32", chunk_atoms=5)
    assert low.calc.model.dtype == torch.float32 and model.dtype == torch.float64
    f64, f32 = ref.get_forces(), low.get_forces()
    assert np.abs(f32 - f64).max() <= 1e-5 * max(1.0, np.abs(f64).max())
    assert np.abs(f32 - f64).max() > 0          # it really ran in float32
    assert low.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-4 * len(atoms))
    np.testing.assert_allclose(low.get_stress(), ref.get_stress(), atol=1e-6)
    with pytest.raises(ValueError, match="precision"):
        WanderCalculator(model, precision="float16")
