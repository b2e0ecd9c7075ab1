"""Stability of a force field on graphene sheets: rattled cells relaxed back, NVE drift, hot MD.

A force field that is accurate on the training frames can still have unphysical basins away from
them (buckled sheets, collapsed bonds). This script runs the checks that decide whether a model can
relax moire cells and run MD, and writes one JSON entry per model:

* ``rattle``: 4x4 AB bilayers and 4x4 / 3x3 monolayers, rattled by 0.05 and 0.1 A (seeds 0 and 1),
  relaxed with FIRE (fixed cell, fmax 0.01 eV/A, at most 400 steps). A cell counts as *back* when
  it ends within 2 meV/atom of the relaxed ideal cell with every sheet flat (z spread of each layer
  below 0.05 A) and every bond between 1.3 and 1.6 A.
* ``nve``: 4x4 AB bilayer, 1 fs, 1,000 steps, velocities drawn at 300 K; the largest deviation of
  the total energy from its start, meV/atom.
* ``langevin``: same cell, 1,000 steps at 300 and 600 K (friction 0.01 1/fs); shortest and longest
  nearest-neighbour bond at the end and whether the layers stayed flat sheets (z spread < 0.5 A).

    python3 validation/stability.py run --model src/wander/pretrained/blg.pt --label shipped
    python3 validation/stability.py table

Results go to ``validation/stability.json`` (entries keyed by label; a label already there is
replaced).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "validation" / "stability.json"
RATTLES = (0.05, 0.1)
SEEDS = (0, 1)
CELLS = ("bilayer 4x4", "monolayer 4x4", "monolayer 3x3")
BOND_RANGE = (1.3, 1.6)  # A: what a bonded graphene sheet can have at these temperatures
FLAT = 0.05  # A: largest z spread of a relaxed sheet


def _cell(kind: str):
    from wander.structures.bilayers import bilayer
    from wander.structures.monolayers import graphene

    n = int(kind.split()[-1].split("x")[0])
    base = bilayer("graphene", stacking="AB") if kind.startswith("bilayer") else graphene()
    if "layer" not in base.arrays:
        base.arrays["layer"] = np.zeros(len(base), dtype=int)
    return base.repeat((n, n, 1))


def _bonds(atoms) -> tuple[float, float]:
    """Shortest and longest nearest-neighbour distance (the three neighbours of each atom)."""
    from ase.neighborlist import neighbor_list

    d = neighbor_list("d", atoms, 2.0)
    if len(d) == 0:
        return float("nan"), float("nan")
    return float(d.min()), float(d.max())


def _z_spread(atoms) -> float:
    layer = atoms.arrays["layer"]
    z = atoms.positions[:, 2]
    return float(max(np.ptp(z[layer == k]) for k in np.unique(layer)))


def rattle_checks(calc) -> list[dict]:
    from ase.optimize import FIRE

    out = []
    for kind in CELLS:
        ideal = _cell(kind)
        ideal.calc = calc
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            FIRE(ideal, logfile=None).run(fmax=0.01, steps=400)
        e0 = ideal.get_potential_energy() / len(ideal)
        for amp in RATTLES:
            for seed in SEEDS:
                atoms = _cell(kind)
                atoms.rattle(stdev=amp, seed=seed)
                atoms.calc = calc
                opt = FIRE(atoms, logfile=None)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    converged = bool(opt.run(fmax=0.01, steps=400))
                de = (atoms.get_potential_energy() / len(atoms) - e0) * 1000
                bmin, bmax = _bonds(atoms)
                spread = _z_spread(atoms)
                back = bool(abs(de) < 2.0 and spread < FLAT and BOND_RANGE[0] < bmin and bmax < BOND_RANGE[1])
                out.append({"cell": kind, "rattle_A": amp, "seed": seed, "steps": int(opt.nsteps),
                            "converged": converged, "dE_meV_per_atom": round(float(de), 3),
                            "z_spread_A": round(spread, 4), "bond_min_A": round(bmin, 4),
                            "bond_max_A": round(bmax, 4), "back": back})
                print(f"  {kind:14s} rattle {amp:.2f} seed {seed}: {'back' if back else 'NOT back'} "
                      f"(dE {de:+.2f} meV/atom, z spread {spread:.3f} A, bonds {bmin:.3f}-{bmax:.3f} A, "
                      f"{opt.nsteps} steps)", flush=True)
    return out


def md_checks(calc) -> dict:
    from wander.sim.md import run_md

    atoms = _cell("bilayer 4x4")
    res = {}
    nve = run_md(atoms, calc, ensemble="nve", temperature=300.0, timestep=1.0, steps=1000, interval=10,
                 seed=0, progress=False)
    res["nve_300K_drift_meV_per_atom"] = round(nve.energy_drift() * 1000, 4)
    print(f"  NVE 300 K, 1,000 x 1 fs: total-energy drift {res['nve_300K_drift_meV_per_atom']:.3f} meV/atom",
          flush=True)
    for temp in (300.0, 600.0):
        run = run_md(atoms, calc, ensemble="langevin", temperature=temp, timestep=1.0, steps=1000,
                     interval=50, friction=0.01, seed=0, progress=False)
        bmin, bmax = _bonds(run.final)
        spread = _z_spread(run.final)
        key = f"langevin_{int(temp)}K"
        res[key] = {"bond_min_A": round(bmin, 4), "bond_max_A": round(bmax, 4), "z_spread_A": round(spread, 4),
                    "mean_T_K": round(float(run.temperature[len(run.temperature) // 2:].mean()), 1),
                    "bonded": bool(1.2 < bmin and bmax < 1.7 and spread < 0.5)}
        print(f"  Langevin {temp:.0f} K, 1,000 x 1 fs: bonds {bmin:.3f}-{bmax:.3f} A, z spread {spread:.3f} A",
              flush=True)
    return res


def run(model: str, label: str) -> dict:
    from wander.calculator import WanderCalculator

    calc = WanderCalculator(model)
    t0 = time.time()
    print(f"{label}: {model}")
    entry = {"label": label, "model": str(model), "date": dt.datetime.now().isoformat(timespec="seconds")}
    entry["rattle"] = rattle_checks(calc)
    entry["rattle_back"] = int(sum(r["back"] for r in entry["rattle"]))
    entry["rattle_total"] = len(entry["rattle"])
    entry.update(md_checks(calc))
    entry["seconds"] = round(time.time() - t0, 1)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"entries": []}
    data["entries"] = [e for e in data["entries"] if e["label"] != label] + [entry]
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, RESULTS)
    print(f"{label}: {entry['rattle_back']} of {entry['rattle_total']} rattled cells back; "
          f"written to {RESULTS.relative_to(ROOT)} ({entry['seconds']:.0f} s)")
    return entry


def table() -> str:
    data = json.loads(RESULTS.read_text())
    lines = ["| model | rattled cells back (0.05 / 0.1 A) | NVE drift, meV/atom | Langevin 300 K: bonds, layer "
             "z spread (A) | Langevin 600 K: bonds, z spread (A) |", "|---|---|---|---|---|"]
    for e in data["entries"]:
        by = {a: sum(r["back"] for r in e["rattle"] if r["rattle_A"] == a) for a in RATTLES}
        n = {a: sum(1 for r in e["rattle"] if r["rattle_A"] == a) for a in RATTLES}
        lang = [e[f"langevin_{t}K"] for t in (300, 600)]
        cells = [f"{x['bond_min_A']:.2f}-{x['bond_max_A']:.2f}, z spread {x['z_spread_A']:.2f}" for x in lang]
        lines.append(f"| {e['label']} | {e['rattle_back']} of {e['rattle_total']} ({by[0.05]}/{n[0.05]}, "
                     f"{by[0.1]}/{n[0.1]}) | {e['nve_300K_drift_meV_per_atom']:.2f} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the checks on one model")
    r.add_argument("--model", required=True)
    r.add_argument("--label", required=True)
    sub.add_parser("table", help="print the markdown table of validation/stability.json")
    args = p.parse_args(argv)
    if args.cmd == "run":
        if not Path(args.model).exists():
            p.error(f"no model file {args.model}")
        run(args.model, args.label)
    else:
        print(table())


if __name__ == "__main__":
    main()
