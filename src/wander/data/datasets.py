"""Labelled training frames from extended XYZ (or any ASE-readable file) and DeePMD npy systems.

Malformed files raise :class:`wander.io.FormatError` (a ``ValueError``) naming the file and line
(0 when the problem concerns the whole file). Every reader returns a list of ``ase.Atoms`` whose labels sit in a ``SinglePointCalculator``
(``energy`` eV, ``forces`` eV/Angstrom, ``stress`` eV/Angstrom^3 with ASE's sign). Labels are turned
into model targets by :func:`frame_labels` (virial = -stress * volume, eV).

DeePMD npy system layout (one folder per system)::

    type.raw            N ints, the type index of each atom
    type_map.raw        element names, one per line (optional; else ``type_map`` must be given)
    nopbc               present for open systems (optional)
    set.000/coord.npy   (n_frames, N*3) Angstrom
    set.000/box.npy     (n_frames, 9)   Angstrom, cell vectors as rows
    set.000/energy.npy  (n_frames,)     eV            (optional)
    set.000/force.npy   (n_frames, N*3) eV/Angstrom   (optional)
    set.000/virial.npy  (n_frames, 9)   eV            (optional)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from wander.io.atomic import atomic_path
from wander.io.errors import FormatError

if TYPE_CHECKING:
    import torch

    from wander.data.graph import AtomGraph

__all__ = [
    "frame_labels",
    "read_deepmd_npy",
    "write_deepmd_npy",
    "read_frames",
    "find_systems",
    "load_graphs",
]

_ENERGY_KEYS = ("energy", "REF_energy")
_FORCES_KEYS = ("forces", "REF_forces")
_STRESS_KEYS = ("stress", "REF_stress")
_VIRIAL_KEYS = ("virial", "REF_virial")


def _lookup(atoms: Atoms, keys: Iterable[str], per_atom: bool) -> np.ndarray | None:
    results = atoms.calc.results if atoms.calc is not None else {}
    store = atoms.arrays if per_atom else atoms.info
    for key in keys:
        if key in results and results[key] is not None:
            return np.asarray(results[key], dtype=float)
        if key in store:
            return np.asarray(store[key], dtype=float)
    return None


def _as_3x3(value: np.ndarray, what: str) -> np.ndarray:
    value = np.asarray(value, dtype=float)
    if value.size == 9:
        return value.reshape(3, 3)
    if value.size == 6:  # Voigt xx yy zz yz xz xy
        xx, yy, zz, yz, xz, xy = value.ravel()
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    raise ValueError(f"{what} must have 6 (Voigt) or 9 components, got shape {value.shape}")


def frame_labels(atoms: Atoms) -> dict[str, np.ndarray]:
    """Model targets of one frame: any of ``energy`` (), ``forces`` (N, 3), ``virial`` (3, 3).

    Looks in ``atoms.calc.results`` first, then ``atoms.info`` / ``atoms.arrays`` under the plain
    names and their ``REF_`` variants. A ``virial`` label wins over ``stress``; a stress is converted
    with ``virial = -stress * volume`` and needs a cell of non-zero volume.
    """
    labels: dict[str, np.ndarray] = {}
    energy = _lookup(atoms, _ENERGY_KEYS, per_atom=False)
    if energy is not None:
        labels["energy"] = np.asarray(float(np.asarray(energy).reshape(())))
    forces = _lookup(atoms, _FORCES_KEYS, per_atom=True)
    if forces is not None:
        if forces.shape != (len(atoms), 3):
            raise ValueError(f"forces must have shape ({len(atoms)}, 3), got {forces.shape}")
        labels["forces"] = forces
    virial = _lookup(atoms, _VIRIAL_KEYS, per_atom=False)
    if virial is not None:
        labels["virial"] = _as_3x3(virial, "virial")
    else:
        stress = _lookup(atoms, _STRESS_KEYS, per_atom=False)
        if stress is not None:
            volume = abs(float(np.linalg.det(np.array(atoms.cell))))
            if volume < 1e-12:
                raise ValueError("a stress label needs a cell with non-zero volume")
            labels["virial"] = -_as_3x3(stress, "stress") * volume
    for key, value in labels.items():
        if not np.isfinite(value).all():
            raise ValueError(f"label {key!r} contains non-finite values")
    return labels


def _attach(atoms: Atoms, energy: float | None, forces: np.ndarray | None, virial: np.ndarray | None) -> Atoms:
    results: dict[str, object] = {}
    if energy is not None:
        results["energy"] = float(energy)
    if forces is not None:
        results["forces"] = np.asarray(forces, dtype=float)
    if virial is not None:
        volume = abs(float(np.linalg.det(np.array(atoms.cell))))
        if volume < 1e-12:
            atoms.info["virial"] = np.asarray(virial, dtype=float).reshape(3, 3)
        else:
            results["stress"] = -np.asarray(virial, dtype=float).reshape(3, 3) / volume
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def read_deepmd_npy(
    path: str | os.PathLike,
    type_map: Sequence[str] | None = None,
    pbc: Sequence[bool] | None = None,
) -> list[Atoms]:
    """Read one DeePMD npy system folder (see module docstring) into labelled frames.

    Parameters
    ----------
    path
        System folder holding ``type.raw`` and ``set.*``.
    type_map
        Element names for the type indices; required when the folder has no ``type_map.raw``.
    pbc
        Periodicity; default ``False`` on all axes when a ``nopbc`` file exists, else ``True``.
        DeePMD has no per-axis flag, so a 2D slab stored with vacuum may be read with
        ``pbc=(True, True, False)``; with vacuum thicker than the cutoff both give the same model.
    """
    root = Path(path)
    type_file = root / "type.raw"
    if not type_file.is_file():
        raise FileNotFoundError(f"{root}: not a DeePMD system (no type.raw)")
    types_list = []
    for lineno, text in enumerate(type_file.read_text().splitlines(), start=1):
        for word in text.split():
            try:
                types_list.append(int(word))
            except ValueError:
                raise FormatError(type_file, lineno, f"expected integer atom types, got {word!r}") from None
    types = np.asarray(types_list, dtype=np.int64)
    names_file = root / "type_map.raw"
    if names_file.is_file():
        names = names_file.read_text().split()
    elif type_map is not None:
        names = list(type_map)
    else:
        raise ValueError(f"{root}: no type_map.raw and no type_map given")
    if types.size and (types.min() < 0 or types.max() >= len(names)):
        raise FormatError(type_file, 0, f"type indices must lie in [0, {len(names)})")
    symbols = [names[t] for t in types]
    if pbc is None:
        pbc = (False,) * 3 if (root / "nopbc").exists() else (True,) * 3
    n = len(types)
    sets = sorted(p for p in root.glob("set.*") if p.is_dir())
    if not sets:
        raise FileNotFoundError(f"{root}: no set.* folders")
    frames: list[Atoms] = []
    for set_dir in sets:
        coord = _load(set_dir / "coord.npy", required=True)
        nf = coord.shape[0]
        coord = _reshape(coord, (nf, n, 3), set_dir / "coord.npy")
        box = _load(set_dir / "box.npy", required=not (root / "nopbc").exists())
        box = np.zeros((nf, 3, 3)) if box is None else _reshape(box, (nf, 3, 3), set_dir / "box.npy")
        energy = _load(set_dir / "energy.npy")
        energy = None if energy is None else _reshape(energy, (nf,), set_dir / "energy.npy")
        force = _load(set_dir / "force.npy")
        force = None if force is None else _reshape(force, (nf, n, 3), set_dir / "force.npy")
        virial = _load(set_dir / "virial.npy")
        virial = None if virial is None else _reshape(virial, (nf, 3, 3), set_dir / "virial.npy")
        for k in range(nf):
            atoms = Atoms(symbols=symbols, positions=coord[k], cell=box[k], pbc=pbc)
            frames.append(_attach(
                atoms,
                None if energy is None else energy[k],
                None if force is None else force[k],
                None if virial is None else virial[k],
            ))
    return frames


def _load(path: Path, required: bool = False) -> np.ndarray | None:
    if not path.is_file():
        if required:
            raise FileNotFoundError(f"{path}: missing")
        return None
    try:
        return np.asarray(np.load(path, allow_pickle=False), dtype=float)
    except ValueError as exc:
        raise FormatError(path, 0, f"not a numeric npy array: {exc}") from exc


def _reshape(arr: np.ndarray, shape: tuple[int, ...], path: Path) -> np.ndarray:
    if arr.size != int(np.prod(shape)):
        raise FormatError(path, 0, f"expected {int(np.prod(shape))} values for shape {shape}, got {arr.shape}")
    return arr.reshape(shape)


def _save_npy_atomic(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, arr)


def _write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.write(text)


def write_deepmd_npy(frames: Sequence[Atoms], path: str | os.PathLike, type_map: Sequence[str]) -> None:
    """Write frames of one composition (same symbols in the same order) as a DeePMD system ``set.000``."""
    if not frames:
        raise ValueError("no frames to write")
    symbols = frames[0].get_chemical_symbols()
    if any(f.get_chemical_symbols() != symbols for f in frames):
        raise ValueError("all frames of a DeePMD system must have the same symbols in the same order")
    from wander.data.graph import species_indices

    types = species_indices(symbols, type_map)
    root = Path(path)
    set_dir = root / "set.000"
    set_dir.mkdir(parents=True, exist_ok=True)
    _write_text_atomic(root / "type.raw", "".join(f"{t}\n" for t in types))
    _write_text_atomic(root / "type_map.raw", "".join(f"{s}\n" for s in type_map))
    labels = [frame_labels(f) for f in frames]
    _save_npy_atomic(set_dir / "coord.npy", np.stack([f.positions.reshape(-1) for f in frames]))
    _save_npy_atomic(set_dir / "box.npy", np.stack([np.array(f.cell).reshape(-1) for f in frames]))
    for key, name in (("energy", "energy"), ("forces", "force"), ("virial", "virial")):
        present = [key in lab for lab in labels]
        if all(present):
            stacked = np.stack([np.asarray(lab[key], dtype=float).reshape(-1) for lab in labels])
            _save_npy_atomic(set_dir / f"{name}.npy", stacked[:, 0] if key == "energy" else stacked)
        elif any(present):
            raise ValueError(f"label {key!r} is present on some frames only")


def find_systems(path: str | os.PathLike) -> list[Path]:
    """DeePMD system folders at or below ``path`` (folders holding ``type.raw``), sorted."""
    root = Path(path)
    if (root / "type.raw").is_file():
        return [root]
    return sorted(p.parent for p in root.rglob("type.raw"))


def read_frames(
    path: str | os.PathLike,
    type_map: Sequence[str] | None = None,
    pbc: Sequence[bool] | None = None,
) -> list[Atoms]:
    """Read every frame from a file (extxyz or any ASE format) or from DeePMD system folder(s).

    A folder is searched recursively for DeePMD systems. ``pbc`` overrides the periodicity of
    DeePMD systems only (files carry their own).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    if p.is_dir():
        systems = find_systems(p)
        if not systems:
            raise FileNotFoundError(f"{p}: no DeePMD systems (type.raw) found")
        return [a for s in systems for a in read_deepmd_npy(s, type_map=type_map, pbc=pbc)]
    import ase.io

    try:
        frames = ase.io.read(p, index=":")
    except Exception as exc:  # ASE raises many types on malformed files
        raise FormatError(p, 0, f"cannot read frames: {exc}") from exc
    if isinstance(frames, Atoms):
        frames = [frames]
    if not frames:
        raise FormatError(p, 0, "no frames")
    return list(frames)


def load_graphs(
    paths: Sequence[str | os.PathLike],
    type_map: Sequence[str],
    cutoff: float,
    dtype: "torch.dtype | None" = None,
    pbc: Sequence[bool] | None = None,
) -> list["AtomGraph"]:
    """Read frames from every path and build one labelled :class:`AtomGraph` per frame."""
    import torch

    from wander.data.graph import AtomGraph

    graphs = []
    for path in paths:
        for atoms in read_frames(path, type_map=type_map, pbc=pbc):
            graphs.append(AtomGraph.from_atoms(
                atoms, type_map, cutoff, dtype=dtype or torch.float64, labels=frame_labels(atoms),
            ))
    return graphs
