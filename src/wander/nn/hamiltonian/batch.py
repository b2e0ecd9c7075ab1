"""Batching Hamiltonian targets of several frames for training.

Atom indices of frame ``f`` are shifted by the number of atoms of the frames before it, matching
:func:`wander.data.graph.collate`. Bond vectors are recomputed from positions and cells in torch, so
they stay differentiable (positions and strain).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from wander.nn.hamiltonian.targets import HamiltonianTargets

__all__ = ["TargetBatch", "collate_targets", "pair_vectors"]


def pair_vectors(positions: torch.Tensor, cell: torch.Tensor, batch: torch.Tensor, pair_index: torch.Tensor,
                 pair_R: torch.Tensor) -> torch.Tensor:
    """Bond vectors ``x_j + R @ cell[frame] - x_i``, (P, 3) Angstrom.

    positions (N, 3); cell (B, 3, 3) rows; batch (N,) frame of every atom; pair_index (2, P);
    pair_R (P, 3) integer shifts.
    """
    i, j = pair_index
    shift = torch.einsum("pk,pkl->pl", pair_R.to(positions.dtype), cell.to(positions.dtype)[batch[i]])
    return positions[j] - positions[i] + shift


@dataclass
class TargetBatch:
    """Targets of several frames with global atom indices.

    Attributes
    ----------
    pair_index : (2, P) int64; pair_R : (P, 3) int64; category : (P,) int64
    blocks : (P, M, M) eV; mask : (P, M, M) bool
    """

    pair_index: torch.Tensor
    pair_R: torch.Tensor
    category: torch.Tensor
    blocks: torch.Tensor
    mask: torch.Tensor


def collate_targets(targets: Sequence[HamiltonianTargets], n_atoms: Sequence[int],
                    dtype: torch.dtype = torch.float64) -> TargetBatch:
    """Concatenate per-frame targets; ``n_atoms[f]`` is the atom count of frame f."""
    if len(targets) != len(n_atoms) or not targets:
        raise ValueError("need one atom count per target set, and at least one")
    m = {t.blocks.shape[1] for t in targets}
    if len(m) != 1:
        raise ValueError(f"target sets have different block sizes {sorted(m)}")
    offsets = np.concatenate([[0], np.cumsum(n_atoms)])[:-1]
    idx = np.concatenate([np.stack([t.pairs.i, t.pairs.j]) + o for t, o in zip(targets, offsets)], axis=1)
    return TargetBatch(
        pair_index=torch.as_tensor(idx, dtype=torch.int64),
        pair_R=torch.as_tensor(np.concatenate([t.pairs.R for t in targets]), dtype=torch.int64),
        category=torch.as_tensor(np.concatenate([t.pairs.category for t in targets]), dtype=torch.int64),
        blocks=torch.as_tensor(np.concatenate([t.blocks for t in targets]), dtype=dtype),
        mask=torch.as_tensor(np.concatenate([t.mask for t in targets])),
    )
