"""Stage 4: training throughput (frames/s) on datasets/blg with docs/examples/blg.yaml settings,
force field only and jointly with the Hamiltonian heads (``wander.train.train``, a few steps).

Data loading and statistics happen before the first step and are reported separately; the rate is
taken over the steps after ``warmup`` (the first steps include allocator warm-up).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from common import ROOT, loadavg, run_child


def train_worker(joint: bool, steps: int = 30, warmup: int = 3) -> dict:
    import torch
    import yaml

    from wander.train.config import parse_config
    from wander.train.loop import train

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    example = ROOT / "docs" / "examples" / "blg.yaml"
    data = yaml.safe_load(example.read_text())
    if not joint:
        data["model"].pop("hamiltonian")
        data["loss"].pop("hamiltonian")
    data["training"].pop("validation_data")
    data["training"].update({"numb_steps": steps, "disp_freq": 10**6, "save_freq": 10**6, "tensorboard": False})
    cfg = parse_config(data, base_dir=example.parent)
    marks: list[tuple[float, float]] = []
    t0 = (time.perf_counter(), time.process_time())
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, tmp, progress=False, on_step=lambda s: marks.append((time.perf_counter(), time.process_time())))
    total = (time.perf_counter() - t0[0], time.process_time() - t0[1])
    bs = cfg.training.batch_size
    timed = steps - warmup
    wall = marks[-1][0] - marks[warmup - 1][0]
    cpu = marks[-1][1] - marks[warmup - 1][1]
    return {"joint": joint, "steps": steps, "timed_steps": timed, "batch_size": bs,
            "setup_wall_s": marks[0][0] - t0[0], "setup_cpu_s": marks[0][1] - t0[1],
            "total_wall_s": total[0], "total_cpu_s": total[1],
            "step_wall_s": wall / timed, "step_cpu_s": cpu / timed,
            "frames_per_cpu_s": bs * timed / cpu, "frames_per_wall_s": bs * timed / wall,
            "threads": torch.get_num_threads(), "load": loadavg()}


def run(quick: bool = False, threads: int = 1) -> dict:
    steps = 20 if quick else 60
    res: dict = {"threads": threads, "dataset": "datasets/blg (3 training frames of 4 atoms)"}
    for joint in (False, True):
        r = run_child("training", "train_worker", {"joint": joint, "steps": steps}, threads=threads, timeout=900)
        key = "joint" if joint else "forcefield"
        res[key] = r
        if "error" in r:
            print(f"  {key}: {r['error']} {r.get('stderr_tail', '')}")
            continue
        print(f"  {key:10s}: {r['frames_per_cpu_s']:7.1f} frames/CPU-s ({r['frames_per_wall_s']:.1f}/wall-s), "
              f"{r['step_cpu_s'] * 1e3:.1f} ms CPU per step over {r['timed_steps']} steps; setup {r['setup_cpu_s']:.1f} s CPU; load {r['load']}")
    if "error" not in res["forcefield"] and "error" not in res["joint"]:
        res["joint_over_forcefield_step_cost"] = res["joint"]["step_cpu_s"] / res["forcefield"]["step_cpu_s"]
        print(f"  joint step costs {res['joint_over_forcefield_step_cost']:.2f}x a force-field-only step (CPU)")
    return res
