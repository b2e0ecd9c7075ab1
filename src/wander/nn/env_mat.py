"""Smooth environment matrix of DeepPot-SE (se_e2_a) and its normalisation statistics.

For a neighbour vector ``d = (x, y, z)`` of length ``r`` the environment-matrix row is

    R(d) = s(r) * (1, x/r, y/r, z/r),   s(r) = w(r) / r,

    w(r) = 1                                 r < rcut_smth
         = u^3 (-6 u^2 + 15 u - 10) + 1      rcut_smth <= r < rcut,   u = (r - rcut_smth) / (rcut - rcut_smth)
         = 0                                 r >= rcut

exactly as DeePMD-kit. Rows are normalised per centre-atom type, ``(R - davg[t]) / dstd[t]``, with
the DeePMD statistics: ``davg = (<s>, 0, 0, 0)`` and ``dstd = (std(s), std(a), std(a), std(a))``
where the averages run over all ``sum(sel)`` neighbour slots of every centre atom of type ``t``
(empty slots count as zero rows) and ``a`` pools the three direction columns. An atom with more than
``sel[t]`` neighbours of type t contributes one slot per neighbour (the model keeps them all, see
:mod:`wander.nn.descriptor`); without such overflow the statistics equal DeePMD-kit's.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["smooth_switch", "environment_rows", "EnvStatAccumulator"]


def smooth_switch(r: torch.Tensor, rcut_smth: float, rcut: float) -> torch.Tensor:
    """Switch ``w(r)`` (dimensionless), 1 below ``rcut_smth``, 0 from ``rcut`` on; C2-continuous.

    ``r`` has any shape (Angstrom); the result has the same shape.
    """
    if not rcut_smth < rcut:
        raise ValueError(f"rcut_smth ({rcut_smth}) must be smaller than rcut ({rcut})")
    u = (r.clamp(min=rcut_smth, max=rcut) - rcut_smth) / (rcut - rcut_smth)
    u2 = u * u
    return u2 * u * (-6.0 * u2 + 15.0 * u - 10.0) + 1.0


def environment_rows(
    vectors: torch.Tensor, rcut_smth: float, rcut: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Un-normalised environment-matrix rows of neighbour vectors.

    Parameters
    ----------
    vectors : (E, 3)
        Neighbour vectors ``x_j - x_i + S @ cell`` in Angstrom.

    Returns
    -------
    rows : (E, 4)
        ``s(r) * (1, x/r, y/r, z/r)`` in 1/Angstrom. Zero for ``r >= rcut`` and for ``r == 0``.
    switch : (E,)
        ``w(r)``.

    A zero-length vector (coincident atoms) gives a zero row with zero gradient instead of NaN:
    the length is taken through ``torch.where`` so no division by zero reaches autograd.
    """
    r2 = (vectors * vectors).sum(-1)
    nonzero = r2 > 0
    r = torch.sqrt(torch.where(nonzero, r2, torch.ones_like(r2)))
    switch = torch.where(nonzero, smooth_switch(r, rcut_smth, rcut), torch.zeros_like(r))
    s = switch / r
    rows = torch.cat([s.unsqueeze(-1), (s / r).unsqueeze(-1) * vectors], dim=-1)
    return rows, switch


class EnvStatAccumulator:
    """Running DeePMD ``davg`` / ``dstd`` statistics per centre-atom type.

    Feed batches with :meth:`add`, read ``(davg, dstd)`` (each ``(ntypes, 4)``) with :meth:`compute`.
    A type never seen gets ``davg = 0`` and ``dstd = 0.1``; standard deviations below ``0.01`` are
    raised to ``0.01`` (DeePMD's protection).
    """

    def __init__(self, ntypes: int, sel: Sequence[int]) -> None:
        self.ntypes = int(ntypes)
        self.sel = torch.tensor([int(s) for s in sel], dtype=torch.int64)
        if self.sel.shape != (self.ntypes,):
            raise ValueError(f"sel needs {self.ntypes} entries, got {list(sel)}")
        # per type: [count_slots, sum_s, sumsq_s, sum_a, sumsq_a]
        self._acc = torch.zeros(self.ntypes, 5, dtype=torch.float64)

    def add(self, rows: torch.Tensor, edge_index: torch.Tensor, species: torch.Tensor) -> None:
        """Accumulate one batch.

        rows : (E, 4) un-normalised rows; edge_index : (2, E) (centre i, neighbour j);
        species : (N,) type of every atom. Every atom contributes ``sum(sel)`` slots, or more where it
        has more than ``sel[t]`` neighbours of type t inside ``rcut`` (they are all kept by the model).
        """
        rows = rows.detach().to(torch.float64)
        i, j = edge_index[0].long(), edge_index[1].long()
        species = species.long()
        per_edge = torch.stack(
            [rows[:, 0], rows[:, 0] ** 2, rows[:, 1:].sum(-1), (rows[:, 1:] ** 2).sum(-1)], dim=-1
        )
        self._acc[:, 1:].index_add_(0, species[i], per_edge)
        n = species.shape[0]
        inside = rows[:, 0] != 0
        counts = torch.bincount((i * self.ntypes + species[j])[inside], minlength=n * self.ntypes)
        slots = torch.maximum(counts.reshape(n, self.ntypes), self.sel).sum(-1).to(torch.float64)
        self._acc[:, 0].index_add_(0, species, slots)

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``davg`` and ``dstd``, each (ntypes, 4), float64."""
        n, s, ss, a, aa = self._acc.unbind(-1)
        seen = n > 0
        safe_n = torch.where(seen, n, torch.ones_like(n))
        mean_s = torch.where(seen, s / safe_n, torch.zeros_like(s))
        std_s = torch.sqrt(torch.clamp(ss / safe_n - (s / safe_n) ** 2, min=0.0))
        std_a = torch.sqrt(torch.clamp(aa / (3 * safe_n) - (a / (3 * safe_n)) ** 2, min=0.0))
        std_s = torch.where(seen, std_s.clamp(min=1e-2), torch.full_like(std_s, 0.1))
        std_a = torch.where(seen, std_a.clamp(min=1e-2), torch.full_like(std_a, 0.1))
        davg = torch.zeros(self.ntypes, 4, dtype=torch.float64)
        davg[:, 0] = mean_s
        dstd = torch.stack([std_s, std_a, std_a, std_a], dim=-1)
        return davg, dstd
