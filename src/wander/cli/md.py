"""``wander md``: molecular dynamics with the force field (NVE, Langevin or Berendsen NVT)."""

from __future__ import annotations

import argparse

from wander.cli.relax import add_model_arguments, load_checked


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("structure", help="input structure (extxyz or any ASE-readable file)")
    parser.add_argument("-o", "--output", required=True, help="snapshots every --interval steps (extxyz)")
    add_model_arguments(parser)
    parser.add_argument("--ensemble", choices=("nve", "langevin", "berendsen"), default="langevin")
    parser.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    parser.add_argument("--timestep", type=float, default=1.0, help="fs (default 1)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--interval", type=int, default=10, help="steps between snapshots (default 10)")
    parser.add_argument("--friction", type=float, default=0.01, help="Langevin friction, 1/fs (default 0.01)")
    parser.add_argument("--taut", type=float, default=100.0, help="Berendsen coupling time, fs (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--traj", default=None, help="ASE trajectory (.traj) every --interval steps")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ase.io import write

    from wander.sim.md import run_md

    loaded = load_checked(args, "md")
    if loaded is None:
        return 3
    atoms, calc = loaded
    res = run_md(atoms, calc, ensemble=args.ensemble, temperature=args.temperature, timestep=args.timestep,
                 steps=args.steps, interval=args.interval, friction=args.friction, taut=args.taut, seed=args.seed,
                 trajectory=args.traj, progress=not args.no_progress)
    write(args.output, res.snapshots, format="extxyz")
    print(f"{args.steps} steps of {args.ensemble} at {args.timestep} fs: T = {res.temperature[-1]:.1f} K "
          f"(mean {res.temperature[1:].mean() if len(res.temperature) > 1 else res.temperature[0]:.1f} K), "
          f"max |E_tot - E_tot(0)| = {1e3 * res.energy_drift():.4f} meV/atom -> {args.output}")
    return 0
