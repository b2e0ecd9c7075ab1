"""DeePMD-kit npy layout writer.

One *system* folder per distinct atom list (same symbols in the same order)::

    type.raw          (nat,) int type of each atom (index into type_map)
    type_map.raw      element names, one per line
    set.000/coord.npy   (nframes, nat*3) Angstrom
    set.000/box.npy     (nframes, 9) cell rows, Angstrom
    set.000/energy.npy  (nframes,) eV
    set.000/force.npy   (nframes, nat*3) eV/Angstrom
    set.000/virial.npy  (nframes, 9) eV, virial = -stress * volume (ASE stress sign)
"""

from __future__ import annotations

import os
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read

__all__ = ["write_deepmd_system", "write_deepmd_splits"]


def write_deepmd_system(frames: list[Atoms], folder: str | os.PathLike, type_map: list[str]) -> Path:
    """Write frames sharing one atom list into ``folder`` (replaced atomically).

    Raises:
        ValueError: empty list, frames with different atom lists, missing labels, or
            an element absent from ``type_map``.
    """
    if not frames:
        raise ValueError("no frames to write")
    symbols = frames[0].get_chemical_symbols()
    for f in frames:
        if f.get_chemical_symbols() != symbols:
            raise ValueError("all frames of a DeePMD system need the same atom list")
    missing = sorted(set(symbols) - set(type_map))
    if missing:
        raise ValueError(f"elements {missing} are not in type_map {type_map}")
    nat = len(symbols)
    coord = np.array([f.positions.reshape(-1) for f in frames])
    box = np.array([np.asarray(f.cell[:]).reshape(-1) for f in frames])
    try:
        energy = np.array([f.get_potential_energy() for f in frames])
        force = np.array([f.get_forces().reshape(-1) for f in frames])
        virial = np.array([(-f.get_stress(voigt=False) * f.get_volume()).reshape(-1) for f in frames])
    except Exception as exc:  # ase raises PropertyNotImplementedError / RuntimeError
        raise ValueError(f"frames lack energy, forces or stress: {exc}") from None
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "set.000").mkdir(parents=True)
    np.savetxt(tmp / "type.raw", np.array([type_map.index(s) for s in symbols]), fmt="%d")
    (tmp / "type_map.raw").write_text("\n".join(type_map) + "\n")
    for name, arr in (("coord", coord), ("box", box), ("energy", energy), ("force", force),
                      ("virial", virial)):
        np.save(tmp / "set.000" / f"{name}.npy", arr.astype(np.float64))
    assert coord.shape == (len(frames), 3 * nat)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def write_deepmd_splits(extxyz: str | os.PathLike, out: str | os.PathLike,
                        type_map: list[str] | None = None) -> dict[str, int]:
    """Write ``out/<split>/<formula>_<nat>/`` systems from an extxyz with ``info["split"]``.

    Returns:
        frames written per split.
    """
    frames = read(extxyz, index=":", format="extxyz")
    if type_map is None:
        type_map = sorted({s for f in frames for s in f.get_chemical_symbols()})
    groups: dict[tuple[str, tuple[str, ...]], list[Atoms]] = defaultdict(list)
    for f in frames:
        groups[(f.info.get("split", "train"), tuple(f.get_chemical_symbols()))].append(f)
    out = Path(out)
    counts: dict[str, int] = defaultdict(int)
    names = set()
    for (split, syms), fr in sorted(groups.items()):
        base = f"{fr[0].get_chemical_formula()}"
        name = base
        k = 1
        while (split, name) in names:
            k += 1
            name = f"{base}_{k}"
        names.add((split, name))
        write_deepmd_system(fr, out / split / name, type_map)
        counts[split] += len(fr)
    return dict(counts)
