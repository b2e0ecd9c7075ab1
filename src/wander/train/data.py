"""Training frames with optional Hamiltonian labels, and their batches.

A data path is one of

- a **DFT dataset folder** (docs/dft.md): ``frames.extxyz`` (energy, forces, stress, layer tags)
  plus, when present, ``hamiltonians.npz``; frame ``f`` of the extxyz file is matched to the
  Hamiltonian whose ``frame_names`` entry equals its ``info["config"]``. Frames without one carry no
  Hamiltonian label and simply skip that loss term;
- an extxyz (or any ASE-readable) file or a DeePMD npy folder (no Hamiltonian labels).

Hamiltonian targets are the heads' half-stored pair list with reference blocks
(:func:`wander.nn.hamiltonian.targets.dataset_targets`), computed once when the data are loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ase import Atoms

from wander.data.datasets import frame_labels, read_frames
from wander.data.graph import AtomGraph, collate

__all__ = ["Batch", "FrameSet", "is_dft_dataset", "load_frame_set", "make_batch", "read_dataset_frames",
           "shift_onsite", "onsite_mean"]


def is_dft_dataset(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DFT dataset folder (holds ``frames.extxyz``)."""
    return Path(path).is_dir() and (Path(path) / "frames.extxyz").is_file()


@dataclass
class FrameSet:
    """Frames of one or more data paths.

    ``graphs[f]`` the labelled force-field graph; ``atoms[f]`` the structure; ``targets[f]`` the
    Hamiltonian targets (``HamiltonianTargets``) or None; ``fermi[f]`` the DFT Fermi level (eV) or
    NaN; ``source[f]`` the data path; ``reference[f]`` ``(hamiltonian arrays, frame index)`` of the
    full reference Hamiltonian in the DFT dataset, or None; ``weight[f]`` the weight of the frame's
    force-field loss (``training_data.weights``; 1 by default).
    """

    graphs: list[AtomGraph] = field(default_factory=list)
    atoms: list[Atoms] = field(default_factory=list)
    targets: list = field(default_factory=list)
    fermi: list[float] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    reference: list = field(default_factory=list)
    energy_shift: list[float] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.weight:
            self.weight = [1.0] * len(self.graphs)

    def __len__(self) -> int:
        return len(self.graphs)

    @property
    def n_hamiltonian(self) -> int:
        return sum(t is not None for t in self.targets)

    def subset(self, index: Sequence[int]) -> "FrameSet":
        return FrameSet(*([getattr(self, k)[i] for i in index]
                          for k in ("graphs", "atoms", "targets", "fermi", "source", "reference",
                                    "energy_shift", "weight")))


def config_glob_matches(frames: Sequence[Atoms], globs, message: str) -> list[list[str]]:
    """For every frame, the globs of ``globs`` that its ``info["config"]`` matches.

    Each glob must match some frame, else ``ValueError(message.format(glob=glob))``.
    """
    import fnmatch

    names = [str(a.info.get("config", "")) for a in frames]
    hits = [[g for g in globs if fnmatch.fnmatch(n, g)] for n in names]
    for glob in globs:
        if not any(glob in h for h in hits):
            raise ValueError(message.format(glob=repr(glob)))
    return hits


def read_dataset_frames(path: str | os.PathLike) -> tuple[list[Atoms], dict[str, np.ndarray], list[int | None]]:
    """Frames of a DFT dataset folder, its Hamiltonian arrays, and the Hamiltonian index of every frame."""
    from wander.dft.dataset import load_hamiltonians

    p = Path(path)
    frames = read_frames(p / "frames.extxyz")
    ham = load_hamiltonians(p)
    names = {str(n): k for k, n in enumerate(ham.get("frame_names", []))}
    index = [names.get(str(a.info.get("config"))) if a.info.get("config") is not None else None for a in frames]
    return frames, ham, index


def shift_onsite(targets, shift: float):
    """Targets with ``shift`` (eV) added to every onsite energy (diagonal of the onsite blocks)."""
    import dataclasses

    from wander.nn.hamiltonian.categories import ONSITE

    m = targets.blocks.shape[1]
    add = (targets.pairs.category == ONSITE)[:, None, None] * np.eye(m)[None] * targets.mask
    return dataclasses.replace(targets, blocks=targets.blocks + shift * add)


def onsite_mean(targets) -> float:
    """Mean onsite energy (eV) of a frame's targets: the average diagonal of its onsite blocks."""
    from wander.nn.hamiltonian.categories import ONSITE

    on = targets.pairs.category == ONSITE
    diag = np.diagonal(targets.blocks[on], axis1=1, axis2=2)
    keep = np.diagonal(targets.mask[on], axis1=1, axis2=2)
    if not keep.any():
        raise ValueError("frame has no onsite energies for energy_zero: onsite_mean")
    return float(diag[keep].mean())


def load_frame_set(paths: Sequence[str | os.PathLike], type_map: Sequence[str], cutoff: float,
                   dtype: torch.dtype = torch.float64, split: str | None = None,
                   hamiltonian=None) -> FrameSet:
    """Read every path into a :class:`FrameSet`.

    ``split`` keeps only frames whose ``info["split"]`` equals it. ``hamiltonian`` is the
    ``model.hamiltonian`` config section (``HamiltonianModelConfig``); without it no Hamiltonian
    targets are built. With ``energy_zero: fermi`` the targets' onsite energies are relative to
    each frame's Fermi level, with ``onsite_mean`` to the frame's mean onsite energy;
    ``energy_shift[f]`` records what was added.
    """
    from wander.nn.hamiltonian import OrbitalBasis
    from wander.nn.hamiltonian.targets import dataset_targets

    basis = OrbitalBasis(hamiltonian.orbital_spec()) if hamiltonian is not None else None
    out = FrameSet()
    for path in paths:
        if is_dft_dataset(path):
            frames, ham, index = read_dataset_frames(path)
        else:
            frames, ham = read_frames(path, type_map=type_map), {}
            index = [None] * len(frames)
        for atoms, h in zip(frames, index):
            if split is not None and atoms.info.get("split") != split:
                continue
            tgt = None
            if basis is not None and h is not None:
                try:
                    tgt = dataset_targets(ham, h, atoms, basis, hamiltonian.r_cut, hamiltonian.r_near,
                                          layered=hamiltonian.layered)
                except ValueError as exc:
                    raise ValueError(f"{path}: frame {atoms.info.get('config')!r}: {exc}") from exc
            fermi = ham["fermi_energy"][h] if h is not None and "fermi_energy" in ham else \
                atoms.info.get("fermi_energy", np.nan)
            shift = 0.0  # added to the targets' onsite energies
            if tgt is not None and hamiltonian.energy_zero == "fermi":
                if not np.isfinite(fermi):
                    raise ValueError(f"{path}: frame {atoms.info.get('config')!r} has no Fermi level, needed by "
                                     "model.hamiltonian.energy_zero: fermi")
                shift = -float(fermi)
            elif tgt is not None and hamiltonian.energy_zero == "onsite_mean":
                shift = -onsite_mean(tgt)
            if tgt is not None and shift:
                tgt = shift_onsite(tgt, shift)
            out.graphs.append(AtomGraph.from_atoms(atoms, type_map, cutoff, dtype=dtype, labels=frame_labels(atoms)))
            out.atoms.append(atoms)
            out.targets.append(tgt)
            out.fermi.append(float(fermi))
            out.source.append(str(path))
            out.reference.append((ham, h) if h is not None else None)
            out.energy_shift.append(shift)
            out.weight.append(1.0)
    if split is not None and not out.graphs:
        raise ValueError(f"no frames with split {split!r} in {[str(p) for p in paths]}")
    return out


@dataclass
class Batch:
    """Collated frames: the graph, and the Hamiltonian targets (None if no frame has any)."""

    graph: AtomGraph
    pair_index: torch.Tensor | None = None
    pair_R: torch.Tensor | None = None
    category: torch.Tensor | None = None
    blocks: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    layer: torch.Tensor | None = None
    weight: torch.Tensor | None = None     # (n_frames,) force-field loss weights; None: all 1

    @property
    def has_hamiltonian(self) -> bool:
        return self.pair_index is not None


def _empty_targets(m: int):
    from wander.nn.hamiltonian.categories import PairList
    from wander.nn.hamiltonian.targets import HamiltonianTargets

    e = np.zeros(0, dtype=np.int64)
    pairs = PairList(e, e, np.zeros((0, 3), dtype=np.int64), e, np.zeros(0))
    return HamiltonianTargets(pairs, np.zeros((0, m, m)), np.zeros((0, m, m), dtype=bool), 0.0, 0)


def make_batch(frames: FrameSet, index: Sequence[int]) -> Batch:
    """Collate frames ``index``; Hamiltonian targets of the labelled ones get global atom indices."""
    from wander.nn.hamiltonian.batch import collate_targets

    graph = collate([frames.graphs[k] for k in index])
    w = [frames.weight[k] for k in index]
    weight = None if all(x == 1.0 for x in w) else torch.tensor(w, dtype=graph.positions.dtype)
    targets = [frames.targets[k] for k in index]
    if all(t is None for t in targets):
        return Batch(graph, weight=weight)
    m = next(t for t in targets if t is not None).blocks.shape[1]
    n_atoms = [len(frames.atoms[k]) for k in index]
    tb = collate_targets([t if t is not None else _empty_targets(m) for t in targets], n_atoms,
                         dtype=graph.positions.dtype)
    layer = np.concatenate([np.asarray(frames.atoms[k].arrays.get("layer", np.full(len(frames.atoms[k]), -1)),
                                       dtype=np.int64) for k in index])
    return Batch(graph, tb.pair_index, tb.pair_R, tb.category, tb.blocks, tb.mask, torch.as_tensor(layer), weight)
