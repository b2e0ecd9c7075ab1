"""Stage 3: eigensolvers and KPM against the machine's limits.

* Bands nearest E_F of twisted bilayer graphene (Moon-Koshino): dense LAPACK (``scipy.linalg.eigh``,
  ``driver="evr"``, only the window of bands by index: the cheapest dense route) versus wander's
  sparse shift-invert (``ShiftInvert`` + ``eigsh_near`` in the nested-dissection order), per k-point.
  Dense at 1.05 deg (11,908 orbitals) needs 2.3 GB per complex matrix and O(n^3) time; it is
  extrapolated from smaller commensurate cells by an n^3 fit unless ``dense_full`` is requested.
* KPM DOS (``wander.tb.kpm.kpm_moments``) of 1e5 / 1e6-orbital AB bilayers: time per sparse product
  and the streaming rate of the matrix data, against the memory bandwidth of a large numpy copy /
  add measured in the same run (the physical limit of a memory-bound SpMV).
"""

from __future__ import annotations

import os

import numpy as np

from common import ab_bilayer, measure, run_child

SIGMA = 0.80  # eV, charge neutrality of the Moon-Koshino model (docs/tb.md)
K_POINTS = [(1 / 3, 1 / 3, 0.0), (0.30, 0.31, 0.0)]  # near the moire K point, complex H(k)


def _tbg(i: int):
    from wander.structures import twisted_bilayer
    from wander.tb import moon_koshino

    atoms = twisted_bilayer("graphene", m=i, n=i + 1)
    return atoms, moon_koshino(atoms)


def sparse_worker(i: int, n_bands: int = 8, n_k: int = 2) -> dict:
    from wander.tb.eigen import ShiftInvert, eigsh_near

    atoms, ham = _tbg(i)
    out: dict = {"m": i, "n": i + 1, "angle": float(atoms.info["angle"]), "n_orbitals": ham.n_orbitals,
                 "n_bands": n_bands, "k": []}
    with measure(out, "order_and_pattern"):
        asm = ham.assembler(ordered=True, diagonal=True)
    v0 = None
    for k in K_POINTS[:n_k]:
        r: dict = {"k": list(k)}
        with measure(r, "assemble"):
            h = asm.matrix(np.array(k))
        with measure(r, "factorise"):
            f = ShiftInvert(h, SIGMA)
        with measure(r, "arpack"):
            res = eigsh_near(h, SIGMA, n_bands, v0=v0, factor=f, extra=2)
        v0 = res.vectors.sum(axis=1)
        r["eigenvalues"] = [float(x) for x in res.eigenvalues]
        r["first_band"] = res.n_below
        r["total"] = {key: sum(r[s][key] for s in ("assemble", "factorise", "arpack")) for key in ("wall_s", "cpu_s")}
        out["k"].append(r)
    return out


def dense_worker(i: int, n_bands: int = 8) -> dict:
    import scipy.linalg as sla

    atoms, ham = _tbg(i)
    n = ham.n_orbitals
    out: dict = {"m": i, "n": i + 1, "angle": float(atoms.info["angle"]), "n_orbitals": n, "n_bands": n_bands}
    k = np.array(K_POINTS[0])
    with measure(out, "to_dense"):
        a = ham.hk(k).toarray()
    lo = n // 2 - n_bands
    with measure(out, "eigh_window"):
        e = sla.eigh(a, subset_by_index=[lo, lo + 2 * n_bands - 1], driver="evr", overwrite_a=True,
                     eigvals_only=False)[0]
    out["eigenvalues"] = [float(x) for x in e]
    out["matrix_bytes"] = n * n * 16
    return out


def kpm_worker(n_atoms: int, n_moments: int = 64, n_vectors: int = 8, spmv_repeats: int = 10) -> dict:
    import scipy.sparse as sp

    from wander.tb import moon_koshino
    from wander.tb.kpm import kpm_moments, spectral_bounds

    atoms = ab_bilayer(n_atoms)
    ham = moon_koshino(atoms)
    h = ham.hk(np.zeros(3))
    h = sp.csr_matrix((h.data.real.copy(), h.indices, h.indptr), shape=h.shape)  # real at Gamma
    n = h.shape[0]
    out: dict = {"n_orbitals": n, "nnz": int(h.nnz), "n_moments": n_moments, "n_vectors": n_vectors}
    with measure(out, "bounds"):
        bounds = spectral_bounds(h)
    bounds = tuple(float(b) for b in bounds[:2]) if isinstance(bounds, tuple) else bounds
    with measure(out, "moments"):
        mu = kpm_moments(h, n_moments, bounds, n_vectors=n_vectors, seed=1)
    out["mu0_per_orbital"] = float(mu[0] / n)
    block = int(max(1, min(16, 2**28 // max(1, 3 * n * 8))))  # kpm_moments' default block (real H)
    n_products = int(np.ceil(n_vectors / block)) * ((n_moments + 1) // 2)
    out["block"] = block
    out["per_block_product_s"] = {k: out["moments"][k] / n_products for k in ("wall_s", "cpu_s")}
    out["per_vector_product_s"] = {k: out["moments"][k] / (n_products * min(block, n_vectors)) for k in ("wall_s", "cpu_s")}
    # raw single-vector SpMV: bytes of matrix data streamed per product
    x = np.random.default_rng(0).standard_normal(n)
    y = h @ x
    with measure(out, "spmv"):
        for _ in range(spmv_repeats):
            y = h @ x
    out["spmv"]["wall_s"] /= spmv_repeats
    out["spmv"]["cpu_s"] /= spmv_repeats
    mat_bytes = h.data.nbytes + h.indices.nbytes + h.indptr.nbytes
    vec_bytes = 2 * x.nbytes  # x read once (ideal) + y written
    out["matrix_bytes"] = int(mat_bytes)
    out["spmv_matrix_GBps_wall"] = mat_bytes / out["spmv"]["wall_s"] / 1e9
    out["spmv_matrix_GBps_cpu"] = mat_bytes / out["spmv"]["cpu_s"] / 1e9
    out["spmv_total_GBps_cpu"] = (mat_bytes + vec_bytes) / out["spmv"]["cpu_s"] / 1e9
    out["kpm_matrix_GBps_cpu"] = mat_bytes / out["per_block_product_s"]["cpu_s"] / 1e9
    # least traffic of one Chebyshev step per vector: its share of the matrix + read a1, a0, write a2
    out["kpm_min_bytes_per_vector"] = mat_bytes / min(block, n_vectors) + 3 * 8 * n
    return out


def bandwidth_worker(mbytes: int = 256, repeats: int = 5) -> dict:
    """Single-thread memory bandwidth: numpy copy (read + write) and add (2 reads + 1 write)."""
    import time

    n = mbytes * 2**20 // 8
    a = np.ones(n)
    b = np.empty(n)
    c = np.full(n, 2.0)
    np.copyto(b, a)
    best: dict = {}
    for name, op, passes in (("copy", lambda: np.copyto(b, a), 2), ("add", lambda: np.add(a, c, out=b), 3)):
        ts = []
        for _ in range(repeats):
            t = time.process_time()
            op()
            ts.append(time.process_time() - t)
        tw = []
        for _ in range(repeats):
            t = time.perf_counter()
            op()
            tw.append(time.perf_counter() - t)
        best[name + "_GBps_cpu"] = passes * a.nbytes / min(ts) / 1e9
        best[name + "_GBps_wall"] = passes * a.nbytes / min(tw) / 1e9
    best["array_bytes"] = int(a.nbytes)
    return best


def run(quick: bool = False, threads: int = 1) -> dict:
    res: dict = {"threads": threads, "sigma_eV": SIGMA}
    bw = run_child("solvers", "bandwidth_worker", {}, threads=1, timeout=300)
    res["bandwidth"] = bw
    if "error" not in bw:
        print(f"  memory bandwidth (1 thread, {bw['array_bytes'] / 2**20:.0f} MiB arrays): copy {bw['copy_GBps_cpu']:.1f} GB/s, "
              f"add {bw['add_GBps_cpu']:.1f} GB/s (CPU-time based; wall {bw['copy_GBps_wall']:.1f} / {bw['add_GBps_wall']:.1f})")
    dense_cells = [10, 14] if quick else [10, 14, 17]
    sparse_cells = [14, 31] if quick else [14, 17, 31]
    res["dense"], res["sparse"] = [], []
    for i in dense_cells:
        r = run_child("solvers", "dense_worker", {"i": i}, threads=threads, timeout=900)
        if "error" in r:
            print(f"  dense ({i},{i + 1}): {r['error']} {r.get('stderr_tail', '')}")
            continue
        res["dense"].append(r)
        print(f"  dense eigh (16 bands by index) {r['n_orbitals']:>6d} orbitals ({r['angle']:.2f} deg): "
              f"{r['eigh_window']['cpu_s']:7.2f} s CPU ({r['eigh_window']['wall_s']:.2f} s wall), "
              f"matrix {r['matrix_bytes'] / 2**30:.2f} GiB, load {r['eigh_window']['load']}")
    for i in sparse_cells:
        r = run_child("solvers", "sparse_worker", {"i": i, "n_k": 2}, threads=threads, timeout=900)
        if "error" in r:
            print(f"  sparse ({i},{i + 1}): {r['error']} {r.get('stderr_tail', '')}")
            continue
        res["sparse"].append(r)
        ks = r["k"]
        per_k = float(np.mean([k["total"]["cpu_s"] for k in ks]))
        r["per_k_cpu_s"] = per_k
        r["per_k_wall_s"] = float(np.mean([k["total"]["wall_s"] for k in ks]))
        print(f"  shift-invert {r['n_bands']} bands {r['n_orbitals']:>6d} orbitals: {per_k:6.2f} s CPU per k "
              f"(factorise {np.mean([k['factorise']['cpu_s'] for k in ks]):.2f}, ARPACK {np.mean([k['arpack']['cpu_s'] for k in ks]):.2f}; "
              f"order+pattern once {r['order_and_pattern']['cpu_s']:.2f} s), peak +"
              f"{max(k['factorise']['peak_increase_bytes'] for k in ks) / 2**20:.0f} MiB, load {ks[-1]['arpack']['load']}")
    # dense n^3 fit and same-size ratios
    if len(res["dense"]) >= 2:
        n = np.array([r["n_orbitals"] for r in res["dense"]], float)
        t = np.array([r["eigh_window"]["cpu_s"] for r in res["dense"]])
        c = float(np.exp(np.mean(np.log(t / n**3))))
        expo = float(np.polyfit(np.log(n), np.log(t), 1)[0])
        res["dense_fit"] = {"c_n3": c, "fitted_exponent": expo}
        for r in res["sparse"]:
            dense_est = c * r["n_orbitals"] ** 3
            measured = [d for d in res["dense"] if d["n_orbitals"] == r["n_orbitals"]]
            dense_t = measured[0]["eigh_window"]["cpu_s"] if measured else dense_est
            r["dense_cpu_s"] = dense_t
            r["dense_is_extrapolated"] = not measured
            r["speedup_vs_dense_cpu"] = dense_t / r["per_k_cpu_s"]
            if measured:
                d = np.array(measured[0]["eigenvalues"])
                s = np.array(r["k"][0]["eigenvalues"] or [])
                r["max_eigenvalue_difference_eV"] = float(np.max(np.min(np.abs(s[:, None] - d[None, :]), axis=1))) if len(s) else None
            tag = "n^3-extrapolated" if not measured else "measured"
            print(f"  -> {r['n_orbitals']:>6d} orbitals: shift-invert {r['speedup_vs_dense_cpu']:.1f}x faster than dense ({tag} "
                  f"{dense_t:.1f} s CPU; dense exponent fitted {expo:.2f})"
                  + (f", max |e_sparse - e_dense| {r['max_eigenvalue_difference_eV']:.1e} eV" if r.get("max_eigenvalue_difference_eV") is not None else ""))
    if quick:
        kpm_sizes = [(100000, 64, 8)]
    else:
        kpm_sizes = [(100000, 200, 8), (1000000, 40, 4)]
    res["kpm"] = []
    for n, nm, nv in kpm_sizes:
        r = run_child("solvers", "kpm_worker", {"n_atoms": n, "n_moments": nm, "n_vectors": nv}, threads=threads, timeout=900)
        if "error" in r:
            print(f"  KPM {n}: {r['error']} {r.get('stderr_tail', '')}")
            continue
        if "error" not in bw:
            r["fraction_of_copy_bandwidth"] = r["spmv_matrix_GBps_cpu"] / bw["copy_GBps_cpu"]
            r["kpm_fraction_of_copy_bandwidth"] = r["kpm_matrix_GBps_cpu"] / bw["copy_GBps_cpu"]
            r["kpm_bound_per_vector_s"] = r["kpm_min_bytes_per_vector"] / (bw["copy_GBps_cpu"] * 1e9)
            r["kpm_fraction_of_bound"] = r["kpm_bound_per_vector_s"] / r["per_vector_product_s"]["cpu_s"]
        res["kpm"].append(r)
        print(f"  KPM {r['n_orbitals']:>8d} orbitals (nnz {r['nnz']:.3g}): {r['n_moments']} moments x {r['n_vectors']} vectors "
              f"{r['moments']['cpu_s']:.2f} s CPU; per block product ({min(r['block'], r['n_vectors'])} vectors) {r['per_block_product_s']['cpu_s'] * 1e3:.1f} ms, "
              f"per vector {r['per_vector_product_s']['cpu_s'] * 1e3:.2f} ms; single SpMV {r['spmv']['cpu_s'] * 1e3:.1f} ms = "
              f"{r['spmv_matrix_GBps_cpu']:.2f} GB/s matrix data = {r.get('fraction_of_copy_bandwidth', float('nan')):.2f} of copy bandwidth; "
              f"in KPM blocks {r['kpm_matrix_GBps_cpu']:.2f} GB/s matrix data; per vector step {r['per_vector_product_s']['cpu_s'] * 1e3:.2f} ms vs "
              f"bandwidth bound {r.get('kpm_bound_per_vector_s', float('nan')) * 1e3:.2f} ms = {r.get('kpm_fraction_of_bound', float('nan')):.2f} of the limit; load {r['spmv']['load']}")
    return res
