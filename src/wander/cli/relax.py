"""``wander relax``: relax a structure with the force field (positions, optionally the in-plane cell)."""

from __future__ import annotations

import argparse


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--device``, ``--chunk-atoms`` shared by the force-field commands."""
    parser.add_argument("--model", default="pretrained",
                        help="checkpoint file, or 'pretrained[:NAME]' for a model shipped with wander (default)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--chunk-atoms", type=int, default=8192,
                        help="centre atoms per force-field chunk (bounds memory; default 8192)")
    parser.add_argument("--precision", choices=("float32", "float64"), default="float32",
                        help="precision the force-field network runs in (sums are float64 either way; "
                             "default float32, 2-3x faster)")


def make_calculator(args: argparse.Namespace):
    from wander.calculator import WanderCalculator
    from wander.pretrained import resolve_model

    return WanderCalculator(resolve_model(args.model), device=args.device, chunk_atoms=args.chunk_atoms,
                            precision=args.precision)


def load_checked(args: argparse.Namespace, command: str):
    """Read ``args.structure``, build the calculator, print and check the force-field memory estimate.

    Returns ``(atoms, calculator)``, or ``None`` after printing ``wander <command>: <reason>``
    when the run would not fit in the available memory.
    """
    from ase.io import read

    from wander.sim.memory import InsufficientMemoryError, check_memory, estimate_memory

    atoms = read(args.structure)
    calc = make_calculator(args)
    est = estimate_memory(atoms, model_cutoff=calc.model.rcut, descriptor_cutoff=calc.model.descriptor.rcut,
                          chunk_atoms=args.chunk_atoms)
    est.stages = {k: v for k, v in est.stages.items() if k in ("neighbours", "force field")}
    print(est.report())
    try:
        check_memory(est)
    except InsufficientMemoryError as exc:
        print(f"wander {command}: {exc}")
        return None
    return atoms, calc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("structure", help="input structure (extxyz or any ASE-readable file)")
    parser.add_argument("-o", "--output", required=True, help="relaxed structure (extxyz)")
    add_model_arguments(parser)
    parser.add_argument("--cell", choices=("fixed", "in-plane", "full"), default="fixed",
                        help="cell degrees of freedom: fixed, in-plane (2D: xx, yy, xy), full (3D)")
    parser.add_argument("--fmax", type=float, default=0.01, help="force threshold, eV/Angstrom (default 0.01)")
    parser.add_argument("--steps", type=int, default=1000, help="maximum optimizer steps (default 1000)")
    parser.add_argument("--optimizer", choices=("FIRE", "BFGS", "LBFGS"), default="LBFGS")
    parser.add_argument("--traj", default=None, help="ASE trajectory (.traj) of the relaxation")
    parser.add_argument("--traj-interval", type=int, default=1, help="steps between trajectory frames (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import warnings

    from ase.io import write

    from wander.sim.relax import relax

    loaded = load_checked(args, "relax")
    if loaded is None:
        return 3
    atoms, calc = loaded
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        out = relax(atoms, calc, fmax=args.fmax, steps=args.steps, cell=args.cell, optimizer=args.optimizer,
                    trajectory=args.traj, traj_interval=args.traj_interval, progress=not args.no_progress)
    write(args.output, out, format="extxyz")
    e0, e1 = out.info["relax_energy_initial"], out.get_potential_energy()
    print(f"{len(out)} atoms: E {e0:.6f} -> {e1:.6f} eV ({(e1 - e0) / len(out) * 1e3:+.4f} meV/atom), "
          f"{out.info['relax_steps']} steps, fmax {out.info['relax_fmax']:.4g} eV/A -> {args.output}")
    if not out.info["relax_converged"]:
        for w in caught:
            print(f"warning: {w.message}")
        return 1
    return 0
