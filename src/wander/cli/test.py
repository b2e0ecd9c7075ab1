"""``wander test --model model.pt DATA...``: energy / force / virial errors of a trained force field.

DATA are extxyz (or any ASE-readable) files or DeePMD npy system folders. Prints RMSE and MAE of the
energy per atom (eV/atom), forces (eV/Angstrom) and virial per atom (eV/atom), per data path and
overall. ``--json FILE`` also writes the numbers as JSON.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", required=True, help="checkpoint written by 'wander train'")
    parser.add_argument("data", nargs="+", help="extxyz files or DeePMD system folders")
    parser.add_argument("--batch-size", type=int, default=8, help="frames per evaluation batch (default 8)")
    parser.add_argument("--json", metavar="FILE", help="also write the error table as JSON")


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


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import tempfile

    import numpy as np

    from wander.data.datasets import load_graphs
    from wander.train.checkpoint import load_model
    from wander.train.evaluation import Predictions, error_table, predict

    if args.batch_size < 1:
        raise ValueError("--batch-size must be >= 1")
    model = load_model(args.model)
    results: dict[str, dict] = {}
    parts: list[Predictions] = []
    for path in args.data:
        graphs = load_graphs([path], model.type_map, model.rcut, dtype=model.dtype)
        pred = predict(model, graphs, args.batch_size)
        parts.append(pred)
        results[path] = error_table(pred)
        print(_format(path, results[path], len(graphs)))
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
    if args.json:
        folder = os.path.dirname(os.path.abspath(args.json))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".wander-test.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(results, fh, indent=2)
        os.replace(tmp, args.json)
    return 0
