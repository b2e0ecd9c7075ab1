"""Where the se_e2_a time goes, wander against DeePMD-kit (``python3 bench/profile_ff_vs_deepmd.py [N ...]``).

Runs the two force-field workloads of ``bench/ff.py`` (energy + forces + virial, DeePMD default sizes,
float64, one thread, neighbour list given) at N atoms (default 1,000 and 10,000) in child processes
(DeePMD-kit with its own interpreter): the CPU time per call after a warm-up call (mean of
``repeats``), then one call under ``torch.profiler``. Both operator tables, sorted by self CPU time,
go to ``bench/profile_ff_vs_deepmd.txt``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH, ab_bilayer, loadavg, run_child  # noqa: E402

ROWS = 22


def _table(fn, repeats: int) -> dict:
    import time

    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    fn()  # warm-up
    t0 = time.process_time()
    for _ in range(repeats):
        fn()
    cpu = (time.process_time() - t0) / repeats
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {"cpu_s": cpu, "load": loadavg(),
            "table": prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=ROWS)}


def wander_profile(n_atoms: int, repeats: int) -> dict:
    from ff import _wander_model
    from wander.sim.evaluation import build_neighbor_list, evaluate_forcefield

    atoms, model = ab_bilayer(n_atoms), _wander_model()
    nl = build_neighbor_list(atoms, model.rcut)
    out = _table(lambda: evaluate_forcefield(model, atoms, nl, compute_virial=True), repeats)
    out["pairs"] = int(nl.n_pairs)
    return out


def deepmd_profile(n_atoms: int, repeats: int) -> dict:
    from ff import HYPER, SEL, _dp_model, _extended_system, dp_lower_call

    ext_pos, mapping, nlist = _extended_system(ab_bilayer(n_atoms), HYPER["rcut"], SEL)
    out = _table(dp_lower_call(_dp_model(), ext_pos, mapping, nlist), repeats)
    out["padded_slots"] = int(nlist.size)
    out["real_neighbours"] = int((nlist >= 0).sum())
    return out


def main(sizes: list[int]) -> Path:
    from ff import DP_PYTHON

    out = BENCH / "profile_ff_vs_deepmd.txt"
    text = ["se_e2_a energy + forces + virial on AB bilayer graphene, DeePMD default sizes (sel 80, neuron "
            "[25, 50, 100], axis 16, fitting [240, 240, 240]), float64, 1 thread, neighbour list given\n"]
    for n in sizes:
        kw = {"n_atoms": n, "repeats": 3 if n <= 2000 else 1}
        w = run_child("profile_ff_vs_deepmd", "wander_profile", kw, threads=1, timeout=900)
        d = (run_child("profile_ff_vs_deepmd", "deepmd_profile", kw, python=DP_PYTHON, threads=1, timeout=900)
             if os.path.exists(DP_PYTHON) else {"error": f"{DP_PYTHON} missing"})
        ratio = d.get("cpu_s", float("nan")) / w.get("cpu_s", float("nan"))
        text.append(f"######## {n} atoms: wander {w.get('cpu_s', float('nan')):.3f} CPU-s per call, DeePMD-kit "
                    f"{d.get('cpu_s', float('nan')):.3f} (wander {ratio:.2f}x faster)\n")
        text.append(f"== wander evaluate_forcefield: {w.get('pairs')} directed pairs (load {w.get('load')}) ==\n"
                    f"{w.get('table', w.get('error'))}\n")
        text.append(f"== DeePMD-kit forward_lower: {d.get('padded_slots')} neighbour slots, {d.get('real_neighbours')} "
                    f"real (load {d.get('load')}) ==\n{d.get('table', d.get('error'))}\n")
        out.write_text("\n".join(text))
    return out


if __name__ == "__main__":
    print(main([int(x) for x in sys.argv[1:]] or [1000, 10000]))
