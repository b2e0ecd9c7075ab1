"""Profiles of one stage's main workload, written as text (``python3 bench/profile_stage.py NAME``).

NAME: ``ff`` (wander se_e2_a energy+forces, 1k atoms, torch.profiler + cProfile), ``hamiltonian``
(ML prediction, 1k atoms), ``solvers`` (KPM moments, 1e5 orbitals, cProfile), ``training``
(joint training steps, cProfile).
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH, ab_bilayer, loadavg, machine_info  # noqa: E402


def _workload(name: str):
    if name == "ff":
        from ff import _wander_model
        from wander.sim.evaluation import build_neighbor_list, evaluate_forcefield

        atoms, model = ab_bilayer(1000), _wander_model()
        nl = build_neighbor_list(atoms, model.rcut)
        evaluate_forcefield(model, atoms, nl)
        return lambda: evaluate_forcefield(model, atoms, build_neighbor_list(atoms, model.rcut)), True
    if name == "hamiltonian":
        from hamiltonian import _ml_models
        from wander.nn.hamiltonian.assemble import predict_hamiltonian
        from wander.sim.evaluation import build_neighbor_list, compute_descriptors

        atoms = ab_bilayer(1000)
        ff, heads = _ml_models()
        d = compute_descriptors(ff, atoms, build_neighbor_list(atoms, ff.rcut))
        return lambda: predict_hamiltonian(heads, atoms, d), True
    if name == "solvers":
        import numpy as np

        from wander.tb import moon_koshino
        from wander.tb.kpm import kpm_moments, spectral_bounds

        h = moon_koshino(ab_bilayer(100000)).hk(np.zeros(3))
        b = spectral_bounds(h)
        return lambda: kpm_moments(h, 64, b, n_vectors=8, seed=1), False
    if name == "training":
        from training import train_worker

        return lambda: train_worker(joint=True, steps=20), True
    raise SystemExit(f"unknown stage {name!r}")


def profile(name: str, out: Path | None = None, top: int = 25) -> Path:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    fn, torch_ops = _workload(name)
    out = out or BENCH / f"profile_{name}.txt"
    buf = io.StringIO()
    buf.write(f"profile of stage '{name}' ({machine_info()['cpu_model']}, torch threads {torch.get_num_threads()}, "
              f"load before {loadavg()})\n\n")
    pr = cProfile.Profile()
    pr.enable()
    fn()
    pr.disable()
    buf.write("== cProfile, top functions by cumulative time ==\n")
    pstats.Stats(pr, stream=buf).sort_stats("cumulative").print_stats(top)
    buf.write("== cProfile, top functions by own (tottime) time ==\n")
    pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(top)
    if torch_ops:
        from torch.profiler import ProfilerActivity, profile as tprofile

        with tprofile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        buf.write("== torch.profiler, operators by self CPU time ==\n")
        buf.write(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))
    buf.write(f"\nload after {loadavg()}\n")
    out.write_text(buf.getvalue())
    return out


if __name__ == "__main__":
    print(profile(sys.argv[1]))


def profile_main(name: str) -> dict:
    """Child-process entry (``common.run_child``)."""
    return {"path": str(profile(name))}
