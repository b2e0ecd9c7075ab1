"""Relaxation (fixed / in-plane cell), molecular dynamics and memory estimates."""

from __future__ import annotations

import numpy as np
import pytest
from ase.io import read

from fixtures.ff.helpers import bilayer
from fixtures.ff.reference_potential import BilayerPairPotential
from test_calculator import single_thread, stiff_model  # noqa: F401 (autouse fixture)
from wander.calculator import WanderCalculator
from wander.sim.evaluation import build_neighbor_list
from wander.sim.md import run_md
from wander.sim.memory import (InsufficientMemoryError, available_memory, check_memory, estimate_memory,
                               neighbors_per_atom)
from wander.sim.relax import relax
from wander.structures import bilayer as build_bilayer
from wander.structures import twisted_bilayer


def fmax_of(atoms, calc) -> float:
    a = atoms.copy()
    a.calc = calc
    return float(np.linalg.norm(a.get_forces(), axis=1).max())


@pytest.mark.parametrize("optimizer", ["FIRE", "BFGS", "LBFGS"])
def test_relax_lowers_energy_and_reaches_fmax(tmp_path, optimizer):
    start = bilayer(1, rattle=0.05, seed=1, boron=())
    before = start.copy()
    calc = BilayerPairPotential()
    traj = tmp_path / "relax.traj"
    out = relax(start, calc, fmax=0.01, steps=300, optimizer=optimizer, trajectory=traj, progress=False)
    assert start == before  # input untouched
    assert out.info["relax_converged"]
    assert fmax_of(out, BilayerPairPotential()) < 0.01
    e0 = out.info["relax_energy_initial"]
    assert out.get_potential_energy() < e0 - 1e-3
    frames = read(traj, ":")
    assert len(frames) == out.info["relax_steps"] + 1
    assert frames[0].get_potential_energy() == pytest.approx(e0)
    assert frames[-1].get_potential_energy() == pytest.approx(out.get_potential_energy())
    np.testing.assert_array_equal(out.cell, start.cell)
    # every 4th step: frames 0, 4, 8, ... and always the last one
    sparse = tmp_path / "sparse.traj"
    out4 = relax(start, calc, fmax=0.01, steps=300, optimizer=optimizer, trajectory=sparse, traj_interval=4,
                 progress=False)
    n = out4.info["relax_steps"]
    frames4 = read(sparse, ":")
    assert len(frames4) == n // 4 + 1 + (n % 4 != 0)
    assert frames4[-1].get_potential_energy() == pytest.approx(out4.get_potential_energy())
    np.testing.assert_allclose(frames4[1].positions, frames[4].positions)


def test_in_plane_cell_relaxation_keeps_c_and_relieves_stress(capsys):
    start = bilayer(1, rattle=0.0, boron=())
    start.set_cell(np.array(start.cell) * [[1.02], [1.02], [1.0]], scale_atoms=True)  # 2 % in-plane strain
    calc = BilayerPairPotential()
    out = relax(start, calc, fmax=5e-3, steps=300, cell="in-plane", optimizer="BFGS", progress=True)
    assert "fmax=" in capsys.readouterr().err  # progress bar reports the current fmax
    assert out.info["relax_converged"]
    np.testing.assert_array_equal(out.cell[2], start.cell[2])          # c untouched
    np.testing.assert_array_equal(out.cell[:2, 2], [0.0, 0.0])         # a1, a2 stay in plane
    a_out, a_in = np.linalg.norm(out.cell[0]), np.linalg.norm(start.cell[0])
    assert a_out < a_in - 0.02                                           # the stretched cell shrank
    assert out.get_potential_energy() < out.info["relax_energy_initial"]
    s = out.get_stress(voigt=True)
    area_stress = np.abs(s[[0, 1, 5]]) * start.get_volume() / len(start)  # filter's per-atom virial
    assert area_stress.max() < 5e-3
    # a rigid-cell relaxation of the same strained cell stays strained and keeps the in-plane stress
    fixed = relax(start, calc, fmax=5e-3, steps=300, cell="fixed", progress=False)
    assert np.abs(fixed.get_stress()[[0, 1]]).min() > 10 * np.abs(s[[0, 1]]).max()


def test_in_plane_cell_of_a_large_cell_relaxes_in_few_lbfgs_steps():
    """The strain mode is scaled like an atom at any size: a uniformly strained 1,600-atom cell (all
    of its gradient in the cell) relaxes in a few LBFGS steps. With ASE's default factor N the same
    cell would move by ~g / (70 N) in log-strain per step."""
    start = build_bilayer("graphene", stacking="AB", distance=3.4).repeat((20, 20, 1))
    start.set_cell(np.array(start.cell) * [[1.01], [1.01], [1.0]], scale_atoms=True)
    calc = BilayerPairPotential()
    out = relax(start, calc, fmax=2e-3, steps=60, cell="in-plane", optimizer="LBFGS", progress=False)
    assert out.info["relax_converged"] and out.info["relax_steps"] <= 30
    virial_per_atom = np.abs(out.get_stress(voigt=True)[[0, 1, 5]]) * out.get_volume() / len(out)
    assert virial_per_atom.max() < 2e-3                          # the criterion is per-atom virial
    assert fmax_of(out, calc) < 2e-3
    assert out.info["relax_fmax"] < 2e-3
    # same minimum as a small cell of the same material: the lattice constant does not depend on N
    small = relax(build_bilayer("graphene", stacking="AB", distance=3.4),
                  calc, fmax=2e-4, steps=200, cell="in-plane", optimizer="BFGS", progress=False)
    np.testing.assert_allclose(np.linalg.norm(out.cell[0]) / 20, np.linalg.norm(small.cell[0]), rtol=2e-4)


def test_relax_with_force_field_lowers_energy():
    model = stiff_model()
    start = bilayer(2, rattle=0.08, seed=5)
    with pytest.warns(RuntimeWarning):  # a random network need not have a minimum nearby
        out = relax(start, WanderCalculator(model), fmax=0.02, steps=25, optimizer="FIRE", progress=False)
    assert out.get_potential_energy() < out.info["relax_energy_initial"] - 1e-3
    frames = out.info["relax_steps"]
    assert frames == 25


def test_relax_reports_non_convergence_and_bad_input():
    start = bilayer(1, rattle=0.05, seed=1, boron=())
    with pytest.warns(RuntimeWarning, match="stopped after 1 steps"):
        out = relax(start, BilayerPairPotential(), fmax=1e-6, steps=1, progress=False)
    assert out.info["relax_converged"] is False and out.info["relax_steps"] == 1
    bulk = start.copy()
    bulk.pbc = True
    with pytest.raises(ValueError, match="in-plane"):
        relax(bulk, BilayerPairPotential(), cell="in-plane")
    with pytest.raises(ValueError, match="full"):
        relax(start, BilayerPairPotential(), cell="full")
    with pytest.raises(ValueError, match="optimizer"):
        relax(start, BilayerPairPotential(), optimizer="SD")
    with pytest.raises(ValueError, match="fmax"):
        relax(start, BilayerPairPotential(), fmax=0.0)
    big = bilayer(23, rattle=0.0, boron=())   # 2,116 atoms: a dense BFGS Hessian of 6,348^2 entries
    with pytest.raises(ValueError, match="LBFGS"):
        relax(big, BilayerPairPotential(), optimizer="BFGS")
    with pytest.raises(ValueError, match="cell"):
        relax(start, BilayerPairPotential(), cell="z-only")


def _nve(steps: int) -> tuple[np.ndarray, np.ndarray]:
    model = stiff_model(scale=1.0)
    start = bilayer(2, rattle=0.03, seed=2)
    res = run_md(start, WanderCalculator(model), ensemble="nve", temperature=300.0, timestep=0.5, steps=steps,
                 interval=10, seed=1, progress=False)
    return res.total_energy / len(start), res.potential_energy / len(start)


def test_nve_conserves_energy():
    etot, epot = _nve(300)
    drift = np.abs(etot - etot[0]).max()
    swing = epot.max() - epot.min()
    assert drift < 1e-4                   # eV/atom over 150 fs
    assert swing > 1e-3 and swing > 20 * drift   # while the potential energy really moved


@pytest.mark.slow
def test_nve_conserves_energy_long():
    etot, epot = _nve(1000)
    assert np.abs(etot - etot[0]).max() < 2e-4
    assert epot.max() - epot.min() > 1e-3


def test_md_snapshots_thermostat_and_input(tmp_path):
    start = bilayer(1, rattle=0.02, seed=3, boron=())
    before = start.copy()
    traj = tmp_path / "md.traj"
    res = run_md(start, BilayerPairPotential(), ensemble="langevin", temperature=500, steps=25, interval=10,
                 seed=4, trajectory=traj, progress=False)
    assert start == before and not np.any(start.get_momenta())
    np.testing.assert_allclose(res.time, [0.0, 10.0, 20.0, 25.0])
    assert len(res.snapshots) == 4 == len(read(traj, ":"))
    again = run_md(start, BilayerPairPotential(), ensemble="langevin", temperature=500, steps=25, interval=10,
                   seed=4, progress=False)
    np.testing.assert_allclose(again.final.positions, res.final.positions)  # seeded noise
    with pytest.raises(ValueError, match="ensemble"):
        run_md(start, BilayerPairPotential(), ensemble="npt")
    with pytest.raises(ValueError, match="timestep"):
        run_md(start, BilayerPairPotential(), timestep=0.0)


def test_neighbour_estimate_close_to_actual():
    t = twisted_bilayer("graphene", m=5, n=6)
    for cutoff in (6.0, 8.0):
        actual = build_neighbor_list(t, cutoff).n_pairs / len(t)
        assert neighbors_per_atom(t, cutoff) == pytest.approx(actual, rel=0.15)


def test_memory_estimate_refuses_absurd_request():
    big = build_bilayer("graphene", stacking="AB").repeat((500, 500, 1))  # 10^6 atoms
    est = estimate_memory(big, solver="shift-invert")
    assert est.notes["n_orbitals"] == 1_000_000
    assert est.peak > 30 * 2**30  # sparse LU of 10^6 orbitals: tens of GiB
    with pytest.raises(InsufficientMemoryError, match="MemAvailable") as info:
        check_memory(est, available=8 * 2**30)
    assert "sparse LU fill" in str(info.value)
    small = twisted_bilayer("graphene", m=1, n=2)
    assert check_memory(estimate_memory(small)) == available_memory() > 0
    kpm = estimate_memory(big, solver="kpm")
    assert kpm.stage_total("solver") < est.stage_total("solver") / 10
    # band-state densities kept for the flat-band map: float32 per orbital, band and k-point
    kept = estimate_memory(small, solver="shift-invert", n_bands=12, band_kpoints=60)
    assert kept.stages["solver"]["band-state densities"] == 4 * 28 * 12 * 60
    assert "band-state densities" not in estimate_memory(small, solver="shift-invert").stages["solver"]


def test_memory_estimate_of_a_term_reaching_beyond_the_descriptor():
    """A 10 A interlayer term on a 6 A descriptor: the embedding nets see the 6 A pairs only, the term's
    pairs get their own line, and the force-field stage lies between the 6 A and the all-10 A estimate."""
    atoms = build_bilayer("graphene", stacking="AB").repeat((30, 30, 1))
    six = estimate_memory(atoms, model_cutoff=6.0).stages["force field"]
    ten = estimate_memory(atoms, model_cutoff=10.0).stages["force field"]
    both = estimate_memory(atoms, model_cutoff=10.0, descriptor_cutoff=6.0).stages["force field"]
    assert both["descriptor chunk (autograd)"] == six["descriptor chunk (autograd)"]
    assert "interlayer term chunk (autograd)" in both and "interlayer term chunk (autograd)" not in ten
    assert sum(six.values()) < sum(both.values()) < sum(ten.values())
    assert both["neighbour list (compact)"] == ten["neighbour list (compact)"]   # the list reaches 10 A


def test_memory_estimate_of_ml_heads_is_linear_and_above_the_two_centre_model():
    cell = build_bilayer("graphene", stacking="AB")
    small, large = cell.repeat((20, 20, 1)), cell.repeat((40, 40, 1))   # 1,600 and 6,400 atoms
    tb = estimate_memory(large, relax=False, hopping_cutoff=7.0, solver="kpm")
    ml = estimate_memory(large, relax=False, hopping_cutoff=7.0, solver="kpm", descriptor_dim=512)
    items = ml.stages["hamiltonian"]
    assert items["descriptors (float64)"] == 6400 * 512 * 8
    assert "pair list (half)" in items and "pair list (half)" not in tb.stages["hamiltonian"]
    assert ml.stage_total("hamiltonian") > tb.stage_total("hamiltonian")
    per_atom = [estimate_memory(a, relax=False, hopping_cutoff=7.0, descriptor_dim=512).stages["hamiltonian"]
                ["pair list (half)"] / len(a) for a in (small, large)]
    assert per_atom[0] == pytest.approx(per_atom[1], rel=1e-6)
