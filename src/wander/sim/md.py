"""Molecular dynamics with ASE integrators, for finite-temperature snapshots of twisted bilayers.

Ensembles:

- ``"nve"``        :class:`ase.md.verlet.VelocityVerlet` (energy-conserving);
- ``"langevin"``   :class:`ase.md.langevin.Langevin`, ``friction`` in 1/fs;
- ``"berendsen"``  :class:`ase.md.nvtberendsen.NVTBerendsen`, coupling time ``taut`` in fs.

Velocities start from a Maxwell-Boltzmann distribution at ``temperature`` (K) with the centre-of-mass
motion removed, drawn from a seeded generator, unless the input atoms already carry momenta.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator

__all__ = ["ENSEMBLES", "MDResult", "run_md"]

ENSEMBLES = ("nve", "langevin", "berendsen")


@dataclass
class MDResult:
    """Time series (one entry per recorded step) and snapshots of an MD run.

    Attributes
    ----------
    time : (T,) fs
    potential_energy, kinetic_energy, total_energy : (T,) eV
    temperature : (T,) K
    snapshots : Atoms every ``interval`` steps (with energy/forces attached); the last is the final state
    """

    time: np.ndarray
    potential_energy: np.ndarray
    kinetic_energy: np.ndarray
    total_energy: np.ndarray
    temperature: np.ndarray
    snapshots: list[Atoms] = field(default_factory=list)

    @property
    def final(self) -> Atoms:
        return self.snapshots[-1]

    def energy_drift(self) -> float:
        """Largest deviation of the total energy from its initial value, eV/atom."""
        n = len(self.snapshots[0]) if self.snapshots else 1
        return float(np.abs(self.total_energy - self.total_energy[0]).max() / n)


def _snapshot(atoms: Atoms) -> Atoms:
    snap = atoms.copy()
    snap.calc = SinglePointCalculator(snap, energy=atoms.get_potential_energy(), forces=atoms.get_forces())
    return snap


def run_md(
    atoms: Atoms,
    calculator: Calculator,
    ensemble: str = "nve",
    temperature: float = 300.0,
    timestep: float = 1.0,
    steps: int = 1000,
    interval: int = 10,
    friction: float = 0.01,
    taut: float = 100.0,
    seed: int | None = 0,
    trajectory: str | os.PathLike | None = None,
    progress: bool = True,
) -> MDResult:
    """Run MD on a copy of ``atoms``; ``atoms`` itself is not modified.

    Parameters
    ----------
    atoms
        Starting structure; its momenta are used if it has any, otherwise they are drawn at ``temperature``.
    calculator
        ASE calculator, e.g. :class:`wander.calculator.WanderCalculator`.
    ensemble
        ``"nve"``, ``"langevin"`` or ``"berendsen"``.
    temperature
        Target / initial temperature, K (>= 0).
    timestep
        fs (> 0).
    steps
        Number of MD steps (>= 0).
    interval
        Record energies and a snapshot every ``interval`` steps (>= 1).
    friction
        Langevin friction, 1/fs.
    taut
        Berendsen coupling time, fs.
    seed
        Seed of the initial velocities and of the Langevin noise.
    trajectory
        ASE ``.traj`` file receiving a frame every ``interval`` steps.
    progress
        Show a tqdm progress bar with the temperature and total energy.
    """
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    ensemble = ensemble.lower()
    if ensemble not in ENSEMBLES:
        raise ValueError(f"ensemble must be one of {ENSEMBLES}, got {ensemble!r}")
    for name, value, ok in (("temperature", temperature, temperature >= 0), ("timestep", timestep, timestep > 0),
                            ("friction", friction, friction >= 0), ("taut", taut, taut > 0)):
        if not (np.isfinite(value) and ok):
            raise ValueError(f"invalid {name}: {value!r}")
    if int(steps) < 0 or int(interval) < 1:
        raise ValueError(f"need steps >= 0 and interval >= 1, got steps={steps}, interval={interval}")
    if len(atoms) == 0:
        raise ValueError("cannot run MD without atoms")

    work = atoms.copy()
    work.calc = calculator
    rng = np.random.default_rng(seed)
    if not np.any(work.get_momenta()):
        thermalize_momenta(work, temperature_K=temperature, rng=rng)
        Stationary(work)
    dt = timestep * units.fs
    if ensemble == "nve":
        from ase.md.verlet import VelocityVerlet

        dyn = VelocityVerlet(work, timestep=dt)
    elif ensemble == "langevin":
        from ase.md.langevin import Langevin

        dyn = Langevin(work, timestep=dt, temperature_K=temperature, friction=friction / units.fs, rng=rng,
                       fixcm=False)
    else:
        from ase.md.nvtberendsen import NVTBerendsen

        dyn = NVTBerendsen(work, timestep=dt, temperature_K=temperature, taut=taut * units.fs)

    rows: list[tuple[float, float, float, float]] = []
    snaps: list[Atoms] = []
    traj = None
    if trajectory is not None:
        from ase.io.trajectory import Trajectory

        traj = Trajectory(os.fspath(trajectory), "w", work, properties=["energy", "forces"])
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(steps), desc=f"md ({ensemble})", unit="step", leave=False)

    def record() -> None:
        epot = float(work.get_potential_energy())
        ekin = float(work.get_kinetic_energy())
        rows.append((dyn.get_time() / units.fs, epot, ekin, float(work.get_temperature())))
        snaps.append(_snapshot(work))
        if traj is not None:
            traj.write()
        if bar is not None:
            bar.set_postfix(T=f"{rows[-1][3]:.1f} K", etot=f"{epot + ekin:.5f}")

    try:
        record()
        done = 0
        while done < int(steps):
            n = min(int(interval), int(steps) - done)
            dyn.run(n)
            done += n
            record()
            if bar is not None:
                bar.update(n)
    finally:
        if bar is not None:
            bar.close()
        if traj is not None:
            traj.close()
    arr = np.array(rows, dtype=float)
    return MDResult(time=arr[:, 0], potential_energy=arr[:, 1], kinetic_energy=arr[:, 2],
                    total_energy=arr[:, 1] + arr[:, 2], temperature=arr[:, 3], snapshots=snaps)
