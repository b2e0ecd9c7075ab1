"""Layer offsets of the Wannier Hamiltonians of a bilayer dataset, and their removal.

The *layer offset* of a two-layer frame is the mean onsite energy of its layer 0 minus that of
its layer 1. In a homobilayer of graphene it vanishes by symmetry for every registry (the
inversion centre between two hexagon centres swaps the layers) and stays small when the atoms are
rattled. In the DFT references it does not: the density of a rattled bilayer, a semimetal whose
layer polarisation costs almost no energy, comes out layer-polarised on any affordable SCF grid.
For ``blg_0093`` (4 atoms, rattled by 0.02 A) the offset is 96 / 58 / 34 / 9.5 meV with the SCF
on 10x10 / 19x19 / 28x28 / 36x35 k-points, while energies and forces agree to 0.04 meV/atom and
11 meV/A between 19x19 and 36x35. With each layer's offset removed, the onsite energies of all
four grids agree to 0.6 meV: the artefact is a uniform shift of each layer's onsite energies and
nothing else (docs/dft.md).

:func:`layer_offsets` lists the offsets; :func:`remove_layer_offsets` shifts each layer's onsite
energies by -/+ offset/2 (the frame's mean onsite energy is kept) and records the removed offset
per frame in ``metadata.json`` (``layer_offset_removed_meV``), so the raw references can be
restored exactly. Only for homobilayers without a physical offset (graphene; not e.g. 3R MoS2 or a
heterobilayer): the caller chooses the frames.
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from ase.io import read

from wander.dft.dataset import _save_hamiltonians, load_hamiltonians
from wander.dft.qe_input import atomic_write_text

__all__ = ["layer_offset", "layer_offsets", "remove_layer_offsets", "restore_layer_offsets"]


def layer_offset(onsite: np.ndarray, layer: np.ndarray) -> float | None:
    """Mean of ``onsite`` (eV) over the lower layer label minus the mean over the higher one, in meV;
    None unless ``layer`` (one label per value) holds exactly two labels."""
    labels = np.unique(layer)
    if len(labels) != 2:
        return None
    lo, hi = labels
    return float(1e3 * (onsite[layer == lo].mean() - onsite[layer == hi].mean()))


def _onsite_slots(h: dict, f: int, layer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``block_values`` of frame ``f``'s onsite diagonal elements, and their layer."""
    p0, p1 = h["pair_offset"][f:f + 2]
    a0 = h["atom_offset"][f]
    i, j, R = h["pair_i"][p0:p1], h["pair_j"][p0:p1], h["pair_R"][p0:p1]
    onsite = np.flatnonzero((i == j) & (R == 0).all(1))
    count = h["orb_count"][a0:a0 + len(layer)]
    slots, lay = [], []
    for q in onsite:
        n = int(count[i[q]])
        start = h["block_offset"][p0 + q]
        slots.append(start + np.arange(n) * (n + 1))          # the diagonal of an n x n block
        lay.append(np.full(n, layer[i[q]]))
    return (np.concatenate(slots) if slots else np.zeros(0, dtype=int)), \
        (np.concatenate(lay) if lay else np.zeros(0, dtype=int))


def _frames(dataset: Path) -> dict:
    return {f.info["config"]: f for f in read(dataset / "frames.extxyz", index=":", format="extxyz")}


def _offsets(h: dict, frames: dict, patterns: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for f, name in enumerate(h["frame_names"].tolist()):
        if not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            continue
        layer = np.asarray(frames[name].arrays.get("layer", np.zeros(len(frames[name]), dtype=int)))
        if len(np.unique(layer)) != 2:
            continue
        slots, lay = _onsite_slots(h, f, layer)
        offset = layer_offset(h["block_values"][slots], lay)
        if offset is not None:
            out[name] = offset
    return out


def layer_offsets(dataset: str | os.PathLike, patterns: Sequence[str] = ("*",)) -> dict[str, float]:
    """Layer offset (meV) of every two-layer frame with a Hamiltonian whose name matches a glob."""
    ds = Path(dataset)
    return _offsets(load_hamiltonians(ds), _frames(ds), patterns)


def _shift(dataset: Path, h: dict, frames: dict, names: dict[str, float], sign: float) -> None:
    """Add ``sign * offset / 2`` to layer 1's and subtract it from layer 0's onsite energies."""
    vals = h["block_values"].copy()
    index = {n: f for f, n in enumerate(h["frame_names"].tolist())}
    for name, off in names.items():
        layer = np.asarray(frames[name].arrays["layer"])
        lo, hi = np.unique(layer)
        slots, lay = _onsite_slots(h, index[name], layer)
        half = sign * 1e-3 * off / 2
        vals[slots[lay == lo]] -= half
        vals[slots[lay == hi]] += half
    _save_hamiltonians(dataset, {**h, "block_values": vals})


def remove_layer_offsets(dataset: str | os.PathLike, patterns: Sequence[str]) -> dict[str, float]:
    """Remove the layer offset of the matching two-layer frames (those not already done).

    The layer-balanced shift keeps each frame's mean onsite energy when both layers hold the same
    number of orbitals (always, for a homobilayer). Returns the removed offsets (meV) by frame.
    """
    ds = Path(dataset)
    meta_path = ds / "metadata.json"
    meta = json.loads(meta_path.read_text())
    confs = meta["configurations"]
    h, frames = load_hamiltonians(ds), _frames(ds)
    todo = {n: v for n, v in _offsets(h, frames, patterns).items()
            if "layer_offset_removed_meV" not in confs.get(n, {})}
    if not todo:
        return {}
    _shift(ds, h, frames, todo, +1.0)
    for n, v in todo.items():
        confs[n]["layer_offset_removed_meV"] = v
    meta["layer_offsets"] = ("removed from the frames with layer_offset_removed_meV: each layer's onsite "
                             "energies shifted by -/+ offset / 2 (wander.dft.layer_offset; docs/dft.md)")
    atomic_write_text(meta_path, json.dumps(meta, indent=1) + "\n")
    return todo


def restore_layer_offsets(dataset: str | os.PathLike) -> dict[str, float]:
    """Undo :func:`remove_layer_offsets` exactly (up to float rounding); returns the restored offsets."""
    ds = Path(dataset)
    meta_path = ds / "metadata.json"
    meta = json.loads(meta_path.read_text())
    confs = meta["configurations"]
    todo = {n: e["layer_offset_removed_meV"] for n, e in confs.items() if "layer_offset_removed_meV" in e}
    if not todo:
        return {}
    _shift(ds, load_hamiltonians(ds), _frames(ds), todo, -1.0)
    for n in todo:
        del confs[n]["layer_offset_removed_meV"]
    meta.pop("layer_offsets", None)
    atomic_write_text(meta_path, json.dumps(meta, indent=1) + "\n")
    return todo
