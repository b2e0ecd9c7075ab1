"""``wander refit-interlayer --model model.pt DATA... -o out.pt``: refit a trained model's interlayer term.

The network is frozen; the Kolmogorov-Crespi term is refitted to what the network leaves on the
registry-scan frames of DATA (``--fit-configs``), and the energy bias is re-centred on all frames of
``--split`` but those of ``--exclude`` (see :mod:`wander.train.refit`). Hamiltonian heads are kept as they are.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", required=True, help="checkpoint with an interlayer term")
    parser.add_argument("data", nargs="+", help="DFT dataset folders, extxyz files or DeePMD system folders")
    parser.add_argument("-o", "--output", required=True, help="refitted checkpoint to write")
    parser.add_argument("--split", default="train",
                        help="only frames of this split (info['split']; default train; 'all' for every frame)")
    parser.add_argument("--fit-configs", default="blgscan_*",
                        help="glob on info['config'] of the frames the term is fitted to (default blgscan_*)")
    parser.add_argument("--steps", type=int, default=1500, help="optimizer steps of the fit (default 1500)")
    parser.add_argument("--anchor", choices=("none", "isolated"), default="none",
                        help="energy zero of the fit: 'none' (default) a free offset; 'isolated' from the frames "
                             "without interlayer pairs (monolayers), so that the term carries the binding energy "
                             "(docs/model.md: with the default 6 A taper at the cost of the registry landscape)")
    parser.add_argument("--taper", type=float, nargs=2, default=None, metavar=("R_ON", "R_OFF"),
                        help="new range of the term before the refit (Angstrom): it goes to zero between "
                             "R_ON and R_OFF; e.g. 9 10 so that it carries the far-pair dispersion")
    parser.add_argument("--force-weight", type=float, default=0.0, metavar="W",
                        help="weight (A^2 per atom) of the fitted frames' forces, all components, against their "
                             "energies per atom (default 0: energies only)")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                        help="leave out frames whose info['config'] matches (repeatable; e.g. 'blgal_*', "
                             "strongly distorted frames that should not move the energy bias)")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from wander.data.datasets import read_frames
    from wander.train.data import config_glob_matches, is_dft_dataset
    from wander.train.refit import refit_checkpoint

    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    frames = []
    for d in args.data:
        frames += read_frames(Path(d) / "frames.extxyz" if is_dft_dataset(d) else d)
    if args.split != "all":
        frames = [a for a in frames if a.info.get("split") == args.split]
        if not frames:
            raise ValueError(f"no frames with info['split'] == {args.split!r} in {args.data}")
    for glob in args.exclude:  # in turn: each glob must match a frame the earlier ones left
        hits = config_glob_matches(frames, [glob], "--exclude {glob} matches no frame")
        frames = [a for a, h in zip(frames, hits) if not h]
    rep = refit_checkpoint(args.model, args.output, frames, fit_configs=args.fit_configs, steps=args.steps,
                           anchor=None if args.anchor == "none" else args.anchor,
                           taper=None if args.taper is None else tuple(args.taper), force_weight=args.force_weight)
    if args.taper is not None:
        print(f"interlayer term now tapers from {args.taper[0]:g} to {args.taper[1]:g} A")
    print(f"interlayer term refitted on {rep['frames_fitted']} frames: total-model RMSE on them "
          f"{rep['scan_rmse_meV_before']:.3f} -> {rep['scan_rmse_meV_after']:.3f} meV per frame")
    if rep["anchor_frames"]:
        print(f"energy zero from {rep['anchor_frames']} frames without interlayer pairs; interlayer energy on the "
              f"fitted frames {rep['binding_meV_per_atom_before']:.2f} -> {rep['binding_meV_per_atom_after']:.2f} meV/atom")
    elif rep["anchor"]:
        print("no frames without interlayer pairs among the data: the fit's energy zero is a free offset")
    print("energy bias shift: " + ", ".join(f"{t} {1e3 * s:+.3f} meV" for t, s in rep["bias_shift_eV"].items())
          + f" (over {rep['frames_bias']} frames)")
    print("parameters: " + json.dumps({k[6:]: round(v, 6) for k, v in rep.items() if k.startswith("param_")}))
    print(f"wrote {args.output}")
    return 0
