"""Scale checks of the shipped model on twisted bilayer graphene beyond the benchmark suite's sizes.

    python3 bench/scale.py relax1e5   # 0.33 deg cell (114,076 atoms): LBFGS relaxation, ML H, KPM DOS
    python3 bench/scale.py h1e6       # 0.105 deg cell (998,788 atoms): ML Hamiltonian, KPM DOS
    python3 bench/scale.py all        # both (smoke: a 364-atom cell, to check the script)
    python3 bench/scale.py save-state # last frame of the relax1e5 parts -> bench/relax1e5_state.npz
    python3 bench/scale.py report     # registry / distance statistics of that state vs the rigid cell,
                                      # distance map and KPM DOS figures (docs/images/tbg_0.34deg_*)

Each stage runs in a fresh child process (its peak RSS is its own), prints its figures and merges
them into ``bench/scale_results.json`` (machine, versions, date, load average). The relaxation of
``relax1e5`` writes ``scale_work/relax1e5.<part>.traj`` (every 5th step) and a rerun after a kill
starts from the last frame written.
``save-state`` stores that frame (float32 displacements from the rigid cell, the cell, the steps
done so far) in ``bench/relax1e5_state.npz``, small enough to commit, and a run on a machine
without ``scale_work/`` starts from it, so the relaxation can be carried over several sessions.
These runs take tens of minutes each on 2 cores (the 1e5-atom relaxation hours), so they are not
part of ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH, loadavg, machine_info, peak_rss, rss, versions  # noqa: E402

RESULTS = BENCH / "scale_results.json"
WORK = BENCH.parent / "scale_work"
CASES = {"relax1e5": 0.33, "h1e6": 0.105, "smoke": 6.01}  # smoke: a 364-atom check of the script
RELAX = ("relax1e5", "smoke")
STATE = BENCH / "relax1e5_state.npz"
IMAGES = BENCH.parent / "docs" / "images"
TRAJ_INTERVAL = 5
GIB = 2**30


def _stamp(out: dict, key: str, t0: float, c0: float) -> None:
    out[key] = {"wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(time.process_time() - c0, 2),
                "rss_GiB": round(rss() / GIB, 3), "peak_rss_GiB": round(peak_rss() / GIB, 3), "load": loadavg()}
    print(f"  {key}: {out[key]}", flush=True)


def _kpm(ham, out: dict, moments: int, vectors: int) -> None:
    from wander.tb import density_of_states

    t0, c0 = time.perf_counter(), time.process_time()
    dos = density_of_states(ham, (1, 1, 1), method="kpm", moments=moments, vectors=vectors, npts=800, seed=0,
                            progress=True)
    _stamp(out, "kpm_dos", t0, c0)
    e, w = dos.get_energies(), dos.get_weights()
    de = e[1] - e[0]
    out["kpm_dos"].update(moments=moments, vectors=vectors, states_integrated=float(w.sum() * de),
                          n_orbitals=ham.n_orbitals)
    np.savez_compressed(WORK / f"{out['case']}_dos.npz", energies=e, weights=w)


def _estimate(atoms, ckpt, relax: bool) -> dict:
    """The package's memory estimate of this case (peak and per-stage GiB), to set beside the measured peak."""
    from wander.sim.memory import estimate_memory
    from wander.train.checkpoint import load_checkpoint

    payload = load_checkpoint(ckpt)
    heads, desc = payload["hamiltonian"]["heads_config"], payload["config"]["model"]["descriptor"]
    est = estimate_memory(atoms, model_cutoff=desc["rcut"], descriptor_neurons=tuple(desc["neuron"]),
                          axis_neuron=desc["axis_neuron"], relax=relax, hopping_cutoff=heads["r_cut"],
                          solver="kpm", descriptor_dim=heads["descriptor_dim"])
    return {"peak_GiB": round(est.peak / GIB, 2),
            **{f"{name}_GiB": round(est.stage_total(name) / GIB, 2) for name in est.stages}}


def stage(case: str, steps: int, fmax: float, moments: int, vectors: int) -> dict:
    from wander.pretrained import resolve_model
    from wander.sim.predictors import checkpoint_predictor
    from wander.structures import twisted_bilayer

    WORK.mkdir(exist_ok=True)
    out: dict = {"case": case, "date": dt.datetime.now().isoformat(timespec="seconds")}
    t0, c0 = time.perf_counter(), time.process_time()
    atoms = twisted_bilayer("graphene", angle=CASES[case])
    out.update(n_atoms=len(atoms), angle_deg=float(atoms.info["angle"]))
    _stamp(out, "build", t0, c0)
    ckpt = resolve_model(None)
    out["estimate"] = _estimate(atoms, ckpt, relax=case in RELAX)
    print(f"  estimate: {out['estimate']}", flush=True)
    if case in RELAX:
        from ase.io import read

        from wander.calculator import WanderCalculator
        from wander.sim.relax import relax

        parts = _parts(case)
        start = atoms
        if parts:  # resume from the last written frame of the previous part
            last = read(parts[-1], -1)
            start = atoms.copy()
            start.positions, start.cell = last.positions, last.cell
            out["resumed_from"] = parts[-1].name
        elif case == "relax1e5" and STATE.exists():  # carried over from another machine
            start, done = _load_state(atoms)
            out["resumed_from"] = f"{STATE.name} (about {done} steps done before)"
            (WORK / f"{case}.base").write_text(f"{done}\n")  # steps before this machine's parts
        traj = WORK / f"{case}.{len(parts)}.traj"
        calc = WanderCalculator(ckpt, precision="float32")
        t0, c0 = time.perf_counter(), time.process_time()
        relaxed = relax(start, calc, fmax=fmax, steps=steps, cell="in-plane", optimizer="LBFGS",
                        trajectory=str(traj), traj_interval=TRAJ_INTERVAL, progress=True)
        _stamp(out, "relax", t0, c0)
        z = relaxed.positions[:, 2]
        layer = relaxed.arrays["layer"]
        out["relax"].update(steps=int(relaxed.info["relax_steps"]), converged=bool(relaxed.info["relax_converged"]),
                            fmax_final=float(relaxed.info["relax_fmax"]), fmax_target=fmax,
                            energy_initial_eV=float(relaxed.info["relax_energy_initial"]),
                            energy_final_eV=float(relaxed.get_potential_energy()),
                            mean_interlayer_A=float(z[layer == 1].mean() - z[layer == 0].mean()))
        atoms = relaxed
        del calc
    t0, c0 = time.perf_counter(), time.process_time()
    ham = checkpoint_predictor(ckpt, progress=True)(atoms)
    _stamp(out, "ml_hamiltonian", t0, c0)
    out["ml_hamiltonian"].update(n_orbitals=ham.n_orbitals, n_hoppings=int(ham.n_hoppings))
    _kpm(ham, out, moments, vectors)
    out["peak_rss_GiB"] = round(peak_rss() / GIB, 3)
    return out


def _parts(case: str) -> list[Path]:
    parts = sorted(WORK.glob(f"{case}.*.traj"), key=lambda f: int(f.name.split(".")[1]))
    return [f for f in parts if f.stat().st_size > 0]


def _load_state(rigid):
    data = np.load(STATE)
    if data["positions_rigid_shape"].tolist() != list(rigid.positions.shape):
        raise SystemExit(f"{STATE} was saved for another cell ({data['positions_rigid_shape']} positions)")
    start = rigid.copy()
    start.positions = rigid.positions + data["displacement"].astype(float)
    start.cell = data["cell"]
    return start, int(data["steps_done"])


def save_state() -> int:
    """Last frame of the relax1e5 trajectory parts (plus any earlier carried-over state) -> STATE."""
    from ase.io import read
    from ase.io.trajectory import Trajectory

    from wander.structures import twisted_bilayer

    parts = _parts("relax1e5")
    if not parts:
        print(f"no relax1e5 trajectory under {WORK}: nothing to save")
        return 1
    rigid = twisted_bilayer("graphene", angle=CASES["relax1e5"])
    base = WORK / "relax1e5.base"
    done = int(base.read_text()) if base.exists() else 0
    for f in parts:  # one frame every TRAJ_INTERVAL steps, the first at step 0 of the part
        with Trajectory(f) as traj:  # frame count from the index, without reading the frames
            done += TRAJ_INTERVAL * (len(traj) - 1)
    last = read(parts[-1], -1)
    fmax = float(np.linalg.norm(last.get_forces(), axis=1).max())
    np.savez_compressed(STATE, displacement=(last.positions - rigid.positions).astype(np.float32),
                        cell=np.asarray(last.cell), steps_done=done, fmax_atoms=fmax,
                        positions_rigid_shape=np.array(rigid.positions.shape))
    print(f"saved {STATE} ({STATE.stat().st_size / 2**20:.2f} MiB): about {done} steps, max atomic force "
          f"{fmax:.4f} eV/A")
    return 0


def report() -> int:
    """Moire statistics of the saved relax1e5 state against the rigid cell, a distance map and the KPM DOS
    figure (docs/images/tbg_0.34deg_*.png); merged into the relax1e5 entry of the results."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wander.calculator import WanderCalculator
    from wander.moire.maps import interlayer_distance_map, stacking_registry
    from wander.moire.plots import plot_map, save_figure
    from wander.pretrained import resolve_model
    from wander.structures import twisted_bilayer

    rigid = twisted_bilayer("graphene", angle=CASES["relax1e5"])
    relaxed, done = _load_state(rigid)
    stats = {"steps_done": done}
    for name, atoms in (("rigid", rigid), ("relaxed", relaxed)):
        reg = stacking_registry(atoms)
        dmap = interlayer_distance_map(atoms)
        labels, sampled = reg.extra["label"], reg.extra["atoms"]
        calc = WanderCalculator(resolve_model(None), precision="float32")
        atoms.calc = calc
        stats[name] = {
            "registry_sites": {k: int((labels == k).sum()) for k in ("AA", "AB", "BA", "SP")},
            "distance_A": {k: float(dmap.values[sampled[labels == k]].mean()) for k in ("AA", "AB", "BA", "SP")
                           if (labels == k).any()},
            "distance_range_A": [float(dmap.values.min()), float(dmap.values.max())],
            "energy_eV": float(atoms.get_potential_energy()),
            "fmax_eV_A": float(np.linalg.norm(atoms.get_forces(), axis=1).max()),
        }
        atoms.calc = None
        if name == "relaxed":
            fig = plot_map(dmap, title=f"interlayer distance (A), {len(atoms):,} atoms, relaxed")
            save_figure(fig, str(IMAGES / "tbg_0.34deg_interlayer_distance.png"))
            plt.close("all")
    stats["relaxation_energy_meV_per_atom"] = 1e3 * (stats["relaxed"]["energy_eV"] - stats["rigid"]["energy_eV"]) / len(rigid)
    dos_file = WORK / "relax1e5_dos.npz"
    if dos_file.exists():
        dos = np.load(dos_file)
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        ax.plot(dos["energies"], dos["weights"] / len(rigid), color="C0", lw=1)
        ax.set_xlabel("energy (eV)")
        ax.set_ylabel("DOS (states / eV / orbital)")
        ax.set_title(f"KPM DOS, relaxed 0.34 deg TBG, {len(rigid):,} orbitals")
        fig.tight_layout()
        fig.savefig(IMAGES / "tbg_0.34deg_kpm_dos.png", dpi=130)
        plt.close(fig)
    data = json.loads(RESULTS.read_text())
    data["runs"]["relax1e5"]["maps"] = stats
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(stats, indent=1))
    return 0


def _merge(result: dict) -> None:
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data.setdefault("runs", {})[result["case"]] = result
    data.update(machine=machine_info(), versions=versions(), updated=dt.datetime.now().isoformat(timespec="seconds"))
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("case", choices=(*CASES, "all", "save-state", "report"))
    p.add_argument("--steps", type=int, default=600, help="relaxation step limit (relax1e5)")
    p.add_argument("--fmax", type=float, default=0.02, help="relaxation target, eV/A (relax1e5)")
    p.add_argument("--moments", type=int, default=2000, help="KPM moments")
    p.add_argument("--vectors", type=int, default=8, help="KPM random vectors")
    p.add_argument("--threads", type=int, default=2, help="torch / BLAS threads")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.case == "save-state":
        return save_state()
    if args.case == "report":
        return report()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        _merge(stage(args.case, args.steps, args.fmax, args.moments, args.vectors))
        return 0
    rc = 0
    for case in ("relax1e5", "h1e6") if args.case == "all" else (args.case,):
        print(f"== {case} ({CASES[case]} deg)", flush=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "OPENBLAS_NUM_THREADS": str(args.threads)}
        cmd = [sys.executable, __file__, case, "--child", "--steps", str(args.steps), "--fmax", str(args.fmax),
               "--moments", str(args.moments), "--vectors", str(args.vectors), "--threads", str(args.threads)]
        rc = max(rc, subprocess.call(cmd, env=env))
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
