"""Stage 2: Hamiltonian prediction and H(k) assembly versus system size (time, peak memory, exponent).

* Moon-Koshino two-centre model build (``wander.tb.moon_koshino``) and ``TBHamiltonian.hk``
  (first call builds the cached CSR pattern, later calls only the phases + a gather),
  1e3 .. 1e6 atoms of AB bilayer graphene;
* ML prediction: se_e2_a descriptor (``wander.sim.evaluation.compute_descriptors``) followed by
  ``wander.nn.hamiltonian.assemble.predict_hamiltonian`` with default-width pz heads (float64,
  untrained weights: the cost does not depend on their values).

Each size runs in its own child process; the peak is the increase of VmHWM above the RSS at the
start of the step (VmHWM reset through /proc/self/clear_refs).
"""

from __future__ import annotations

import os

from common import ab_bilayer, fit_exponent, measure, run_child


def tb_worker(n_atoms: int) -> dict:
    import numpy as np

    from wander.tb import moon_koshino

    atoms = ab_bilayer(n_atoms)
    out: dict = {"n_atoms": len(atoms)}
    with measure(out, "model_build"):
        ham = moon_koshino(atoms)
    out["n_hoppings"] = int(ham.n_hoppings)
    k = np.array([0.1234, 0.2345, 0.0])
    with measure(out, "hk_first"):
        h = ham.hk(k)
    with measure(out, "hk_cached"):
        for _ in range(3):
            h = ham.hk(k + [0.01, 0.01, 0.0])
    out["hk_cached"]["wall_s"] /= 3
    out["hk_cached"]["cpu_s"] /= 3
    out["nnz"] = int(h.nnz)
    return out


def _ml_models():
    import torch

    from wander.nn.hamiltonian import HamiltonianHeads, HeadsConfig

    from ff import _wander_model

    ff = _wander_model()
    torch.manual_seed(0)
    cfg = HeadsConfig(type_map=("C",), orbitals={"C": "pz"}, descriptor_dim=ff.descriptor.dim_out,
                      r_cut=7.0, r_near=3.3, descriptor_mode="frozen", seed=1)
    return ff, HamiltonianHeads(cfg).eval()


def ml_worker(n_atoms: int) -> dict:
    import torch

    from wander.nn.hamiltonian.assemble import predict_hamiltonian
    from wander.sim.evaluation import build_neighbor_list, compute_descriptors

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    atoms = ab_bilayer(n_atoms)
    ff, heads = _ml_models()
    out: dict = {"n_atoms": len(atoms)}
    with measure(out, "descriptor"):
        d = compute_descriptors(ff, atoms, build_neighbor_list(atoms, ff.rcut))
    with measure(out, "predict"):
        tb = predict_hamiltonian(heads, atoms, d)
    out["n_hoppings"] = int(tb.n_hoppings)
    return out


def _fits(rows: list[dict], key: str) -> dict:
    ok = [r for r in rows if key in r]
    n = [r["n_atoms"] for r in ok]
    return {"time_exponent_cpu": fit_exponent(n, [r[key]["cpu_s"] for r in ok]),
            "memory_exponent": fit_exponent(n, [r[key]["peak_increase_bytes"] for r in ok])}


def run(quick: bool = False, threads: int = 1) -> dict:
    tb_sizes = [1000, 10000, 100000] if quick else [1000, 10000, 100000, 1000000]
    ml_sizes = [250, 1000] if quick else [300, 1000, 3000]
    res: dict = {"threads": threads, "tb": [], "ml": []}
    print("  Moon-Koshino build and H(k) (CPU s; peak = RSS increase):")
    for n in tb_sizes:
        r = run_child("hamiltonian", "tb_worker", {"n_atoms": n}, threads=threads, timeout=900)
        if "error" in r:
            print(f"    {n}: {r['error']} {r.get('stderr_tail', '')}")
            continue
        res["tb"].append(r)
        print(f"    {r['n_atoms']:>8d} atoms {r['n_hoppings']:>10d} hoppings  build {r['model_build']['cpu_s']:7.2f} s "
              f"(+{r['model_build']['peak_increase_bytes'] / 2**20:7.0f} MiB)  H(k) first {r['hk_first']['cpu_s']:6.2f} s  "
              f"cached {r['hk_cached']['cpu_s'] * 1e3:8.1f} ms  load {r['hk_cached']['load']}")
    print("  ML prediction (descriptor + heads):")
    for n in ml_sizes:
        r = run_child("hamiltonian", "ml_worker", {"n_atoms": n}, threads=threads, timeout=900)
        if "error" in r:
            print(f"    {n}: {r['error']} {r.get('stderr_tail', '')}")
            continue
        res["ml"].append(r)
        print(f"    {r['n_atoms']:>8d} atoms {r['n_hoppings']:>10d} hoppings  descriptor {r['descriptor']['cpu_s']:6.2f} s  "
              f"predict_hamiltonian {r['predict']['cpu_s']:7.2f} s  ({r['predict']['cpu_s'] / r['n_hoppings'] * 1e6:.1f} us/hopping, "
              f"+{r['predict']['peak_increase_bytes'] / 2**20:.0f} MiB)  load {r['predict']['load']}")
    res["exponents"] = {"model_build": _fits(res["tb"], "model_build"), "hk_first": _fits(res["tb"], "hk_first"),
                        "hk_cached": _fits(res["tb"], "hk_cached"), "ml_predict": _fits(res["ml"], "predict"),
                        "ml_descriptor": _fits(res["ml"], "descriptor")}
    for k, v in res["exponents"].items():
        t, m = v["time_exponent_cpu"], v["memory_exponent"]
        print(f"    scaling exponent {k:14s} time {t if t is None else round(t, 3)}  memory {m if m is None else round(m, 3)}")
    return res
