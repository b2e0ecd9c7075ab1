"""wander benchmark suite: ``python3 bench/run.py [--quick] [--only NAME] [-o bench/results.json]``.

Stages (one module each): ff, hamiltonian, solvers, training. Every figure is printed with the load
average; comparisons are ratios against a baseline measured in the same run. The JSON holds the
machine, versions, date and all raw figures. At the end the stage furthest from its target is named
and profiled (bench/profile_<stage>.txt) unless --no-profile.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH, loadavg, machine_info, run_child, versions  # noqa: E402

STAGES = ("ff", "hamiltonian", "solvers", "training")


def target_ratios(results: dict) -> dict:
    """measured / target for each stage (>= 1 meets the target; smaller is further from it)."""
    out = {}
    ff = results.get("ff", {})
    rows = [r for r in ff.get("rows", []) if "speedup_model_only_cpu" in r]
    if rows:
        r = rows[-1]  # largest size with both codes
        out["ff"] = {"ratio": r["speedup_model_only_cpu"],
                     "what": f"wander / DeePMD-kit model speed (CPU, {r['wander']['n_atoms']} atoms, target >= 1)"}
    ham = results.get("hamiltonian", {})
    ex = [(k, v["time_exponent_cpu"]) for k, v in ham.get("exponents", {}).items()
          if v.get("time_exponent_cpu") is not None and k != "hk_cached"]
    if ex:
        k, worst = max(ex, key=lambda kv: kv[1])
        out["hamiltonian"] = {"ratio": min(1.0, 1.0 / worst) if worst > 0 else 1.0,
                              "what": f"1 / largest time exponent ({k}: {worst:.2f}, target ~1)"}
    sol = results.get("solvers", {})
    kpm = [r for r in sol.get("kpm", []) if "kpm_fraction_of_bound" in r]
    if kpm:
        r = kpm[-1]
        out["solvers"] = {"ratio": r["kpm_fraction_of_bound"],
                          "what": f"KPM time per vector step: memory-bandwidth bound / measured ({r['n_orbitals']} orbitals, target 1)"}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes (a couple of minutes)")
    p.add_argument("--only", choices=STAGES, action="append", help="run only this stage (repeatable)")
    p.add_argument("-o", "--output", default=str(BENCH / "results.json"))
    p.add_argument("--threads", type=int, default=1, help="torch / BLAS threads in every measurement")
    p.add_argument("--no-profile", action="store_true")
    args = p.parse_args(argv)
    stages = args.only or list(STAGES)
    t0 = time.perf_counter()
    results: dict = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                     "mode": "quick" if args.quick else "full", "threads": args.threads,
                     "machine": machine_info(), "versions": versions(), "load_start": loadavg(), "stages": {}}
    m = results["machine"]
    print(f"wander benchmarks ({results['mode']}) on {m['cpu_model']}, {m['usable_cores']} cores, "
          f"{m['memory_bytes'] / 2**30:.1f} GiB; load {results['load_start']}; threads per measurement {args.threads}")
    v = results["versions"]
    print("versions: " + ", ".join(f"{k} {v[k]}" for k in ("python", "torch", "numpy", "scipy", "wander", "git_commit")))
    for name in stages:
        print(f"\n[{name}]")
        ts = time.perf_counter()
        try:
            results["stages"][name] = importlib.import_module(name).run(quick=args.quick, threads=args.threads)
        except Exception as exc:  # noqa: BLE001 - one stage failing must not lose the others
            results["stages"][name] = {"error": repr(exc)}
            print(f"  stage failed: {exc!r}")
        results["stages"][name]["stage_wall_s"] = time.perf_counter() - ts
        print(f"  ({name}: {results['stages'][name]['stage_wall_s']:.0f} s wall, load {loadavg()})")
    ratios = target_ratios(results["stages"])
    results["targets"] = ratios
    if ratios:
        print("\nagainst targets (measured / target, < 1 misses it):")
        for k, r in ratios.items():
            print(f"  {k:12s} {r['ratio']:.2f}  {r['what']}")
        slowest = min(ratios, key=lambda k: ratios[k]["ratio"])
        results["slowest_stage"] = slowest
        print(f"slowest stage relative to its target: {slowest}")
        if not args.no_profile:
            r = run_child("profile_stage", "profile_main", {"name": slowest}, threads=args.threads, timeout=900)
            results["profile"] = r
            print(f"  profile: {r.get('path', r.get('error'))}")
    results["total_wall_s"] = time.perf_counter() - t0
    results["load_end"] = loadavg()
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=1, default=float))
    os.replace(tmp, out)
    print(f"\ntotal {results['total_wall_s']:.0f} s wall; results -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
