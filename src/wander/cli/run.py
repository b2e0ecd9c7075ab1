"""``wander run``: build a twisted bilayer, relax it, predict its Hamiltonian, and compute flat bands,
DOS and moire maps (plots + summary.json in the output folder)."""

from __future__ import annotations

import argparse

from wander.cli.hamiltonian import add_hopping_cutoff_argument
from wander.cli.relax import add_model_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("structure")
    what.add_argument("--material", default="graphene", help="monolayer material (graphene, hbn, mos2, ...)")
    what.add_argument("--angle", type=float, default=None, help="twist angle, degrees (e.g. 1.05)")
    what.add_argument("--mn", type=int, nargs=2, metavar=("M", "N"), default=None,
                      help="commensurate indices instead of --angle")
    what.add_argument("--structure", default=None, help="use this structure file instead of building one")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    add_model_arguments(parser)
    parser.add_argument("--tb-model", default=None,
                        help="two-centre pz model for the Hamiltonian (moon-koshino) instead of the model's heads")
    add_hopping_cutoff_argument(parser)
    parser.add_argument("--no-relax", action="store_true", help="skip the relaxation (rigid structure)")
    parser.add_argument("--cell", choices=("fixed", "in-plane"), default="in-plane")
    parser.add_argument("--fmax", type=float, default=0.01, help="eV/Angstrom (default 0.01)")
    parser.add_argument("--steps", type=int, default=1000, help="maximum relaxation steps (default 1000)")
    parser.add_argument("--optimizer", choices=("LBFGS", "FIRE"), default="LBFGS",
                        help="relaxation optimizer (default LBFGS)")
    parser.add_argument("--n-flat", type=int, default=4, help="number of flat bands (default 4)")
    from wander.sim.workflow import FLAT_POSITIONS

    parser.add_argument("--flat-bands", choices=FLAT_POSITIONS, default="neutrality",
                        help="where the flat bands are: centred on charge neutrality (twisted bilayer "
                             "graphene; default), the highest filled or the lowest empty bands (band "
                             "edges of semiconducting bilayers such as MoS2)")
    parser.add_argument("--n-bands", type=int, default=12, help="bands computed per k-point (default 12)")
    parser.add_argument("--npoints", type=int, default=60, help="k-points on the moire path (default 60)")
    parser.add_argument("--dos-kgrid", type=int, default=6, help="DOS k-grid n x n x 1 (default 6)")
    parser.add_argument("--width", type=float, default=0.005, help="DOS broadening, eV (default 0.005)")
    parser.add_argument("--compare-rigid", action="store_true",
                        help="also compute the rigid structure's bands and plot rigid vs relaxed")
    parser.add_argument("--rigid-distance", choices=("relaxed", "input"), default="relaxed",
                        help="interlayer distance of the rigid reference: the relaxed mean (default) or the input's")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes for the sparse band solves (default: the CPU cores, at most 4)")
    parser.add_argument("--no-progress", action="store_true")


def _structure(args: argparse.Namespace):
    from ase.io import read

    from wander.structures import twisted_bilayer

    if args.structure is not None:
        return read(args.structure)
    if (args.angle is None) == (args.mn is None):
        raise ValueError("give exactly one of --angle, --mn or --structure")
    if args.mn is not None:
        return twisted_bilayer(args.material, m=args.mn[0], n=args.mn[1])
    return twisted_bilayer(args.material, angle=args.angle)


def _default_workers() -> int:
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores))


def run(args: argparse.Namespace) -> int:
    import time

    from wander.sim.memory import InsufficientMemoryError
    from wander.sim.predictors import predictor
    from wander.sim.workflow import run_workflow

    t0 = time.perf_counter()
    workers = args.workers if args.workers is not None else _default_workers()
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    atoms = _structure(args)
    print(f"{atoms.get_chemical_formula()}: {len(atoms)} atoms, angle {atoms.info.get('angle', float('nan')):.4f} deg")
    calc, ckpt = None, None
    if not args.no_relax or args.tb_model is None:
        from wander.pretrained import resolve_model

        ckpt = resolve_model(args.model)
    if not args.no_relax:
        from wander.calculator import WanderCalculator

        calc = WanderCalculator(ckpt, device=args.device, chunk_atoms=args.chunk_atoms, precision=args.precision)
    pred = predictor(model=None if args.tb_model is not None else ckpt, tb_model=args.tb_model,
                     hopping_cutoff=args.hopping_cutoff, progress=not args.no_progress)
    mem = {"chunk_atoms": args.chunk_atoms}
    if args.tb_model is None:
        from wander.train.checkpoint import load_checkpoint

        heads = load_checkpoint(ckpt)["hamiltonian"]["heads_config"]
        reach = float(heads["r_cut"]) if args.hopping_cutoff is None else float(args.hopping_cutoff)
        mem.update(descriptor_dim=int(heads["descriptor_dim"]), hopping_cutoff=reach)
    if calc is not None:
        d = calc.model.descriptor
        mem.update(model_cutoff=calc.model.rcut, descriptor_cutoff=d.rcut, descriptor_neurons=tuple(d.neuron),
                   axis_neuron=d.axis_neuron)
    try:
        summary = run_workflow(
            atoms, pred, args.output, calc,
            relax_options={"fmax": args.fmax, "steps": args.steps, "cell": args.cell,
                           "optimizer": args.optimizer},
            n_flat=args.n_flat, flat_position=args.flat_bands, n_bands=args.n_bands, npoints=args.npoints,
            dos_kgrid=(args.dos_kgrid, args.dos_kgrid, 1), dos_width=args.width,
            memory_options=mem, compare_rigid=args.compare_rigid, rigid_distance=args.rigid_distance,
            workers=workers, progress=not args.no_progress,
        )
    except InsufficientMemoryError as exc:
        print(f"wander run: {exc}")
        return 3
    fb = summary["flat_bands"]
    gaps = ", ".join(f"{k} {fb[k]:.2f} meV" for k in ("gap_below_meV", "gap_above_meV") if fb[k] is not None)
    print(f"E_F = {fb['fermi_level_eV']:.4f} eV, flat-band width {fb['width_meV']:.2f} meV, {gaps}")
    dens = summary["maps"]["flat_band_density_by_registry"]
    print("flat-band density by local stacking (1 = cell mean): "
          + ", ".join(f"{k} {v:.2f}" for k, v in dens.items()))
    if "rigid" in summary:
        print(f"rigid structure: flat-band width {summary['rigid']['flat_bands']['width_meV']:.2f} meV; density "
              + ", ".join(f"{k} {v:.2f}" for k, v in summary["rigid"]["flat_band_density_by_registry"].items()))
    print(f"done in {time.perf_counter() - t0:.1f} s; results in {args.output}/summary.json")
    return 0
