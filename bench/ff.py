"""Stage 1: force-field throughput (energy + forces + virial) of se_e2_a, wander vs DeePMD-kit.

Both codes get DeePMD's default sizes (rcut 6, rcut_smth 0.5, neuron [25, 50, 100], axis_neuron 16,
fitting [240, 240, 240], float64) on AB bilayer graphene, one torch thread each, and are timed in
separate child processes. DeePMD-kit is timed twice: ``forward`` (its own pure-PyTorch neighbour
search, which builds a dense N x N_extended distance array) and ``forward_lower`` given a neighbour
list built outside the timer (the way LAMMPS drives it), which isolates the network cost.
"""

from __future__ import annotations

import os
import time

from common import Timer, ab_bilayer, loadavg, measure, peak_rss, reset_peak, run_child

SEL = 80           # >= the 72 neighbours of an AB-bilayer carbon within 6 A
HYPER = {"rcut": 6.0, "rcut_smth": 0.5, "sel": [SEL], "neuron": [25, 50, 100], "axis_neuron": 16,
         "fitting": [240, 240, 240]}
DP_PYTHON = os.environ.get("WANDER_BENCH_DP_PYTHON", "/tmp/dpvenv/bin/python")
CHUNK_ATOMS = 8192  # wander's evaluator chunk, and DeePMD-kit's above 10k atoms


def _wander_model():
    import torch

    from wander.nn.model import ForceField

    torch.manual_seed(0)
    cfg = {"type_map": ["C"],
           "descriptor": {"rcut": HYPER["rcut"], "rcut_smth": HYPER["rcut_smth"], "sel": HYPER["sel"],
                          "neuron": HYPER["neuron"], "axis_neuron": HYPER["axis_neuron"], "resnet_dt": False,
                          "type_one_side": False, "seed": 1},
           "fitting_net": {"neuron": HYPER["fitting"], "resnet_dt": True, "seed": 2}}
    return ForceField.from_config(cfg).eval()


def wander_worker(n_atoms: int, repeats: int = 1, chunk_atoms: int = CHUNK_ATOMS) -> dict:
    """Neighbour list + chunked energy/forces/virial (wander.sim.evaluation, as the ASE calculator)."""
    import torch

    from wander.sim.evaluation import build_neighbor_list, evaluate_forcefield

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    atoms = ab_bilayer(n_atoms)
    model = _wander_model()
    out: dict = {"n_atoms": len(atoms), "threads": torch.get_num_threads()}
    runs = []
    for _ in range(repeats):
        r: dict = {}
        with measure(r, "nlist"):
            nl = build_neighbor_list(atoms, model.rcut)
        with measure(r, "model"):
            res = evaluate_forcefield(model, atoms, nl, compute_virial=True, chunk_atoms=chunk_atoms)
        runs.append(r)
    best = min(runs, key=lambda r: r["nlist"]["cpu_s"] + r["model"]["cpu_s"])
    out.update(best)
    out["neighbors_per_atom"] = nl.n_pairs / len(atoms)
    out["max_neighbors"] = int((nl.row_ptr[1:] - nl.row_ptr[:-1]).max())
    out["energy"] = res.energy
    return out


def _dp_model():
    import torch
    from deepmd.pt.model.model import get_model

    torch.manual_seed(0)
    params = {"type_map": ["C"],
              "descriptor": {"type": "se_e2_a", "rcut": HYPER["rcut"], "rcut_smth": HYPER["rcut_smth"],
                             "sel": HYPER["sel"], "neuron": HYPER["neuron"], "axis_neuron": HYPER["axis_neuron"],
                             "resnet_dt": False, "type_one_side": False, "precision": "float64", "seed": 1},
              "fitting_net": {"neuron": HYPER["fitting"], "resnet_dt": True, "precision": "float64", "seed": 2}}
    return get_model(params).eval()


def _extended_system(atoms, rcut: float, sel: int):
    """Ghost atoms and a (nloc, sel) neighbour list sorted by distance, padded with -1 (O(N) search)."""
    import numpy as np

    from wander.data.neighbors import neighbor_list

    nl = neighbor_list(atoms, rcut)
    n = len(atoms)
    i, j, S = nl.i, nl.j, nl.shift.astype(np.int64)
    ghost = np.any(S != 0, axis=1)
    key = (S[ghost] + 64) @ np.array([129 * 129, 129, 1]) * n + j[ghost]
    uniq, inv = np.unique(key, return_inverse=True)
    g_j = uniq % n
    ext_index = j.copy()
    ext_index[ghost] = n + inv
    g_shift = np.stack([(uniq // n) // (129 * 129), (uniq // n) // 129 % 129, (uniq // n) % 129], 1) - 64
    cell = np.array(atoms.cell)
    ext_pos = np.concatenate([atoms.positions, atoms.positions[g_j] + g_shift @ cell])
    mapping = np.concatenate([np.arange(n), g_j])
    dist = np.linalg.norm(ext_pos[ext_index] - atoms.positions[i], axis=1)
    order = np.lexsort((dist, i))
    i, ext_index = i[order], ext_index[order]
    counts = np.bincount(i, minlength=n)
    if counts.max() > sel:
        raise ValueError(f"{counts.max()} neighbours exceed sel {sel}")
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    col = np.arange(len(i)) - start[i]
    nlist = -np.ones((n, sel), dtype=np.int64)
    nlist[i, col] = ext_index
    return ext_pos, mapping, nlist


def dp_lower_call(model, ext_pos, mapping, nlist):
    """``call() -> (energy, forces)``: DeePMD-kit's ``forward_lower`` on a prepared extended system,
    its extended forces folded back onto the local atoms (what LAMMPS does)."""
    import torch

    n = nlist.shape[0]
    ext = torch.tensor(ext_pos.reshape(1, -1), dtype=torch.float64)
    ext_type = torch.zeros((1, len(ext_pos)), dtype=torch.long)
    nl_t, map_t = torch.tensor(nlist[None]), torch.tensor(mapping[None])

    def call():
        ret = model.forward_lower(ext, ext_type, nl_t, map_t)
        forces = torch.zeros(n, 3, dtype=torch.float64).index_add_(0, map_t[0], ret["extended_force"][0].detach())
        return float(ret["energy"].detach().sum()), forces

    return call


def dp_lower_chunked_call(model, ext_pos, mapping, nlist, chunk_atoms: int = CHUNK_ATOMS):
    """``call() -> (energy, forces)``: ``forward_lower`` over chunks of ``chunk_atoms`` local atoms,
    each with its own ghost shell (domain decomposition as in a multi-rank LAMMPS run), so that memory
    stays bounded. Energies add up and the extended forces of every chunk are folded back onto their
    owners, which gives exactly the forces of one whole-system call."""
    import numpy as np
    import torch

    n = nlist.shape[0]
    parts = []
    for a in range(0, n, chunk_atoms):
        b = min(n, a + chunk_atoms)
        nl = nlist[a:b]
        others = np.setdiff1d(np.unique(nl[nl >= 0]), np.arange(a, b))
        keep = np.concatenate([np.arange(a, b), others])
        new_index = -np.ones(len(ext_pos), dtype=np.int64)
        new_index[keep] = np.arange(len(keep))
        local_nl = np.where(nl >= 0, new_index[np.maximum(nl, 0)], -1)
        parts.append((torch.tensor(ext_pos[keep].reshape(1, -1), dtype=torch.float64),
                      torch.tensor(local_nl[None]), torch.tensor(mapping[keep][None])))

    def call():
        energy = 0.0
        forces = torch.zeros(n, 3, dtype=torch.float64)
        for ext, nl_t, map_t in parts:
            ext_type = torch.zeros((1, ext.shape[1] // 3), dtype=torch.long)
            ret = model.forward_lower(ext, ext_type, nl_t, map_t)
            energy += float(ret["energy"].detach().sum())
            forces.index_add_(0, map_t[0], ret["extended_force"][0].detach())
            del ret
        return energy, forces

    return call


def deepmd_worker(n_atoms: int, repeats: int = 1, own_nlist: bool = True, chunk_atoms: int | None = None) -> dict:
    import numpy as np
    import torch

    import deepmd

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    atoms = ab_bilayer(n_atoms)
    n = len(atoms)
    model = _dp_model()
    out: dict = {"n_atoms": n, "deepmd_version": deepmd.__version__, "threads": torch.get_num_threads()}
    coord = torch.tensor(atoms.positions.reshape(1, -1), dtype=torch.float64)
    atype = torch.zeros((1, n), dtype=torch.long)
    box = torch.tensor(np.array(atoms.cell).reshape(1, 9), dtype=torch.float64)  # vacuum 20 A > rcut
    if own_nlist:
        runs = []
        for _ in range(repeats):
            r: dict = {}
            with measure(r, "forward"):
                ret = model(coord, atype, box=box)
                float(ret["energy"].sum())
            runs.append(r)
        out["forward"] = min(runs, key=lambda r: r["forward"]["cpu_s"])["forward"]
        out["energy_forward"] = float(ret["energy"].sum())
    r: dict = {}
    with measure(r, "nlist"):
        ext_pos, mapping, nlist = _extended_system(atoms, HYPER["rcut"], SEL)
    if chunk_atoms is None:
        lower = dp_lower_call(model, ext_pos, mapping, nlist)
    else:
        with measure(r, "chunks"):  # ghost shells of the chunks, outside the timer like the list
            lower = dp_lower_chunked_call(model, ext_pos, mapping, nlist, chunk_atoms)
        out["chunk_atoms"] = chunk_atoms
    runs = []
    for _ in range(repeats):
        rr: dict = {}
        with measure(rr, "lower"):
            energy, _ = lower()
        runs.append(rr)
    out["nlist"] = r["nlist"]
    out["lower"] = min(runs, key=lambda r: r["lower"]["cpu_s"])["lower"]
    out["energy_lower"] = energy
    out["n_extended"] = len(ext_pos)
    return out


def run(quick: bool = False, threads: int = 1) -> dict:
    sizes = [1000, 10000] if quick else [1000, 10000, 100000]
    dp_avail = os.path.exists(DP_PYTHON)
    res: dict = {"hyperparameters": HYPER, "threads": threads, "rows": []}
    if not dp_avail:
        res["deepmd"] = "deepmd-kit not available"
        print(f"  deepmd-kit not available ({DP_PYTHON} missing): baseline skipped")
    for n in sizes:
        row: dict = {"n_atoms_requested": n}
        w = run_child("ff", "wander_worker", {"n_atoms": n, "repeats": 2 if n <= 1000 else 1},
                      threads=threads, timeout=900)
        row["wander"] = w
        if dp_avail:
            own = n <= 1000  # its dense O(N x N_ext) neighbour search: 1k only
            # one whole-system forward_lower needs ~0.4 MB per atom (4.1 GiB at 10k): chunks above 10k,
            # with the same chunk size as wander's evaluator
            d = run_child("ff", "deepmd_worker", {"n_atoms": n, "repeats": 2 if n <= 1000 else 1,
                                                  "own_nlist": own,
                                                  "chunk_atoms": CHUNK_ATOMS if n > 10000 else None},
                          python=DP_PYTHON, threads=threads, timeout=900)
            row["deepmd"] = d
        _summarise(row)
        res["rows"].append(row)
    return res


def _summarise(row: dict) -> None:
    w, d = row.get("wander", {}), row.get("deepmd")
    if "error" in w:
        print(f"  wander {row['n_atoms_requested']}: {w['error']} {w.get('stderr_tail', '')}")
        return
    n = w["n_atoms"]
    w_cpu = w["nlist"]["cpu_s"] + w["model"]["cpu_s"]
    w_wall = w["nlist"]["wall_s"] + w["model"]["wall_s"]
    row["wander_atom_steps_per_cpu_s"] = n / w_cpu
    row["wander_atom_steps_per_wall_s"] = n / w_wall
    line = (f"  {n:>7d} atoms  wander: {w_cpu:7.2f} s CPU ({w_wall:7.2f} s wall, load {w['model']['load']})"
            f"  {n / w_cpu:8.0f} atom-steps/CPU-s, peak +{w['model']['peak_increase_bytes'] / 2**20:.0f} MiB")
    print(line)
    if d is None:
        return
    if "error" in d:
        print(f"           deepmd: {d['error']} {d.get('stderr_tail', '')}")
        row["deepmd_error"] = d["error"]
        return
    lower_cpu = d["lower"]["cpu_s"]
    row["speedup_model_only_cpu"] = lower_cpu / w["model"]["cpu_s"]
    row["speedup_model_only_wall"] = d["lower"]["wall_s"] / w["model"]["wall_s"]
    msg = (f"           deepmd {d['deepmd_version']} forward_lower (nlist given): {lower_cpu:7.2f} s CPU "
           f"-> wander model {row['speedup_model_only_cpu']:.2f}x faster (CPU), {row['speedup_model_only_wall']:.2f}x (wall)")
    print(msg)
    if "forward" in d:
        row["speedup_total_cpu"] = d["forward"]["cpu_s"] / w_cpu
        row["speedup_total_wall"] = d["forward"]["wall_s"] / w_wall
        print(f"           deepmd forward (own nlist): {d['forward']['cpu_s']:7.2f} s CPU, peak +"
              f"{d['forward']['peak_increase_bytes'] / 2**20:.0f} MiB -> wander {row['speedup_total_cpu']:.2f}x faster (CPU)")

