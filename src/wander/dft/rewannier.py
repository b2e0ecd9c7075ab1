"""Re-make the Wannier Hamiltonians of a dataset from a denser SCF charge density.

A Wannier Hamiltonian is only as good as the SCF density behind it. The graphene datasets were
first made with one k-grid for SCF and Wannier step alike (``k_spacing`` 0.33: 10x10 for a
2-atom cell). On that grid the density of a slightly rattled bilayer can come out
layer-polarised: ``blg_0106`` (4 atoms, rattled by 0.02 A) has its two layers' onsite energies
132 meV apart, its inversion-symmetrised twin 0.8 meV, and the same structure with the SCF on
19x19 2.8 meV; ``blg_0093`` goes 96 / 58 / 34 / 9.5 meV on 10x10 / 19x19 / 28x28 / 36x35 grids
(:mod:`wander.dft.layer_offset`, docs/dft.md). Energies and forces converge long before.

:func:`rewannier_dataset` re-runs the whole pipeline (SCF on the ``scf_k_spacing`` grid, NSCF and
Wannier90 on the dataset's Wannier grid, quality gate) for named frames of a dataset, in
``<runs>/<name>_k<n1>x<n2>/``, and replaces each frame's Hamiltonian blocks and Fermi level as
soon as it is done (resumable: frames whose recorded ``hamiltonian_scf_kgrid`` is the requested
grid are skipped). Energies, forces and stresses are kept: they come from an SCF on the same grid
already (``wander dft relabel``), and the energy of the new SCF is checked against them. A frame
that fails the quality gate keeps its old Hamiltonian and the failure is recorded.
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from ase import Atoms
from ase.io import read, write

from wander.dft.dataset import _frame_part, _frame_slices, _join, _save_hamiltonians, frame_blocks, \
    load_hamiltonians
from wander.dft.pipeline import Launcher, run_configuration, write_configuration
from wander.dft.presets import Preset, kgrid_for_cell
from wander.dft.qe_input import atomic_write_text
from wander.dft.qe_output import read_pw_output

__all__ = ["rewannier_dataset", "replace_frame_hamiltonian", "select_frames"]

ENERGY_TOL = 1e-4  # eV per cell: the new SCF must reproduce the dataset's (relabelled) energy


def replace_frame_hamiltonian(dataset: str | os.PathLike, name: str, blocks: dict, fermi_energy: float,
                              band_err: Sequence[float]) -> None:
    """Replace frame ``name``'s blocks (as :func:`~wander.dft.dataset.frame_blocks` returns them),
    Fermi level and band errors in ``hamiltonians.npz``, and its ``fermi_energy`` / ``num_wann`` /
    band error in ``frames.extxyz`` (both rewritten atomically; frame order kept)."""
    ds = Path(dataset)
    h = load_hamiltonians(ds)
    names = h["frame_names"].tolist() if h else []
    if names.count(name) != 1:
        raise KeyError(f"{ds}/hamiltonians.npz: {names.count(name)} frames named {name!r}")
    f = names.index(name)
    parts = [_frame_slices(h, g) if g != f else _frame_part(name, blocks, fermi_energy, band_err)
             for g in range(len(names))]
    _save_hamiltonians(ds, _join(parts))
    xyz = ds / "frames.extxyz"
    frames = read(xyz, index=":", format="extxyz")
    for fr in frames:
        if fr.info.get("config") == name:
            fr.info.update(fermi_energy=float(fermi_energy), num_wann=int(blocks["num_wann"]),
                           band_err_max_meV_1eV=float(band_err[1]))
    tmpx = ds / ".frames.tmp.extxyz"
    write(tmpx, frames, format="extxyz")
    os.replace(tmpx, xyz)


def select_frames(dataset: str | os.PathLike, patterns: Sequence[str]) -> list[str]:
    """Names of the dataset's Wannier frames matching ``patterns`` (globs), in the order of the
    patterns (a name matched twice is kept once). A pattern matching nothing is an error."""
    h = load_hamiltonians(dataset)
    have = h["frame_names"].tolist() if h else []
    out: list[str] = []
    for pat in patterns:
        hits = [n for n in have if fnmatch.fnmatchcase(n, pat)]
        if not hits:
            raise ValueError(f"{dataset}: no frame with a Hamiltonian matches {pat!r}")
        out += [n for n in hits if n not in out]
    return out


def rewannier_dataset(dataset: str | os.PathLike, runs: str | os.PathLike, scf_k_spacing: float,
                      names: Sequence[str], launcher: Launcher | None = None, limit: int | None = None,
                      log: Callable[[str], None] = print) -> dict[str, int]:
    """Re-Wannierise frames ``names`` of ``dataset`` from an SCF on the ``scf_k_spacing`` grid.

    Returns counts ``done``, ``already`` (grid already recorded), ``failed`` (gate or SCF; the
    frame keeps its Hamiltonian).
    """
    ds, root = Path(dataset), Path(runs)
    if not scf_k_spacing > 0:
        raise ValueError(f"scf_k_spacing must be > 0, got {scf_k_spacing}")
    launcher = launcher or Launcher.from_env()
    meta_path = ds / "metadata.json"
    frames = {f.info["config"]: f for f in read(ds / "frames.extxyz", index=":", format="extxyz")}
    counts = {"done": 0, "already": 0, "failed": 0}
    for k, name in enumerate(names):
        if limit is not None and counts["done"] + counts["failed"] >= limit:
            break
        meta = json.loads(meta_path.read_text())
        entry = meta["configurations"][name]
        ref = frames[name]
        grid = list(kgrid_for_cell(ref.cell[:], scf_k_spacing))
        if entry.get("hamiltonian_scf_kgrid") == grid:
            counts["already"] += 1
            continue
        preset = Preset.from_dict(meta["settings"])
        preset.scf_k_spacing = scf_k_spacing
        atoms = Atoms(ref.get_chemical_symbols(), positions=ref.positions, cell=ref.cell, pbc=ref.pbc)
        atoms.arrays["layer"] = ref.arrays["layer"].copy()
        d = write_configuration(root / f"{name}_k{grid[0]}x{grid[1]}", atoms, entry.get("params", {}), preset)
        log(f"[{k + 1}/{len(names)}] {name}: SCF {grid[0]}x{grid[1]} (was "
            f"{entry.get('kgrid')}), NSCF + Wannier90 ...")
        status = run_configuration(d, launcher)
        if status.get("state") != "done":
            entry["rewannier_error"] = {"scf_kgrid": grid, "reason": status.get("reason"),
                                        "error": status.get("error")}
            atomic_write_text(meta_path, json.dumps(meta, indent=1) + "\n")
            counts["failed"] += 1
            log(f"    failed ({status.get('reason')}); Hamiltonian kept")
            continue
        scf = read_pw_output(d / "scf.out")
        e_ref = ref.get_potential_energy()
        if abs(scf.energy - e_ref) > ENERGY_TOL:
            raise ValueError(f"{d}: SCF energy {scf.energy:.6f} eV differs from the dataset's {e_ref:.6f} eV "
                             f"by more than {ENERGY_TOL} eV: not the grid or structure the labels came from")
        result = json.loads((d / "result.json").read_text())
        gate = result["gate"]
        blocks = frame_blocks(atoms, d / "wan_hr.dat", d / "wan_wsvec.dat", d / "wan.nnkp")
        band_err = [gate["band_errors"][w]["max_meV"] for w in ("0.5", "1", "1.5")]
        replace_frame_hamiltonian(ds, name, blocks, scf.fermi_energy, band_err)
        meta = json.loads(meta_path.read_text())
        entry = meta["configurations"][name]
        entry["rewannier"] = {"previous_fermi_energy": entry.get("fermi_energy"),
                              "previous_band_errors": entry.get("band_errors"),
                              "previous_scf_kgrid": entry.get("kgrid")}
        entry.update(fermi_energy=scf.fermi_energy, band_errors=gate["band_errors"],
                     max_spread=gate["max_spread"], max_centre_offset=gate["max_centre_offset"],
                     max_imag_dropped=blocks["max_imag"], hamiltonian_scf_kgrid=grid,
                     frozen_window_rel_EF_eV=result.get("frozen_window_rel_EF_eV"))
        entry.pop("rewannier_error", None)
        entry.pop("layer_offset_removed_meV", None)   # the new blocks are raw (wander.dft.layer_offset)
        atomic_write_text(meta_path, json.dumps(meta, indent=1) + "\n")
        counts["done"] += 1
        log(f"    done (E_F {entry['rewannier']['previous_fermi_energy']:.4f} -> {scf.fermi_energy:.4f} eV)")
    return counts
