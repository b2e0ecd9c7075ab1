"""Typed graph batch: positions, species, cells and the periodic edge list of one or more frames.

Edges follow :mod:`wander.data.neighbors`: ``edge_index[0]`` is the centre atom ``i``,
``edge_index[1]`` the neighbour ``j`` (both global indices in the batch) and the neighbour vector is
``x[j] - x[i] + edge_shift @ cell[batch[i]]``.

Labels (all optional, per frame masked by ``label_mask``):

- ``energy``  (B,)      eV
- ``forces``  (N, 3)    eV/Angstrom
- ``virial``  (B, 3, 3) eV, ``virial = -stress * volume``
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Sequence

import numpy as np
import torch
from ase import Atoms

from wander.data.neighbors import neighbor_list

__all__ = ["AtomGraph", "LABEL_KEYS", "collate", "species_indices"]

#: Label names understood by the force-field loss, with their per-frame / per-atom layout.
LABEL_KEYS: dict[str, str] = {"energy": "frame", "forces": "atom", "virial": "frame"}


def species_indices(symbols: Sequence[str], type_map: Sequence[str]) -> np.ndarray:
    """Map chemical symbols to indices into ``type_map``; unknown symbols raise ``ValueError``."""
    lookup = {s: k for k, s in enumerate(type_map)}
    missing = sorted(set(symbols) - lookup.keys())
    if missing:
        raise ValueError(f"species {missing} are not in type_map {list(type_map)}")
    return np.fromiter((lookup[s] for s in symbols), dtype=np.int64, count=len(symbols))


@dataclass
class AtomGraph:
    """One frame or a batch of frames.

    Attributes
    ----------
    positions : (N, 3) float, Angstrom
    species : (N,) int64, index into the model's ``type_map``
    cell : (B, 3, 3) float, Angstrom, rows are cell vectors
    pbc : (B, 3) bool
    edge_index : (2, E) int64, rows (centre i, neighbour j)
    edge_shift : (E, 3) float, integer-valued lattice shifts of the neighbour image
    batch : (N,) int64, frame index of every atom
    n_atoms : (B,) int64
    labels : dict of label tensors (see module docstring)
    label_mask : dict of (B,) bool tensors, True where the frame carries that label
    """

    positions: torch.Tensor
    species: torch.Tensor
    cell: torch.Tensor
    pbc: torch.Tensor
    edge_index: torch.Tensor
    edge_shift: torch.Tensor
    batch: torch.Tensor
    n_atoms: torch.Tensor
    labels: dict[str, torch.Tensor] = field(default_factory=dict)
    label_mask: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.positions.shape[0]
        b = self.cell.shape[0]
        e = self.edge_index.shape[1] if self.edge_index.ndim == 2 else -1
        checks = [
            (self.positions.shape == (n, 3), "positions must be (N, 3)"),
            (self.species.shape == (n,), "species must be (N,)"),
            (self.cell.shape == (b, 3, 3), "cell must be (B, 3, 3)"),
            (self.pbc.shape == (b, 3), "pbc must be (B, 3)"),
            (self.edge_index.ndim == 2 and self.edge_index.shape[0] == 2, "edge_index must be (2, E)"),
            (self.edge_shift.shape == (e, 3), "edge_shift must be (E, 3)"),
            (self.batch.shape == (n,), "batch must be (N,)"),
            (self.n_atoms.shape == (b,), "n_atoms must be (B,)"),
            (int(self.n_atoms.sum()) == n, "n_atoms must sum to the number of atoms"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"AtomGraph: {msg}")
        for key, value in self.labels.items():
            if key not in LABEL_KEYS:
                raise ValueError(f"AtomGraph: unknown label {key!r}; known: {sorted(LABEL_KEYS)}")
            lead = n if LABEL_KEYS[key] == "atom" else b
            if value.shape[0] != lead:
                raise ValueError(f"AtomGraph: label {key!r} has leading dimension {value.shape[0]}, expected {lead}")
            if key not in self.label_mask:
                self.label_mask[key] = torch.ones(b, dtype=torch.bool, device=value.device)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_atoms(
        cls,
        atoms: Atoms,
        type_map: Sequence[str],
        cutoff: float,
        dtype: torch.dtype = torch.float64,
        labels: dict[str, np.ndarray] | None = None,
    ) -> "AtomGraph":
        """Build a one-frame graph with all pairs closer than ``cutoff`` (Angstrom).

        ``labels`` may hold ``energy`` (scalar), ``forces`` (N, 3) and ``virial`` (3, 3); see
        :func:`wander.data.datasets.frame_labels` for extracting them from an ``Atoms``.
        """
        nl = neighbor_list(atoms, cutoff)
        n = len(atoms)
        tensors: dict[str, torch.Tensor] = {}
        for key, value in (labels or {}).items():
            if key not in LABEL_KEYS:
                raise ValueError(f"unknown label {key!r}; known: {sorted(LABEL_KEYS)}")
            arr = torch.as_tensor(np.asarray(value, dtype=float), dtype=dtype)
            tensors[key] = arr.reshape(n, 3) if key == "forces" else arr.reshape(1, *arr.shape)
        return cls(
            positions=torch.as_tensor(atoms.positions, dtype=dtype),
            species=torch.as_tensor(species_indices(atoms.get_chemical_symbols(), type_map)),
            cell=torch.as_tensor(np.array(atoms.cell), dtype=dtype).reshape(1, 3, 3),
            pbc=torch.as_tensor(np.asarray(atoms.pbc, dtype=bool)).reshape(1, 3),
            edge_index=torch.as_tensor(np.stack([nl.i, nl.j])),
            edge_shift=torch.as_tensor(nl.shift, dtype=dtype),
            batch=torch.zeros(n, dtype=torch.int64),
            n_atoms=torch.tensor([n], dtype=torch.int64),
            labels=tensors,
        )

    # ------------------------------------------------------------------ helpers
    @property
    def num_frames(self) -> int:
        return int(self.cell.shape[0])

    def edge_vectors(self, positions: torch.Tensor | None = None, cell: torch.Tensor | None = None) -> torch.Tensor:
        """Neighbour vectors (E, 3) in Angstrom, differentiable w.r.t. ``positions`` and ``cell``."""
        pos = self.positions if positions is None else positions
        cel = self.cell if cell is None else cell
        i, j = self.edge_index
        shift_cart = torch.einsum("ek,ekl->el", self.edge_shift.to(cel.dtype), cel[self.batch[i]])
        return pos[j] - pos[i] + shift_cart

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "AtomGraph":
        """Copy with float tensors cast to ``dtype`` and everything moved to ``device``."""

        def move(t: torch.Tensor) -> torch.Tensor:
            if dtype is not None and t.is_floating_point():
                t = t.to(dtype)
            return t.to(device) if device is not None else t

        updates = {
            f.name: move(getattr(self, f.name))
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        updates["labels"] = {k: move(v) for k, v in self.labels.items()}
        updates["label_mask"] = {k: move(v) for k, v in self.label_mask.items()}
        return replace(self, **updates)


def collate(graphs: Sequence[AtomGraph]) -> AtomGraph:
    """Concatenate frames into one batch, offsetting atom indices; labels missing on some frames are masked."""
    if not graphs:
        raise ValueError("collate needs at least one graph")
    offsets = torch.cumsum(torch.tensor([0] + [int(g.positions.shape[0]) for g in graphs[:-1]]), 0)
    frame_offsets = torch.cumsum(torch.tensor([0] + [g.num_frames for g in graphs[:-1]]), 0)
    label_keys = sorted({k for g in graphs for k in g.labels})
    labels: dict[str, torch.Tensor] = {}
    label_mask: dict[str, torch.Tensor] = {}
    ref = graphs[0].positions
    for key in label_keys:
        parts, masks = [], []
        for g in graphs:
            if key in g.labels:
                parts.append(g.labels[key])
                masks.append(g.label_mask[key])
            else:
                lead = g.positions.shape[0] if LABEL_KEYS[key] == "atom" else g.num_frames
                shape = (lead, 3) if key == "forces" else ((lead,) if key == "energy" else (lead, 3, 3))
                parts.append(torch.zeros(shape, dtype=ref.dtype, device=ref.device))
                masks.append(torch.zeros(g.num_frames, dtype=torch.bool, device=ref.device))
        labels[key] = torch.cat(parts)
        label_mask[key] = torch.cat(masks)
    return AtomGraph(
        positions=torch.cat([g.positions for g in graphs]),
        species=torch.cat([g.species for g in graphs]),
        cell=torch.cat([g.cell for g in graphs]),
        pbc=torch.cat([g.pbc for g in graphs]),
        edge_index=torch.cat([g.edge_index + o for g, o in zip(graphs, offsets)], dim=1),
        edge_shift=torch.cat([g.edge_shift for g in graphs]),
        batch=torch.cat([g.batch + o for g, o in zip(graphs, frame_offsets)]),
        n_atoms=torch.cat([g.n_atoms for g in graphs]),
        labels=labels,
        label_mask=label_mask,
    )
