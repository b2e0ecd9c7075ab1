"""DeepPot-SE two-body embedding descriptor with full relative coordinates (DeePMD ``se_e2_a``).

For a centre atom i with normalised environment rows ``R_ij`` (see :mod:`wander.nn.env_mat`) and
embedding nets ``G`` of the normalised first column ``s_ij``,

    T_i = (1 / nnei) * sum_slots R_ij^T G(s_ij)           (4, ng)
    D_i = T_i^T T_i[:, :axis_neuron]                       (ng, axis_neuron) -> flattened ng*axis_neuron

where ``nnei = sum(sel)``. DeePMD-kit fills the ``sel[t]`` slots of neighbour type t with real
neighbours (nearest first) and pads the rest with empty rows; an empty row is exactly the row of a
neighbour at or beyond ``rcut``. Here the sum runs over the edge list instead and the padded slots
are added analytically,

    sum_slots f(R) = sum_edges [f(R_ij) - f(R_pad)] + sum_t sel[t] f(R_pad),

which equals DeePMD-kit whenever no atom has more than ``sel[t]`` neighbours of type t, and stays
smooth (no truncation) when some atom does. Memory is linear in the number of edges: G is evaluated
once per edge and contracted in a per-atom padded ``(N, K, .)`` layout with ``K`` the largest
neighbour count.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from wander.nn.env_mat import environment_rows
from wander.nn.networks import EmbeddingNet

__all__ = ["DescrptSeA", "neighbor_counts"]


def neighbor_counts(
    edge_index: torch.Tensor, species: torch.Tensor, ntypes: int, n_atoms: int | None = None,
    edge_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Number of neighbours of each type per centre atom, ``(N, ntypes)`` int64.

    ``edge_mask`` (E,) bool selects the edges to count (e.g. those within ``rcut``).
    """
    n = int(species.shape[0]) if n_atoms is None else int(n_atoms)
    i, j = edge_index
    key = i * ntypes + species[j]
    if edge_mask is not None:
        key = key[edge_mask]
    return torch.bincount(key, minlength=n * ntypes).reshape(n, ntypes)


class DescrptSeA(nn.Module):
    """se_e2_a descriptor.

    Parameters
    ----------
    ntypes
        Number of atom types (``len(type_map)``).
    rcut, rcut_smth
        Cutoff and start of the smooth switch, Angstrom.
    sel
        Neighbour slots per neighbour type (DeePMD ``sel``); sets ``nnei = sum(sel)`` and the
        padding term. Must be at least the largest neighbour count for DeePMD equivalence.
    neuron
        Embedding-net widths; ``ng = neuron[-1]``.
    axis_neuron
        Number of columns of ``T`` kept for the second factor (DeePMD ``axis_neuron``).
    resnet_dt, activation_function
        Embedding-net options as in DeePMD-kit.
    type_one_side
        If False (default), one embedding net per (centre type, neighbour type) pair; if True, one
        per neighbour type.
    seed
        Seed of the parameter initialisation.

    Buffers ``davg`` and ``dstd`` (ntypes, 4) hold the normalisation statistics.
    """

    def __init__(
        self,
        ntypes: int,
        rcut: float,
        rcut_smth: float,
        sel: Sequence[int],
        neuron: Sequence[int] = (25, 50, 100),
        axis_neuron: int = 16,
        resnet_dt: bool = False,
        type_one_side: bool = False,
        activation_function: str = "tanh",
        seed: int | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if ntypes < 1:
            raise ValueError("ntypes must be >= 1")
        if len(sel) != ntypes:
            raise ValueError(f"sel needs one entry per type ({ntypes}), got {list(sel)}")
        if any(int(s) < 0 for s in sel) or sum(sel) == 0:
            raise ValueError(f"sel entries must be >= 0 with a positive sum, got {list(sel)}")
        if not 0 <= rcut_smth < rcut:
            raise ValueError(f"need 0 <= rcut_smth < rcut, got rcut_smth={rcut_smth}, rcut={rcut}")
        if not 1 <= axis_neuron <= neuron[-1]:
            raise ValueError(f"axis_neuron must lie in [1, neuron[-1]={neuron[-1]}], got {axis_neuron}")
        self.ntypes = int(ntypes)
        self.rcut = float(rcut)
        self.rcut_smth = float(rcut_smth)
        self.sel = [int(s) for s in sel]
        self.nnei = sum(self.sel)
        self.neuron = [int(n) for n in neuron]
        self.axis_neuron = int(axis_neuron)
        self.type_one_side = bool(type_one_side)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        n_nets = self.ntypes if self.type_one_side else self.ntypes * self.ntypes
        self.embeddings = nn.ModuleList(
            EmbeddingNet(self.neuron, activation_function, resnet_dt, generator=gen, dtype=dtype)
            for _ in range(n_nets)
        )
        self.register_buffer("davg", torch.zeros(self.ntypes, 4, dtype=dtype))
        self.register_buffer("dstd", torch.ones(self.ntypes, 4, dtype=dtype))
        self.register_buffer("sel_t", torch.tensor(self.sel, dtype=dtype), persistent=False)

    # ------------------------------------------------------------------ properties
    @property
    def dim_out(self) -> int:
        """Descriptor width ``neuron[-1] * axis_neuron``."""
        return self.neuron[-1] * self.axis_neuron

    def net_index(self, centre_type: int, neighbor_type: int) -> int:
        """Index into ``embeddings`` of the net for a (centre, neighbour) type pair."""
        return neighbor_type if self.type_one_side else centre_type * self.ntypes + neighbor_type

    def set_stats(self, davg: torch.Tensor, dstd: torch.Tensor) -> None:
        """Set the normalisation statistics, each (ntypes, 4); ``dstd`` must be positive."""
        if davg.shape != (self.ntypes, 4) or dstd.shape != (self.ntypes, 4):
            raise ValueError(f"davg/dstd must be ({self.ntypes}, 4)")
        if not bool((dstd > 0).all()):
            raise ValueError("dstd must be positive")
        with torch.no_grad():
            self.davg.copy_(davg)
            self.dstd.copy_(dstd)

    # ------------------------------------------------------------------ forward
    def environment_embedding(
        self, edge_vec: torch.Tensor, edge_index: torch.Tensor, species: torch.Tensor,
        edge_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``T_i = (1/nnei) sum_slots R_ij^T G(s_ij)`` of every atom, shape (N, 4, ng).

        Parameters
        ----------
        edge_vec : (E, 3)
            Neighbour vectors ``x_j - x_i + S @ cell`` (Angstrom).
        edge_index : (2, E)
            Rows (centre i, neighbour j).
        species : (N,)
            Type index of every atom.
        edge_weight : (E,), optional
            Smooth factor in [0, 1] on every environment row (e.g. 0 for pairs in another layer):
            a row scaled to 0 is exactly an empty slot, so the result stays smooth.

        Column 0 of ``T`` is rotation invariant, columns 1:4 rotate as a Cartesian vector.
        """
        n = species.shape[0]
        ng = self.neuron[-1]
        dtype = self.davg.dtype
        i, j = edge_index[0], edge_index[1]
        if edge_vec.shape != (i.shape[0], 3):
            raise ValueError(f"edge_vec must be (E, 3) with E={i.shape[0]}, got {tuple(edge_vec.shape)}")
        if n and (int(species.min()) < 0 or int(species.max()) >= self.ntypes):
            raise ValueError(f"species indices must lie in [0, {self.ntypes})")

        vec = edge_vec.to(dtype)
        inside = (vec * vec).sum(-1) < self.rcut ** 2
        if not bool(inside.all()):  # edges at or beyond rcut add exactly nothing: drop them early
            vec, i, j = vec[inside], i[inside], j[inside]
            edge_weight = None if edge_weight is None else edge_weight[inside]
        rows, _ = environment_rows(vec, self.rcut_smth, self.rcut)
        if edge_weight is not None:
            rows = rows * edge_weight.to(dtype)[:, None]
        ti, tj = species[i], species[j]
        rr = (rows - self.davg[ti]) / self.dstd[ti]                      # (E, 4)
        r_pad = -self.davg / self.dstd                                    # (ntypes, 4): empty slot
        # G on the edges, grouped by embedding net; f_pad[c, t] = R_pad[c]^T G_{c,t}(s_pad[c])
        pair = self._pair_ids(ti, tj)
        f_pad_rows = []
        for c in range(self.ntypes):
            g_pad_c = []
            for t in range(self.ntypes):
                net = self.embeddings[self.net_index(c, t)]
                g_pad_c.append(net(r_pad[c, :1]))                          # (ng,)
            f_pad_rows.append(r_pad[c, :, None] * torch.stack(g_pad_c)[:, None, :])   # (ntypes, 4, ng)
        if pair.numel() and bool((pair == pair[0]).all()):  # one net covers every edge
            g = self.embeddings[int(pair[0])](rr[:, :1])
        else:
            g = torch.zeros(rr.shape[0], ng, dtype=dtype, device=rr.device)
            for k, net in enumerate(self.embeddings):
                sel_e = torch.nonzero(pair == k).squeeze(-1)
                if sel_e.numel():
                    g = g.index_put((sel_e,), net(rr[sel_e, :1]))
        f_pad = torch.stack(f_pad_rows)                                   # (ntypes, ntypes, 4, ng)

        # contract R^T G per atom in a padded (N, K, .) layout; edges sorted by centre atom
        if i.numel() > 1 and not bool((i[1:] >= i[:-1]).all()):
            order = torch.argsort(i, stable=True)
            i, tj, rr, g = i[order], tj[order], rr[order], g[order]
        counts = torch.bincount(i, minlength=n)
        k_max = int(counts.max()) if i.numel() else 0
        start = torch.cumsum(counts, 0) - counts
        slot = torch.arange(i.shape[0], device=i.device) - start[i]
        rr_p = torch.zeros(n, k_max, 4, dtype=dtype, device=rr.device).index_put((i, slot), rr)
        g_p = torch.zeros(n, k_max, ng, dtype=dtype, device=rr.device).index_put((i, slot), g)
        t_edges = torch.bmm(rr_p.transpose(1, 2), g_p)                  # (N, 4, ng)

        # padded slots: (sel[t] - count[i, t]) copies of f_pad[species_i, t]
        type_counts = torch.bincount(i * self.ntypes + tj, minlength=n * self.ntypes).reshape(n, self.ntypes)
        n_pad = self.sel_t.to(dtype) - type_counts.to(dtype)              # (N, ntypes)
        t_pad = torch.einsum("nt,ntag->nag", n_pad, f_pad[species])
        return (t_edges + t_pad) / self.nnei

    def _pair_ids(self, ti: torch.Tensor, tj: torch.Tensor) -> torch.Tensor:
        return tj if self.type_one_side else ti * self.ntypes + tj

    def forward(
        self, edge_vec: torch.Tensor, edge_index: torch.Tensor, species: torch.Tensor,
        edge_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Descriptor ``D`` of every atom, shape (N, ng * axis_neuron), index ``g * axis_neuron + a``.

        Arguments as in :meth:`environment_embedding`. Invariant under rotations, translations and
        permutations of like atoms.
        """
        t = self.environment_embedding(edge_vec, edge_index, species, edge_weight)    # (N, 4, ng)
        d = torch.bmm(t.transpose(1, 2), t[:, :, : self.axis_neuron])    # (N, ng, axis)
        return d.reshape(species.shape[0], self.dim_out)
