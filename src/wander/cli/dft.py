"""``wander dft``: DFT + Wannier90 reference-data pipeline.

Subcommands::

    wander dft sample --material graphene -n 200 --seed 1 --root runs/blg
    wander dft scan --material graphene --distances 3.45 3.25 3.65 --root runs/blgscan
    wander dft twist-config --m 1 --n 2 --k-spacing 0.24 --out runs/tbg_21.79
    wander dft add found.extxyz --material graphene --root runs/blgal --prefix blgal --scf-k-spacing 0.165
    wander dft run runs/blg/blg_0000 [...]
    wander dft run-set runs/blg --dataset datasets/blg [--limit N] [--max-atoms 12]
    wander dft status runs/blg
    wander dft collect runs/blg --dataset datasets/blg
    wander dft summary datasets/blg
    wander dft relabel runs/blg --dataset datasets/blg --scf-k-spacing 0.165
    wander dft layer-offset datasets/blg [--remove 'blg*' | --restore]
    wander dft rewannier datasets/blg --root runs/blg_dense --scf-k-spacing 0.165 --configs 'blg_00*'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dft_command", metavar="ACTION", required=True)

    p = sub.add_parser("sample", help="write configuration directories from the sampler")
    p.add_argument("--material", required=True, choices=["graphene", "mos2"])
    p.add_argument("-n", type=int, required=True, help="number of configurations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", required=True, help="folder receiving one directory per configuration")
    p.add_argument("--preset", default=None, help="preset name (default: the material's)")

    p = sub.add_parser("scan", help="write configuration directories of a registry scan "
                                     "(unstrained shifts x interlayer distances)")
    p.add_argument("--material", required=True, choices=["graphene", "mos2"])
    p.add_argument("--distances", type=float, nargs="+", required=True,
                   help="interlayer distances (Angstrom), run in this order")
    p.add_argument("--root", required=True, help="folder receiving one directory per configuration")
    p.add_argument("--scf-k-spacing", type=float, default=None,
                   help="denser SCF grid for energies / forces / stress (1/Angstrom incl. 2 pi)")
    p.add_argument("--shifts", nargs="+", default=None, metavar="SHIFT",
                   help="top-layer shifts: names (AA AB BA SP) or fractions 'f1,f2' (default: the "
                        "eight of wander.dft.sampler.SCAN_SHIFTS)")
    p.add_argument("--first-index", type=int, default=0,
                   help="number of the first name, to continue an earlier scan (default 0)")

    p = sub.add_parser("twist-config", help="write one configuration directory of a commensurate "
                                             "twisted bilayer (held-out validation)")
    p.add_argument("--m", type=int, required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--material", default="graphene", choices=["graphene"])
    p.add_argument("--distance", type=float, default=3.35, help="interlayer distance (Angstrom)")
    p.add_argument("--c", type=float, default=20.0, help="cell length along z (Angstrom)")
    p.add_argument("--k-spacing", type=float, default=None,
                   help="override the preset's k spacing (1/Angstrom incl. 2 pi)")
    p.add_argument("--scf-k-spacing", type=float, default=None,
                   help="denser SCF grid for energies / forces / stress (1/Angstrom incl. 2 pi)")
    p.add_argument("--out", required=True, help="configuration directory to create")

    p = sub.add_parser("add", help="write configuration directories of given structures (e.g. structures "
                                    "a model got wrong, for active learning)")
    p.add_argument("structures", nargs="+", help="extxyz files (every frame is one configuration); "
                   "pbc (T, T, F) and arrays['layer'] required")
    p.add_argument("--material", required=True, choices=["graphene", "mos2"], help="preset")
    p.add_argument("--root", required=True, help="folder receiving one directory per configuration")
    p.add_argument("--prefix", required=True, help="configuration names: PREFIX_0000, PREFIX_0001, ...")
    p.add_argument("--labels", choices=["forcefield", "full"], default="forcefield",
                   help="forcefield: SCF only (energy, forces, stress; default); full: also the Wannier run")
    p.add_argument("--scf-k-spacing", type=float, default=None,
                   help="SCF grid spacing (1/Angstrom incl. 2 pi); required for force-field labels "
                        "unless the preset sets one (0.165 for the graphene datasets)")

    p = sub.add_parser("run", help="run (or resume) configuration directories")
    p.add_argument("dirs", nargs="+")
    p.add_argument("--retry-failed", action="store_true")
    p.add_argument("--keep-scratch", action="store_true")

    p = sub.add_parser("run-set", help="run every configuration under ROOT in order, collecting "
                                        "each finished one into a dataset")
    p.add_argument("root")
    p.add_argument("--dataset", default=None, help="dataset folder to append finished frames to")
    p.add_argument("--limit", type=int, default=None, help="stop after this many runs")
    p.add_argument("--max-atoms", type=int, default=None, help="skip larger configurations")
    p.add_argument("--retry-failed", action="store_true")

    p = sub.add_parser("status", help="progress table of a set")
    p.add_argument("root")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("summary", help="markdown table of a dataset's statistics")
    p.add_argument("dataset")

    p = sub.add_parser("relabel", help="re-run the SCF of a dataset's configurations on a denser k-grid and "
                                        "replace energies, forces and stresses (Hamiltonians kept)")
    p.add_argument("root", help="folder of the configuration directories")
    p.add_argument("--dataset", required=True)
    p.add_argument("--scf-k-spacing", type=float, required=True, help="1/Angstrom incl. 2 pi (0.165: 18x18 "
                   "for the graphene primitive cell)")
    p.add_argument("--limit", type=int, default=None, help="stop after this many configurations")

    p = sub.add_parser("rewannier", help="re-make frames' Wannier Hamiltonians from an SCF on a denser k-grid "
                                          "(energies, forces and stresses kept)")
    p.add_argument("dataset")
    p.add_argument("--root", required=True, help="folder receiving one run directory per frame")
    p.add_argument("--scf-k-spacing", type=float, required=True, help="1/Angstrom incl. 2 pi (0.165: 19x19 "
                   "for the graphene primitive cell)")
    p.add_argument("--configs", nargs="+", required=True, metavar="GLOB",
                   help="frame names or globs, run in this order")
    p.add_argument("--limit", type=int, default=None, help="stop after this many frames")

    p = sub.add_parser("layer-offset", help="layer offsets (mean onsite of layer 0 minus layer 1) of a bilayer "
                                             "dataset's Hamiltonians; remove or restore them")
    p.add_argument("dataset")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--remove", nargs="+", metavar="GLOB", help="remove the offsets of these frames (homobilayers "
                   "whose offset is an SCF k-grid artefact, docs/dft.md); recorded in metadata.json")
    g.add_argument("--restore", action="store_true", help="put every removed offset back")

    p = sub.add_parser("collect", help="append finished configurations to a dataset")
    p.add_argument("root")
    p.add_argument("--dataset", required=True)


def _config_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    return sorted(p.parent for p in root.glob("*/config.json"))


def _sample(args) -> int:
    from wander.dft.pipeline import write_configuration
    from wander.dft.presets import get_preset
    from wander.dft.sampler import sample_configurations

    preset = get_preset(args.preset or args.material)
    root = Path(args.root)
    confs = sample_configurations(args.material, args.n, seed=args.seed)
    for c in confs:
        write_configuration(root / c.name, c.atoms, c.params, preset)
    info = {"material": args.material, "n": args.n, "seed": args.seed, "preset": preset.name,
            "command": f"wander dft sample --material {args.material} -n {args.n} --seed {args.seed}"}
    (root / "sample.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"wrote {len(confs)} configurations under {root}")
    return 0


def _parse_shift(text: str) -> tuple[float, float]:
    """A named registry (AA, AB, BA, SP) or a fractional shift 'f1,f2'."""
    from wander.dft.sampler import NAMED_SHIFTS

    if text.upper() in NAMED_SHIFTS:
        return NAMED_SHIFTS[text.upper()]
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"shift {text!r}: give a name ({', '.join(NAMED_SHIFTS)}) or two fractions "
                         "'f1,f2'") from None


def _written_other(folder: Path, params: dict) -> bool:
    """Whether ``folder`` holds a configuration with other shift / distance / orientation than ``params``
    (the same scan written again is fine: its folders are kept and resume)."""
    cfg = folder / "config.json"
    if not cfg.exists():
        return False
    old = json.loads(cfg.read_text()).get("params", {})
    return any(old.get(k) != params[k] for k in ("shift", "distance", "orientation", "material"))


def _scan(args) -> int:
    from wander.dft.pipeline import write_configuration
    from wander.dft.presets import get_preset
    from wander.dft.sampler import registry_scan

    preset = get_preset(args.material)
    if args.scf_k_spacing is not None:
        preset.scf_k_spacing = args.scf_k_spacing
    root = Path(args.root)
    shifts = None if args.shifts is None else [_parse_shift(x) for x in args.shifts]
    confs = registry_scan(args.material, args.distances, shifts=shifts, first_index=args.first_index)
    clash = [c.name for c in confs if _written_other(root / c.name, c.params)]
    if clash:
        raise ValueError(f"{root} already has {clash[0]}" + (f" and {len(clash) - 1} more" if len(clash) > 1 else "")
                         + "; pick another --root or --first-index")
    for c in confs:
        write_configuration(root / c.name, c.atoms, c.params, preset)
    dists = " ".join(f"{d:g}" for d in args.distances)
    cmd = f"wander dft scan --material {args.material} --distances {dists}"
    if args.scf_k_spacing is not None:
        cmd += f" --scf-k-spacing {args.scf_k_spacing:g}"
    if args.shifts is not None:
        cmd += " --shifts " + " ".join(args.shifts)
    if args.first_index:
        cmd += f" --first-index {args.first_index}"
    info = {"material": args.material, "distances": list(args.distances), "preset": preset.name,
            "scf_k_spacing": preset.scf_k_spacing, "command": cmd}
    (root / "sample.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"wrote {len(confs)} configurations under {root}")
    return 0


def _twist_config(args) -> int:
    from wander.dft.pipeline import write_configuration
    from wander.dft.presets import get_preset, kgrid_for_cell
    from wander.structures import twisted_bilayer

    atoms = twisted_bilayer(args.material, m=args.m, n=args.n, distance=args.distance)
    if args.c <= args.distance + 5:
        raise ValueError(f"--c {args.c} leaves less than 5 A of vacuum")
    atoms.cell[2, 2] = args.c
    preset = get_preset(args.material)
    if args.k_spacing is not None:
        preset.k_spacing = args.k_spacing
    if args.scf_k_spacing is not None:
        preset.scf_k_spacing = args.scf_k_spacing
    params = {"kind": "twisted", "m": args.m, "n": args.n, "angle_deg": float(atoms.info["angle"]),
              "distance": args.distance, "material": args.material, "held_out": True}
    d = write_configuration(args.out, atoms, params, preset)
    print(f"{d}: {len(atoms)} atoms, twist {atoms.info['angle']:.2f} deg, "
          f"k-grid {kgrid_for_cell(atoms.cell[:], preset.k_spacing)}, SCF {preset.scf_kgrid(atoms.cell[:])}")
    return 0


def _add(args) -> int:
    import numpy as np
    from ase import Atoms
    from ase.io import read

    from wander.dft.pipeline import write_configuration
    from wander.dft.presets import get_preset

    preset = get_preset(args.material)
    if args.scf_k_spacing is not None:
        if args.scf_k_spacing <= 0:
            raise ValueError(f"--scf-k-spacing must be > 0, got {args.scf_k_spacing}")
        preset.scf_k_spacing = args.scf_k_spacing
    if args.labels == "forcefield" and preset.scf_k_spacing is None:
        raise ValueError("force-field labels need a converged SCF grid: give --scf-k-spacing "
                         "(0.165 for the graphene datasets)")
    root = Path(args.root)
    # continue after the highest number in use (a count would reuse a name after a gap, and
    # write_configuration keeps an existing directory, so the structure would be dropped silently)
    used = [d.name[len(args.prefix) + 1:] for d in root.glob(f"{args.prefix}_*") if (d / "config.json").exists()]
    index = max((int(u) for u in used if u.isdigit()), default=-1) + 1
    for path in args.structures:
        for k, atoms in enumerate(read(path, index=":")):
            if tuple(atoms.pbc) != (True, True, False) or "layer" not in atoms.arrays:
                raise ValueError(f"{path} frame {k}: need pbc (True, True, False) and arrays['layer']")
            clean = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
            clean.arrays["layer"] = np.asarray(atoms.arrays["layer"]).copy()
            name = f"{args.prefix}_{index:04d}"
            params = {"kind": "added", "source": f"{Path(path).name}:{k}", "labels": args.labels,
                      "material": args.material, "natoms": len(atoms)}
            write_configuration(root / name, clean, params, preset)
            print(f"{root / name}: {len(atoms)} atoms from {path} frame {k}")
            index += 1
    return 0


def _run(args) -> int:
    from wander.dft.pipeline import run_configuration

    bad = 0
    for d in args.dirs:
        t0 = time.time()
        st = run_configuration(d, retry_failed=args.retry_failed, keep_scratch=args.keep_scratch)
        print(f"{d}: {st.get('state')} {st.get('reason') or ''} ({time.time() - t0:.0f} s)", flush=True)
        bad += st.get("state") != "done"
    return 1 if bad else 0


def _run_set(args) -> int:
    from ase.io import read

    from wander.dft.dataset import append_configuration, collected_names
    from wander.dft.pipeline import read_status, run_configuration

    root = Path(args.root)
    dirs = _config_dirs(root)
    done_names = collected_names(args.dataset) if args.dataset else set()
    n_run = 0
    for i, d in enumerate(dirs):
        if d.name in done_names:
            continue
        st = read_status(d)
        if st.get("state") == "failed" and not args.retry_failed:
            if args.dataset:
                append_configuration(args.dataset, d)  # records the failure
            continue
        if args.max_atoms is not None and len(read(d / "structure.extxyz")) > args.max_atoms:
            continue
        if args.limit is not None and n_run >= args.limit:
            break
        t0 = time.time()
        print(f"[{time.strftime('%H:%M:%S')}] {i + 1}/{len(dirs)} {d.name} ...", flush=True)
        st = run_configuration(d, retry_failed=args.retry_failed)
        n_run += 1
        print(f"    {st.get('state')} {st.get('reason') or ''} in {time.time() - t0:.0f} s", flush=True)
        if args.dataset and st.get("state") in ("done", "failed"):
            append_configuration(args.dataset, d)
    return 0


def _status(args) -> int:
    from wander.dft.pipeline import read_status

    rows = []
    for d in _config_dirs(Path(args.root)):
        st = read_status(d)
        rows.append({"name": d.name, "state": st.get("state"), "step": st.get("step"),
                     "reason": st.get("reason"),
                     "seconds": round(sum(st.get("timings", {}).values()), 1)})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
        if r["state"] in ("running", "failed"):
            print(f"{r['name']:>14} {r['state']:>8} {r['step'] or '':>7} {r['reason'] or ''}")
    done = [r["seconds"] for r in rows if r["state"] == "done"]
    mean = f", mean {sum(done) / len(done):.0f} s per finished configuration" if done else ""
    print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + f" (total {len(rows)}){mean}")
    return 0


def _collect(args) -> int:
    from wander.dft.dataset import append_configuration

    n = 0
    for d in _config_dirs(Path(args.root)):
        n += bool(append_configuration(args.dataset, d))
    print(f"appended {n} configurations to {args.dataset}")
    return 0


def _relabel(args) -> int:
    from wander.dft.relabel import relabel_dataset

    counts = relabel_dataset(args.dataset, args.root, args.scf_k_spacing, limit=args.limit,
                             log=lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", flush=True))
    print(", ".join(f"{k}: {v}" for k, v in counts.items()))
    return 1 if counts["failed"] else 0


def _rewannier(args) -> int:
    from wander.dft.rewannier import rewannier_dataset, select_frames

    names = select_frames(args.dataset, args.configs)
    counts = rewannier_dataset(args.dataset, args.root, args.scf_k_spacing, names, limit=args.limit,
                               log=lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", flush=True))
    print(", ".join(f"{k}: {v}" for k, v in counts.items()))
    return 1 if counts["failed"] else 0


def _layer_offset(args) -> int:
    import numpy as np

    from wander.dft.layer_offset import layer_offsets, remove_layer_offsets, restore_layer_offsets

    if args.remove:
        done = remove_layer_offsets(args.dataset, args.remove)
        print(f"removed the layer offsets of {len(done)} frames" + (f" (|offset| median "
              f"{np.median(np.abs(list(done.values()))):.1f}, max {np.abs(list(done.values())).max():.1f} meV)"
              if done else ""))
        return 0
    if args.restore:
        print(f"restored the layer offsets of {len(restore_layer_offsets(args.dataset))} frames")
        return 0
    off = layer_offsets(args.dataset)
    if not off:
        print(f"{args.dataset}: no two-layer frames with a Hamiltonian")
        return 0
    print(f"{'frame':<16s} {'offset (meV)':>12s}")
    for name, v in sorted(off.items(), key=lambda kv: -abs(kv[1])):
        print(f"{name:<16s} {v:12.1f}")
    a = np.abs(list(off.values()))
    print(f"{len(a)} frames: |offset| median {np.median(a):.1f}, 90th percentile {np.percentile(a, 90):.1f}, "
          f"max {a.max():.1f} meV")
    return 0


def _summary(args) -> int:
    from wander.dft.dataset import summary_markdown

    if not (Path(args.dataset) / "metadata.json").exists():
        raise FileNotFoundError(f"{args.dataset}: no metadata.json")
    print(summary_markdown(args.dataset), end="")
    return 0


def run(args) -> int:
    handlers = {"sample": _sample, "scan": _scan, "add": _add, "twist-config": _twist_config, "run": _run, "run-set": _run_set, "status": _status,
                "collect": _collect, "summary": _summary, "relabel": _relabel,
                "rewannier": _rewannier, "layer-offset": _layer_offset}
    return handlers[args.dft_command](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1)
