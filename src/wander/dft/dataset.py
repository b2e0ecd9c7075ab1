"""Dataset of DFT frames with Wannier Hamiltonians, grown one configuration at a time.

Layout of a dataset folder::

    frames.extxyz       ASE extended XYZ: energy (eV), forces (eV/A), stress (eV/A^3, ASE
                        sign), arrays["layer"], info: config, split, fermi_energy, band errors
    hamiltonians.npz    H(R) blocks of every frame, concatenated with offsets (see below)
    metadata.json       units, conventions, DFT/Wannier settings, code versions, per-configuration
                        outcome (done / failed with reason), quality-gate statistics
    deepmd/{train,valid}/<formula>/   DeePMD-kit npy layout (see wander.dft.deepmd_npy)

``hamiltonians.npz`` (frame f, pair p, Wannier function w)::

    frame_names (nf,) str          num_wann (nf,) int       fermi_energy (nf,) eV
    max_imag_dropped (nf,) eV      band_err_max_meV (nf, 3) windows +-0.5/1/1.5 eV
    atom_offset (nf+1,)            per-frame slice of per-atom arrays
    orb_count (natoms_total,)      Wannier functions on each atom
    orb_offset (nf+1,)             per-frame slice of per-WF arrays
    orb_atom (nwf_total,)          host atom (index within the frame)
    orb_label (nwf_total,) str     Wannier90 names ("pz", "dxy", ...), default lab axes
    pair_offset (nf+1,)            per-frame slice of per-pair arrays
    pair_i, pair_j (np,) int       atoms of the block (indices within the frame)
    pair_R (np, 3) int             lattice shift of atom j: hop vector = pos_j + R @ cell - pos_i
    block_offset (np+1,)           slice of block_values; block shape (orb_count[i], orb_count[j])
    block_values (nval,) float64   H_{mn}(R) = <w_m,0|H|w_n,R> in eV, row-major, m on atom i

All pairs are stored (both (i, j, R) and (j, i, -R)); blocks whose largest
element is below ``MIN_ABS`` are dropped.  Hopping vectors are Wannier90's
minimal-image ones (``use_ws_distance``); the imaginary parts (zero up to
numerical noise for these real-projection, time-reversal-symmetric gauges) are
dropped and their maximum recorded.
"""

from __future__ import annotations

import json
import os
import platform
import time
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from wander.dft.qe_input import atomic_write_text
from wander.dft.qe_output import read_pw_output
from wander.dft.wannier_output import assign_orbitals, load_wsvec, read_nnkp_projections
from wander.io import apply_wsvec, read_hr

__all__ = ["frame_blocks", "append_configuration", "collected_names", "load_hamiltonians",
           "summary_markdown",
           "split_of", "MIN_ABS", "VALID_PERCENT"]

MIN_ABS = 1e-5  # eV
VALID_PERCENT = 15
_PER_FRAME = ("frame_names", "num_wann", "fermi_energy", "max_imag_dropped", "band_err_max_meV")


def split_of(name: str, params: dict | None = None) -> str:
    """``"train"`` or ``"valid"``, fixed per configuration name (CRC32 hash).

    Named high-symmetry registries always go to training.
    """
    if params and params.get("registry"):
        return "train"
    return "valid" if zlib.crc32(name.encode()) % 100 < VALID_PERCENT else "train"


def frame_blocks(atoms: Atoms, hr_path: Path, wsvec_path: Path, nnkp_path: Path,
                 min_abs: float = MIN_ABS) -> dict:
    """Atom-pair blocks of one Wannier Hamiltonian.

    Returns:
        dict with orb_count (nat,), orb_atom (nw,), orb_label (nw,), pair_i, pair_j (np,),
        pair_R (np, 3), block_offset (np+1,), block_values (nval,), max_imag, num_wann.
    """
    hr = read_hr(hr_path)
    R, m, n, t = apply_wsvec(hr, load_wsvec(wsvec_path))
    proj, labels = read_nnkp_projections(nnkp_path)
    host = assign_orbitals(proj, atoms.get_scaled_positions(wrap=False))
    nat = len(atoms)
    orb_count = np.bincount(host, minlength=nat)
    # position of each WF inside its atom's block, in WF order
    local = np.zeros(hr.num_wann, dtype=int)
    for a in range(nat):
        idx = np.flatnonzero(host == a)
        local[idx] = np.arange(len(idx))
    a, b = host[m], host[n]
    key = np.c_[a, b, R]
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.ravel()
    sizes = orb_count[uniq[:, 0]] * orb_count[uniq[:, 1]]
    offs = np.r_[0, np.cumsum(sizes)]
    vals = np.zeros(offs[-1])
    pos = offs[inv] + local[m] * orb_count[b] + local[n]
    vals[pos] = t.real
    blockmax = np.zeros(len(uniq))
    np.maximum.at(blockmax, inv, np.abs(t.real))
    keep = blockmax >= min_abs
    kept_sizes = sizes[keep]
    kept_vals = np.concatenate([vals[offs[k]:offs[k + 1]] for k in np.flatnonzero(keep)]) \
        if keep.any() else np.zeros(0)
    return {"orb_count": orb_count, "orb_atom": host, "orb_label": np.array(labels),
            "pair_i": uniq[keep, 0], "pair_j": uniq[keep, 1], "pair_R": uniq[keep, 2:5],
            "block_offset": np.r_[0, np.cumsum(kept_sizes)], "block_values": kept_vals,
            "max_imag": float(np.abs(t.imag).max()), "num_wann": hr.num_wann}


def load_hamiltonians(dataset: str | os.PathLike) -> dict[str, np.ndarray]:
    """Arrays of ``hamiltonians.npz`` (empty dict if absent)."""
    p = Path(dataset) / "hamiltonians.npz"
    if not p.exists():
        return {}
    with np.load(p, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _metadata(dataset: Path) -> dict:
    p = dataset / "metadata.json"
    if p.exists():
        return json.loads(p.read_text())
    return {"configurations": {}}


def collected_names(dataset: str | os.PathLike | None) -> set[str]:
    """Configurations already recorded in ``dataset`` (finished or failed)."""
    if dataset is None:
        return set()
    return set(_metadata(Path(dataset)).get("configurations", {}))


def _versions(d: Path) -> dict:
    import ase

    v = {"python": platform.python_version(), "numpy": np.__version__, "ase": ase.__version__}
    try:
        v["pw.x"] = read_pw_output(d / "scf.out").version
    except (OSError, ValueError):
        pass
    wout = d / "wan.wout"
    if wout.exists():
        for ln in wout.read_text(errors="replace").splitlines()[:200]:
            if "Release:" in ln:
                v["wannier90"] = ln.split("Release:")[1].split()[0]
    return v


def _gate_stats(confs: dict) -> dict:
    done = [c for c in confs.values() if c["state"] == "done"]
    failed = [c for c in confs.values() if c["state"] == "failed"]
    st: dict = {"done": len(done), "failed": len(failed)}
    reasons: dict[str, int] = {}
    for c in failed:
        reasons[c.get("reason") or "unknown"] = reasons.get(c.get("reason") or "unknown", 0) + 1
    st["failure_reasons"] = reasons
    wannier = [c for c in done if c.get("labels", "full") != "forcefield"]
    if done:
        st["forcefield_only"] = len(done) - len(wannier)
    if wannier:
        for w in ("0.5", "1", "1.5"):
            arr = np.array([c["band_errors"][w]["max_meV"] for c in wannier])
            st[f"band_err_max_meV_{w}eV"] = {"median": float(np.median(arr)), "max": float(arr.max())}
        sp = np.array([c["max_spread"] for c in wannier])
        st["max_spread_A2"] = {"median": float(np.median(sp)), "max": float(sp.max())}
        co = np.array([c["max_centre_offset"] for c in wannier])
        st["max_centre_offset_A"] = {"median": float(np.median(co)), "max": float(co.max())}
    if done:
        st["splits"] = {s: sum(c["split"] == s for c in done) for s in ("train", "valid")}
        st["atoms"] = {str(k): sum(c["natoms"] == k for c in done)
                       for k in sorted({c["natoms"] for c in done})}
    return st


def append_configuration(dataset: str | os.PathLike, config_dir: str | os.PathLike) -> bool:
    """Record one finished or failed configuration in ``dataset``.

    Finished configurations add a frame (extxyz + H blocks, DeePMD files rewritten; force-field-only
    configurations, ``params["labels"] == "forcefield"``, add no H blocks);
    failed ones only add their reason to ``metadata.json``.  Already recorded names
    and unfinished configurations are ignored.  Returns True if something was added.
    """
    from wander.dft.deepmd_npy import write_deepmd_splits
    from wander.dft.pipeline import forcefield_only, read_status

    ds = Path(dataset)
    d = Path(config_dir)
    meta = _metadata(ds)
    confs = meta.setdefault("configurations", {})
    if d.name in confs:
        return False
    status = read_status(d)
    if status.get("state") not in ("done", "failed"):
        return False
    cfg = json.loads((d / "config.json").read_text())
    ds.mkdir(parents=True, exist_ok=True)
    entry: dict = {"state": status["state"], "params": cfg["params"],
                   "seconds": round(sum(status.get("timings", {}).values()), 1)}
    if status["state"] == "failed":
        entry.update(reason=status.get("reason"), error=status.get("error"))
        res = d / "result.json"
        if res.exists():
            entry["gate"] = json.loads(res.read_text())["gate"]
    else:
        atoms = read(d / "structure.extxyz", format="extxyz")
        scf = read_pw_output(d / "scf.out")
        result = json.loads((d / "result.json").read_text())
        split = split_of(d.name, cfg["params"])
        frame = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell,
                      pbc=atoms.pbc)
        frame.arrays["layer"] = atoms.arrays["layer"].copy()
        frame.calc = SinglePointCalculator(frame, energy=scf.energy, forces=scf.forces,
                                           stress=scf.stress)
        frame.info.update(config=d.name, split=split, fermi_energy=scf.fermi_energy)
        entry.update(split=split, natoms=len(atoms), fermi_energy=scf.fermi_energy, energy=scf.energy,
                     scf_kgrid=result.get("scf_kgrid", result.get("kgrid")))
        if forcefield_only(cfg["params"]):  # SCF labels only, no Hamiltonian
            frame.info["labels"] = "forcefield"
            _write_frames(ds, frame, d.name)
            entry.update(labels="forcefield", max_force=result["max_force_eV_A"])
        else:
            gate = result["gate"]
            frame.info.update(num_wann=result["num_wann"],
                              band_err_max_meV_1eV=gate["band_errors"]["1"]["max_meV"])
            blocks = frame_blocks(atoms, d / "wan_hr.dat", d / "wan_wsvec.dat", d / "wan.nnkp")
            _append_frame(ds, frame, blocks, d.name, scf.fermi_energy,
                          [gate["band_errors"][w]["max_meV"] for w in ("0.5", "1", "1.5")])
            entry.update(band_errors=gate["band_errors"], max_spread=gate["max_spread"],
                         max_centre_offset=gate["max_centre_offset"], kgrid=result["kgrid"],
                         max_imag_dropped=blocks["max_imag"],
                         frozen_window_rel_EF_eV=result.get("frozen_window_rel_EF_eV"))
            meta["settings"] = cfg["preset"]
        meta["code_versions"] = _versions(d)
    confs[d.name] = entry
    meta.update({
        "format": "wander-dft-dataset/1",
        "units": {"energy": "eV", "length": "Angstrom", "forces": "eV/Angstrom",
                  "stress": "eV/Angstrom^3 (ASE sign: positive = tensile)",
                  "virial": "eV (= -stress * volume)", "hamiltonian": "eV"},
        "conventions": {
            "cell": "rows; pbc (T, T, F); vacuum along z; slab centred at z = 0",
            "hamiltonian": "H_mn(R) = <w_m,0|H|w_n,R> (Wannier90); R = lattice shift of atom j; "
                           "hop vector = pos_j + R @ cell - pos_i (minimal image, use_ws_distance)",
            "gauge": "projection-based Wannier functions in the lab frame (Wannier90 default "
                     "axes), disentangled with a frozen window, num_iter = 0 (no maximal "
                     "localisation), guiding_centres; orbital order per atom is Wannier90's "
                     "(p: pz, px, py; d: dz2, dxz, dyz, dx2-y2, dxy)",
            "energy_zero": "pw.x's; fermi_energy given per frame",
            "split": f"by configuration: CRC32(name) % 100 < {VALID_PERCENT} -> valid; "
                     "named registries always train"},
        "quality_gate": "see settings: band_tol_meV within +-band_window_eV of E_F at 15 "
                        "k-points off the Wannier grid (G-M-K-G path), spread_max, centre_max",
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })
    meta["statistics"] = _gate_stats(confs)
    if status["state"] == "done":
        write_deepmd_splits(ds / "frames.extxyz", ds / "deepmd")
    atomic_write_text(ds / "metadata.json", json.dumps(meta, indent=1) + "\n")
    return True


def _frames_tmp(ds: Path, frame: Atoms, name: str) -> Path:
    """frames.extxyz with ``frame`` replacing any frame of ``name``, written to a temporary file."""
    xyz = ds / "frames.extxyz"
    frames = read(xyz, index=":", format="extxyz") if xyz.exists() else []
    frames = [f for f in frames if f.info.get("config") != name] + [frame]
    tmp = ds / ".frames.tmp.extxyz"
    write(tmp, frames, format="extxyz")
    return tmp


def _write_frames(ds: Path, frame: Atoms, name: str) -> None:
    os.replace(_frames_tmp(ds, frame, name), ds / "frames.extxyz")


_PER_ATOM = ("orb_count",)
_PER_ORB = ("orb_atom", "orb_label")
_PER_PAIR = ("pair_i", "pair_j", "pair_R")


def _frame_part(name: str, blocks: dict, ef: float, band_err: Sequence[float]) -> dict:
    """``hamiltonians.npz`` arrays of one frame (offsets local to it) from :func:`frame_blocks`."""
    part = {"frame_names": np.array([name]), "num_wann": np.array([blocks["num_wann"]]),
            "fermi_energy": np.array([ef]), "max_imag_dropped": np.array([blocks["max_imag"]]),
            "band_err_max_meV": np.array([list(band_err)], dtype=float)}
    part.update({k: blocks[k] for k in _PER_ATOM + _PER_ORB + _PER_PAIR + ("block_values", "block_offset")})
    return part


def _frame_slices(h: dict, f: int) -> dict:
    """Frame ``f``'s arrays of ``hamiltonians.npz`` (offsets local to the frame)."""
    a0, a1 = h["atom_offset"][f:f + 2]
    o0, o1 = h["orb_offset"][f:f + 2]
    p0, p1 = h["pair_offset"][f:f + 2]
    b0, b1 = h["block_offset"][p0], h["block_offset"][p1]
    out = {k: h[k][f:f + 1] for k in _PER_FRAME}
    out.update({k: h[k][a0:a1] for k in _PER_ATOM})
    out.update({k: h[k][o0:o1] for k in _PER_ORB})
    out.update({k: h[k][p0:p1] for k in _PER_PAIR})
    out["block_values"] = h["block_values"][b0:b1]
    out["block_offset"] = h["block_offset"][p0:p1 + 1] - b0
    return out


def _join(parts: list[dict]) -> dict:
    """``hamiltonians.npz`` arrays of single-frame ``parts`` (:func:`_frame_slices`,
    :func:`_frame_part`) in order, offsets and dtypes as stored."""
    out = {k: np.concatenate([p[k] for p in parts]) for k in _PER_FRAME + _PER_ATOM + _PER_ORB + _PER_PAIR}
    out["block_values"] = np.concatenate([p["block_values"] for p in parts])
    starts = np.r_[0, np.cumsum([p["block_values"].size for p in parts])[:-1]]
    out["block_offset"] = np.concatenate([[0]] + [p["block_offset"][1:] + s for p, s in zip(parts, starts)])
    for key, arr in (("atom_offset", "orb_count"), ("orb_offset", "orb_atom"), ("pair_offset", "pair_i")):
        out[key] = np.r_[0, np.cumsum([len(p[arr]) for p in parts])]
    out["orb_label"] = out["orb_label"].astype("U8")
    out["frame_names"] = out["frame_names"].astype("U32")
    for k in ("pair_i", "pair_j", "orb_atom", "orb_count"):
        out[k] = out[k].astype(np.int32)
    out["pair_R"] = out["pair_R"].astype(np.int16)
    return out


def _save_hamiltonians(ds: Path, arrays: dict) -> None:
    """Write ``hamiltonians.npz`` atomically."""
    tmpz = ds / ".hamiltonians.tmp.npz"
    with open(tmpz, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    os.replace(tmpz, ds / "hamiltonians.npz")


def _append_frame(ds: Path, frame: Atoms, blocks: dict, name: str, ef: float,
                  band_err: list[float]) -> None:
    xyz = ds / "frames.extxyz"
    tmp = _frames_tmp(ds, frame, name)
    old = load_hamiltonians(ds)
    if old and name in set(old["frame_names"].tolist()):  # npz written, extxyz not yet
        os.replace(tmp, xyz)
        return
    kept = [_frame_slices(old, f) for f in range(len(old["frame_names"]))] if old else []
    _save_hamiltonians(ds, _join(kept + [_frame_part(name, blocks, ef, band_err)]))
    os.replace(tmp, xyz)


def summary_markdown(dataset: str | os.PathLike) -> str:
    """One markdown table row per dataset statistic (for docs/dft.md)."""
    meta = _metadata(Path(dataset))
    st = meta.get("statistics", {})
    confs = meta.get("configurations", {})
    done = [c for c in confs.values() if c["state"] == "done"]
    rows = [("configurations finished / failed", f"{st.get('done', 0)} / {st.get('failed', 0)}")]
    if done:
        kinds: dict[str, int] = {}
        for c in done:
            p = c["params"]
            key = f"{p.get('kind')} {p.get('supercell', '')}".strip()
            kinds[key] = kinds.get(key, 0) + 1
        rows.append(("frames by kind", ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items()))))
        rows.append(("train / valid", f"{st['splits']['train']} / {st['splits']['valid']}"))
        if st.get("forcefield_only"):
            rows.append(("force-field labels only (no Wannier run)", str(st["forcefield_only"])))
        for w in ("0.5", "1", "1.5"):
            s = st.get(f"band_err_max_meV_{w}eV")
            if s is not None:
                rows.append((f"max band error within +-{w} eV (median / worst)",
                             f"{s['median']:.1f} / {s['max']:.1f} meV"))
        if "max_spread_A2" in st:
            rows.append(("largest spread (median / worst)",
                         f"{st['max_spread_A2']['median']:.2f} / {st['max_spread_A2']['max']:.2f} A^2"))
            rows.append(("centre offset from host atom (worst)",
                         f"{st['max_centre_offset_A']['max']:.3f} A"))
        grids: dict[str, int] = {}
        for c in done:
            g = c.get("scf_kgrid", c.get("kgrid"))
            key = f"{g[0]}x{g[1]}" if g else "unknown"
            grids[key] = grids.get(key, 0) + 1
        rows.append(("SCF grid of energy / force / stress labels", ", ".join(f"{k}: {v}" for k, v in sorted(grids.items()))))
        removed = [abs(c["layer_offset_removed_meV"]) for c in done if "layer_offset_removed_meV" in c]
        if removed:
            rows.append(("layer offsets removed from the Hamiltonians (median / largest size; docs/dft.md)",
                         f"{len(removed)} frames ({np.median(removed):.1f} / {max(removed):.1f} meV)"))
        secs = [c["seconds"] for c in done]
        rows.append(("wall time per configuration (median)", f"{np.median(secs):.0f} s"))
    if st.get("failure_reasons"):
        rows.append(("failure reasons", ", ".join(f"{k}: {v}" for k, v in st["failure_reasons"].items())))
    return "| quantity | value |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows) + "\n"
