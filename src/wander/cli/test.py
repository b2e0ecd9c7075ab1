"""``wander test --model model.pt DATA...``: errors of a trained force field (and Hamiltonian heads).

DATA are extxyz (or any ASE-readable) files, DeePMD npy system folders or DFT dataset folders
(``frames.extxyz`` + ``hamiltonians.npz``). Prints RMSE and MAE of the energy per atom (eV/atom),
forces (eV/Angstrom) and virial per atom (eV/atom), per data path and overall. For a model with
Hamiltonian heads and data with reference Hamiltonians it adds the block MAE / RMSE per category
(meV) and the band RMSE within ``--window`` eV of E_F on a ``--kgrid`` grid (meV), see
:mod:`wander.train.hamiltonian_eval`. ``--split`` keeps the frames of one dataset split.
``--per-frame`` lists every frame's errors (worst force RMSE first).
``--json FILE`` also writes the numbers as JSON. ``--export FILE`` writes a copy of the model without
optimizer state whose metadata holds these numbers (``metadata["validation"]``: data, split and
error tables), the form in which models are shipped (:mod:`wander.pretrained`). ``--stacking
MATERIAL`` adds the stacking physics of the force field (:mod:`wander.sim.stacking`: AA / SP against AB,
the AB binding minimum, the monolayer lattice constant) and, for dataset folders holding registry-scan
configurations (``wander dft scan``), model against DFT on every scan frame.
"""

from __future__ import annotations

import argparse

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", required=True, help="checkpoint written by 'wander train'")
    parser.add_argument("data", nargs="+", help="extxyz files or DeePMD system folders")
    parser.add_argument("--batch-size", type=int, default=8, help="frames per evaluation batch (default 8)")
    parser.add_argument("--json", metavar="FILE", help="also write the error table as JSON")
    parser.add_argument("--split", help="only frames of this split (info['split'], e.g. valid)")
    parser.add_argument("--kgrid", type=int, default=6, help="k-grid per periodic direction for band errors (6)")
    parser.add_argument("--window", type=float, default=1.0, help="band-error window around E_F, eV (1.0)")
    parser.add_argument("--stacking", metavar="MATERIAL", choices=["graphene"],
                        help="also report the stacking energies, binding minimum and lattice constant")
    parser.add_argument("--stacking-plot", metavar="PNG",
                        help="with --stacking: plot the model's stacking energy path against the DFT scan frames")
    parser.add_argument("--per-frame", action="store_true",
                        help="also list every frame's errors, worst force error first (and in --json)")
    parser.add_argument("--export", metavar="FILE",
                        help="write the model without optimizer state, with these errors in its metadata")


def _format(name: str, table: dict[str, dict[str, float]], n_frames: int) -> str:
    rows = [f"{name}  ({n_frames} frames)"]
    units = {"energy_per_atom": "eV/atom", "energy": "eV", "forces": "eV/A", "virial_per_atom": "eV/atom"}
    for key, unit in units.items():
        t = table[key]
        if t["count"]:
            rows.append(f"  {key:<16s} RMSE {t['rmse']:.4e}  MAE {t['mae']:.4e}  {unit}")
        else:
            rows.append(f"  {key:<16s} (no labels)")
    return "\n".join(rows)


def _format_hamiltonian(h: dict) -> str:
    rows = [f"  Hamiltonian ({h['frames']} frames)"]
    for cat, mae in h["mae_meV"].items():
        rows.append(f"    {cat:<14s} MAE {mae:9.3f}  RMSE {h['rmse_meV'][cat]:9.3f}  meV  ({h['count'][cat]} elements)")
    if h["band_count"]:
        rows.append(f"    bands within +-{h['window_eV']:g} eV of E_F ({h['kgrid']}x{h['kgrid']} k): RMSE "
                    f"{h['band_rmse_meV']:.3f} meV, max {h['band_max_meV']:.3f} meV ({h['band_count']} levels)")
    if h.get("band_count_aligned"):
        rows.append(f"    same, each spectrum from its own filling E_F: RMSE {h['band_rmse_aligned_meV']:.3f} meV, "
                    f"max {h['band_max_aligned_meV']:.3f} meV ({h['band_count_aligned']} levels)")
    return "\n".join(rows)


def _format_frames(rows: list[dict], ham: dict | None) -> str:
    """Table of per-frame errors, worst force RMSE first."""
    from wander.nn.hamiltonian.categories import CATEGORIES

    per = (ham or {}).get("per_frame", {})
    cats = [c for c in CATEGORIES if any(c in r["mae_meV"] for r in per.values())]
    head = (f"    {'frame':<14s} {'atoms':>5s} {'dE meV/at':>10s} {'F RMSE':>8s} {'|F|max':>7s}"
            + "".join(f" {c[:10]:>10s}" for c in cats)
            + (f" {'bands':>7s} {'aligned':>7s} {'layer offset DFT / model':>25s}" if per else ""))
    out = ["  per frame (dE signed; F in meV/A; Hamiltonian MAE, band RMSE and the layer offset, mean "
           "onsite of layer 0 minus layer 1, in meV)", head]
    order = sorted(range(len(rows)), key=lambda f: -np.nan_to_num(rows[f]["forces_rmse"], nan=-1.0))
    for f in order:
        r = rows[f]
        line = (f"    {r['frame']:<14s} {r['n_atoms']:5d} {1e3 * r['energy_per_atom']:10.2f} "
                f"{1e3 * r['forces_rmse']:8.1f} {r['forces_max_ref']:7.2f}")
        if per:
            h = per.get(f)
            line += "".join(f" {h['mae_meV'].get(c, float('nan')) if h else float('nan'):10.2f}" for c in cats)
            line += (f" {h['band_rmse_meV']:7.1f} {h['band_rmse_aligned_meV']:7.1f}" if h
                     else f" {'-':>7s} {'-':>7s}")
            off = h.get("layer_offset_meV") if h else None
            line += f" {off[0]:12.1f} / {off[1]:10.1f}" if off else f" {'-':>25s}"
        out.append(line)
    return "\n".join(out)


def _stacking(model, material: str, data: list[str], plot: str | None) -> dict:
    from pathlib import Path

    from ase.io import read

    from wander.calculator import WanderCalculator
    from wander.sim.stacking import scan_comparison, stacking_report

    calc = WanderCalculator(model)
    rep = stacking_report(calc, material)
    print(f"stacking ({material}, model)\n" + "\n".join("  " + r for r in rep.table().splitlines()))
    out = {"material": material, "model": rep.as_dict(), "scan": []}
    for d in data:
        meta = Path(d) / "metadata.json"
        if not meta.is_file():
            continue
        import json

        confs = json.loads(meta.read_text())["configurations"]
        rows = scan_comparison(calc, read(Path(d) / "frames.extxyz", index=":"), confs)
        out["scan"] += rows
        if rows:
            print(f"registry scan of {d}: E - E(AB) per cell (meV), in-plane top-layer force (meV/A)")
            print("    d (A)   shift (f1, f2)     DFT E   model E   DFT F  model F")
            for r in rows:
                print(f"    {r['distance']:5.2f}   ({r['shift'][0]:.3f}, {r['shift'][1]:.3f})  {r['dft_meV']:8.2f}  "
                      f"{r['model_meV']:8.2f}  {r['dft_layer_force_meV_A']:6.2f}  {r['model_layer_force_meV_A']:6.2f}")
            err = np.array([r["model_meV"] - r["dft_meV"] for r in rows])
            print(f"    RMSE of E - E(AB): {np.sqrt(np.mean(err ** 2)):.2f} meV / cell over {len(rows)} frames")
    if plot:
        from wander.sim.stacking import plot_stacking

        plot_stacking(calc, material, out["scan"], plot)
        print(f"wrote {plot}")
    return out


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import tempfile


    from wander.train.checkpoint import load_checkpoint, load_dual_model, load_model
    from wander.train.config import parse_config
    from wander.train.data import load_frame_set
    from wander.train.evaluation import Predictions, error_table, frame_errors, predict
    from wander.train.hamiltonian_eval import hamiltonian_errors

    if args.batch_size < 1:
        raise ValueError("--batch-size must be >= 1")
    if args.stacking_plot and not args.stacking:
        raise ValueError("--stacking-plot needs --stacking MATERIAL")
    if args.kgrid < 1 or not args.window > 0:
        raise ValueError("--kgrid must be >= 1 and --window > 0")
    hcfg = parse_config(load_checkpoint(args.model)["config"]).model.hamiltonian
    dual = load_dual_model(args.model) if hcfg is not None else None
    model = dual.forcefield if dual is not None else load_model(args.model)
    results: dict[str, dict] = {}
    parts: list[Predictions] = []
    for path in args.data:
        frames = load_frame_set([path], model.type_map, model.rcut, dtype=model.dtype, split=args.split,
                                hamiltonian=hcfg)
        pred = predict(model, frames.graphs, args.batch_size)
        parts.append(pred)
        results[path] = error_table(pred)
        print(_format(path, results[path], len(frames)))
        if dual is not None and frames.n_hamiltonian:
            results[path]["hamiltonian"] = hamiltonian_errors(dual, frames, kgrid=args.kgrid, window=args.window)
            print(_format_hamiltonian(results[path]["hamiltonian"]))
        ham = results[path].get("hamiltonian")
        if args.per_frame:
            rows = frame_errors(pred)
            for f, r in enumerate(rows):
                r["frame"] = str(frames.atoms[f].info.get("config", f))
                if ham is not None and f in ham["per_frame"]:
                    r.update(ham["per_frame"][f])
            results[path]["per_frame"] = rows
            print(_format_frames(rows, ham))
        if ham is not None:
            ham.pop("per_frame")
    if len(parts) > 1:
        merged = Predictions(
            n_atoms=np.concatenate([p.n_atoms for p in parts]),
            energy=np.concatenate([p.energy for p in parts]),
            ref_energy=np.concatenate([p.ref_energy for p in parts]),
            forces=[f for p in parts for f in p.forces],
            ref_forces=[f for p in parts for f in p.ref_forces],
            virial=np.concatenate([p.virial for p in parts]),
            ref_virial=np.concatenate([p.ref_virial for p in parts]),
        )
        results["all"] = error_table(merged)
        print(_format("all", results["all"], int(merged.n_atoms.shape[0])))
    if args.stacking:
        results["stacking"] = _stacking(model, args.stacking, args.data, args.stacking_plot)
    if args.json:
        folder = os.path.dirname(os.path.abspath(args.json))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".wander-test.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(results, fh, indent=2)
        os.replace(tmp, args.json)
    if args.export:
        from wander.train.checkpoint import export_model

        data = [os.path.basename(os.path.normpath(d)) for d in args.data]
        export_model(args.model, args.export, metadata={"validation": {
            "data": data, "split": args.split, "kgrid": args.kgrid, "window_eV": args.window, "errors": results}})
        print(f"exported {args.export}")
    return 0
