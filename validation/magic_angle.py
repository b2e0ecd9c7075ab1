"""Flat-band width of twisted bilayer graphene against the twist angle, rigid and relaxed.

The magic angle is where the four bands at charge neutrality are narrowest. It is set by the
ratio of the interlayer coupling to the Dirac velocity, so it belongs to a Hamiltonian (and, for a
rigid cell, to its interlayer distance), not to the number 1.05. This script scans the commensurate
(m, m+1) cells of the shipped model:

* ``rigid``: the rigid cell at one uniform interlayer distance (default 3.538 A, the mean distance
  of the relaxed 1.05 deg cell, as ``wander run --compare-rigid`` uses);
* ``relaxed``: the cell relaxed with the shipped force field (LBFGS, in-plane cell, fmax 0.001 eV/A,
  as ``make demo``); the relaxed structure is kept in ``scale_work/`` so the scan resumes (a cell
  relaxed with another force field is relaxed again; new Hamiltonian heads keep it:
  ``wander.train.checkpoint.forcefield_fingerprint``).

For each cell the ML Hamiltonian is predicted and the bands near charge neutrality are solved on the
moire path (``--npoints`` k-points through Gamma, K, M). ``--hamiltonian moon-koshino`` uses the
two-centre Moon-Koshino pz model instead (no ML; both structures moved to the mean interlayer distance
``--distance``, the relaxed one keeping its corrugation and in-plane displacements), to tell what the
relaxed geometry does from what the ML Hamiltonian does. The flat-band width, the gaps to the remote
bands and the mean interlayer distances go to ``validation/magic_angle.json`` (one entry per kind and
m; finished entries are skipped, so the script resumes after a kill); ``plot`` draws
``docs/images/magic_angle_scan.png`` and ``table`` prints the markdown table of docs/application.md.

    python3 validation/magic_angle.py rigid --m 27 28 29 30 31 32 33 34 35 36
    python3 validation/magic_angle.py relaxed --m 31 33 35
    python3 validation/magic_angle.py relaxed --m 31 --hamiltonian moon-koshino --distance 3.35
    python3 validation/magic_angle.py plot
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "validation" / "magic_angle.json"
WORK = ROOT / "scale_work"
FIGURE = ROOT / "docs" / "images" / "magic_angle_scan.png"
RIGID_DISTANCE = 3.545  # A: mean interlayer distance of the relaxed 1.05 deg cell (make demo with the model of the morning of 2026-12-07; 3.549 with the 9 A joint model, 3.538 with the model of 2026-12-04)


def _load() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {"entries": []}


def _save(data: dict) -> None:
    data["entries"].sort(key=lambda e: (e.get("hamiltonian", "ml"), e["kind"], e["m"]))
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, RESULTS)


def _mean_distance(atoms) -> float:
    z, layer = atoms.positions[:, 2], atoms.arrays["layer"]
    return float(z[layer == 1].mean() - z[layer == 0].mean())


def _local_distances(atoms) -> dict:
    """Interlayer distance on AA and AB/BA sites (registry classification of wander.moire.maps)."""
    from wander.moire.maps import interlayer_distance_map, stacking_registry

    dmap = interlayer_distance_map(atoms)
    reg = stacking_registry(atoms)
    labels, sampled = reg.extra["label"], reg.extra["atoms"]
    return {k: float(dmap.values[sampled[labels == k]].mean()) for k in ("AA", "AB", "BA", "SP")
            if (labels == k).any()}


def _model_id() -> str:
    """Fingerprint of the shipped checkpoint's force field (``forcefield_fingerprint``): a cached
    relaxed cell is reused only with the force field that relaxed it (new heads keep it)."""
    from wander.pretrained import resolve_model
    from wander.train.checkpoint import forcefield_fingerprint

    return forcefield_fingerprint(resolve_model(None))


def structure(kind: str, m: int, distance: float, fmax: float, threads: int):
    """The (m, m+1) cell, rigid at ``distance`` or relaxed (cached in scale_work/)."""
    from ase.io import read, write

    from wander.structures import twisted_bilayer

    atoms = twisted_bilayer("graphene", m=m, n=m + 1)
    if kind == "rigid":
        layer = atoms.arrays["layer"]
        atoms.positions[layer == 1, 2] += distance - _mean_distance(atoms)
        return atoms, {}
    cache = WORK / f"magic_relaxed_m{m}.extxyz"
    model_id = _model_id()
    if cache.exists():
        relaxed = read(cache)
        info = json.loads(relaxed.info.get("relax_record", "{}"))
        if info.get("forcefield_sha256") == model_id:
            relaxed.arrays["layer"] = atoms.arrays["layer"]
            return relaxed, info
        print(f"{cache.name} was relaxed with another force field; relaxing again", flush=True)
    from wander.calculator import WanderCalculator
    from wander.pretrained import resolve_model
    from wander.sim.relax import relax

    t0 = time.perf_counter()
    calc = WanderCalculator(resolve_model(None), precision="float32")
    relaxed = relax(atoms, calc, fmax=fmax, steps=2000, cell="in-plane", optimizer="LBFGS", progress=True)
    info = {"relax_steps": int(relaxed.info["relax_steps"]), "relax_converged": bool(relaxed.info["relax_converged"]),
            "relax_fmax": float(relaxed.info["relax_fmax"]), "relax_fmax_target": fmax,
            "relax_s": round(time.perf_counter() - t0, 1), "threads": threads, "forcefield_sha256": model_id}
    out = relaxed.copy()
    out.calc = None
    out.info["relax_record"] = json.dumps(info)
    WORK.mkdir(exist_ok=True)
    write(cache, out, format="extxyz")
    return relaxed, info


def _same(e: dict, kind: str, m: int, npoints: int, hamiltonian: str) -> bool:
    return (e["kind"], e["m"], e["npoints"], e.get("hamiltonian", "ml")) == (kind, m, npoints, hamiltonian)


def scan(kind: str, ms: list[int], distance: float, fmax: float, npoints: int, workers: int, threads: int,
         hamiltonian: str = "ml") -> None:
    from wander.pretrained import resolve_model
    from wander.sim.predictors import checkpoint_predictor
    from wander.sim.workflow import _path_bands
    from wander.tb.slater_koster import moon_koshino

    data = _load()
    predictor = checkpoint_predictor(resolve_model(None))
    for m in ms:
        if any(_same(e, kind, m, npoints, hamiltonian) for e in data["entries"]):
            print(f"{kind} m={m} ({hamiltonian}): done before, skipped")
            continue
        t0 = time.perf_counter()
        atoms, record = structure(kind, m, distance, fmax, threads)
        if hamiltonian == "ml":
            ham = predictor(atoms)
            n_e = predictor.electrons(atoms, ham)
        else:  # the same geometry at the mean distance of the two-centre model
            layer = atoms.arrays["layer"]
            atoms = atoms.copy()
            atoms.positions[layer == 1, 2] += distance - _mean_distance(atoms)
            ham = moon_koshino(atoms)
            n_e = float(ham.n_orbitals)
        t1 = time.perf_counter()
        _, _, fb = _path_bands(ham, n_e, npoints, n_bands=12, n_flat=4, progress=False, workers=workers)
        entry = {
            "kind": kind, "hamiltonian": hamiltonian, "m": m, "angle_deg": float(atoms.info["angle"]),
            "n_atoms": len(atoms),
            "npoints": npoints, "width_meV": 1e3 * fb.width,
            "gap_above_meV": None if fb.gap_above is None else 1e3 * fb.gap_above,
            "gap_below_meV": None if fb.gap_below is None else 1e3 * fb.gap_below,
            "mean_distance_A": _mean_distance(atoms), "local_distance_A": _local_distances(atoms),
            "bands_s": round(time.perf_counter() - t1, 1), "total_s": round(time.perf_counter() - t0, 1),
            "date": dt.datetime.now().isoformat(timespec="seconds"), **record,
        }
        print(json.dumps(entry), flush=True)
        data = _load()
        data["entries"] = [e for e in data["entries"] if not _same(e, kind, m, npoints, hamiltonian)] + [entry]
        data["model"] = str(resolve_model(None).name)
        if hamiltonian == "ml" and kind == "rigid":
            data["rigid_distance_A"] = distance
        _save(data)


def plot() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = _load()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(5.5, 6), sharex=True)
    styles = {"rigid": ("0.45", "o", f"rigid, d = {data.get('rigid_distance_A', RIGID_DISTANCE):.3f} A"),
              "relaxed": ("C3", "s", "relaxed (shipped force field)")}
    for kind, (colour, marker, label) in styles.items():
        es = sorted((e for e in data["entries"] if e["kind"] == kind and e.get("hamiltonian", "ml") == "ml"),
                    key=lambda e: e["angle_deg"])
        if not es:
            continue
        th = [e["angle_deg"] for e in es]
        ax.plot(th, [e["width_meV"] for e in es], marker=marker, color=colour, label=label)
        gap = [min(g for g in (e["gap_above_meV"], e["gap_below_meV"]) if g is not None) for e in es]
        ax2.plot(th, gap, marker=marker, color=colour, label=label)
    ax.set_ylabel("flat-band width (meV)")
    ax.legend(frameon=False)
    ax2.axhline(0, color="k", lw=0.6)
    ax2.set_ylabel("smaller gap to remote bands (meV)")
    ax2.set_xlabel("twist angle (deg)")
    fig.suptitle("Twisted bilayer graphene, shipped model, moire path")
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=130)
    print(f"wrote {FIGURE}")


def table() -> None:
    """The scan as the markdown table of docs/application.md (ML Hamiltonian entries)."""
    rows: dict[int, dict] = {}
    for e in _load()["entries"]:
        if e.get("hamiltonian", "ml") == "ml":
            rows.setdefault(e["m"], {})[e["kind"]] = e

    def cell(e) -> str:
        return "-" if e is None else f"{e['width_meV']:.1f} ({e['gap_below_meV']:.1f} / {e['gap_above_meV']:.1f})"

    print("| angle (m) | atoms | rigid: width (gap below / above), meV | relaxed: width (gap below / above), meV |")
    print("|---|---|---|---|")
    for m, v in sorted(rows.items()):
        a = v.get("rigid") or v["relaxed"]
        print(f"| {a['angle_deg']:.3f} deg ({m}) | {a['n_atoms']:,} | {cell(v.get('rigid'))} | {cell(v.get('relaxed'))} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=("rigid", "relaxed", "plot", "table"))
    p.add_argument("--m", type=int, nargs="+", default=[29, 30, 31, 32, 33, 34, 35])
    p.add_argument("--distance", type=float, default=RIGID_DISTANCE, help="rigid interlayer distance, A")
    p.add_argument("--fmax", type=float, default=0.001, help="relaxation target, eV/A")
    p.add_argument("--npoints", type=int, default=16, help="k-points on the moire path")
    p.add_argument("--workers", type=int, default=2, help="processes for the band solves")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--hamiltonian", choices=("ml", "moon-koshino"), default="ml",
                   help="the shipped model's heads, or the two-centre Moon-Koshino model at --distance")
    args = p.parse_args(argv)
    if args.kind == "plot":
        plot()
        return 0
    if args.kind == "table":
        table()
        return 0
    import torch

    torch.set_num_threads(args.threads)
    scan(args.kind, args.m, args.distance, args.fmax, args.npoints, args.workers, args.threads, args.hamiltonian)
    return 0


if __name__ == "__main__":
    sys.exit(main())
