"""Registry-dependent interlayer energy of sp2 layers: a Kolmogorov-Crespi term with local normals.

The se_e2_a descriptor sums smooth functions of neighbour distances, and the stacking (registry)
signal of two graphene sheets is a tiny modulation of those sums: on the project's DFT registry scan
a force field trained on nothing but the scan frames reproduces less than 1 % of E(AA) - E(AB)
(docs/model.md). Kolmogorov and Crespi (Phys. Rev. B 71, 235415 (2005)) solved the same problem for
empirical potentials with an explicit dependence on the transverse distance ``rho`` of a pair, and
that term is added here to the Deep Potential (the network then learns the rest):

    V_ij = exp(-lambda (r - z0)) [C + f(rho_ij) + f(rho_ji)] - A (z0 / r)^6
    f(rho) = exp(-(rho/delta)^2) [C0 + C2 (rho/delta)^2 + C4 (rho/delta)^4]
    rho_ij^2 = r^2 - r^T P_i r

``P_i`` projects on the normal of the sheet at atom i. It is built without an eigen-decomposition
(whose gradient is singular for the degenerate in-plane eigenvalues of a symmetric site): with
``M_i = sum_k w(r_ik) r_ik r_ik^T`` over the in-plane neighbours (``r < normal_off``), the adjugate
of ``M_i`` equals ``l1 l2 n n^T`` for exactly planar neighbours, so ``P_i = adj(M_i) / tr adj(M_i)``
is the normal projector of a flat sheet and a smooth, rotation-covariant generalisation of it for a
corrugated one. No layer labels are needed: a pair counts as interlayer through a smooth switch of
its out-of-plane separation ``h_ij^2 = r^T P_i r`` (0 below ``h_on``, 1 above ``h_off``), applied
from both ends. The whole term goes to zero smoothly between ``r_on`` and ``r_off``; it uses the
force field's own neighbour list (whose cutoff covers ``r_off``), and forces and virial stay exact
derivatives.

Parameters are stored in eV and Angstrom; :func:`fit_interlayer` fits them to labelled frames (the
DFT registry scan) before the network is trained on the remainder.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from wander.data.graph import AtomGraph, collate
from wander.nn.env_mat import smooth_switch

__all__ = ["KolmogorovCrespi", "KC_GRAPHITE", "fit_interlayer"]

#: Kolmogorov-Crespi parameters for graphite (PRB 71, 235415), eV and Angstrom.
KC_GRAPHITE: dict[str, float] = {
    "C0": 15.71e-3, "C2": 12.29e-3, "C4": 4.933e-3, "C": 3.030e-3,
    "delta": 0.578, "lam": 3.629, "A": 10.238e-3, "z0": 3.34,
}
_POSITIVE = ("delta", "lam", "z0")


def _adjugate_sym(m: torch.Tensor) -> torch.Tensor:
    """Adjugate (transposed cofactor matrix) of symmetric (N, 3, 3) matrices."""
    a, b, c = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    d, e, f = m[:, 0, 1], m[:, 1, 2], m[:, 0, 2]
    rows = [
        torch.stack([b * c - e * e, f * e - d * c, d * e - f * b], -1),
        torch.stack([f * e - d * c, a * c - f * f, d * f - a * e], -1),
        torch.stack([d * e - f * b, d * f - a * e, a * b - d * d], -1),
    ]
    return torch.stack(rows, 1)


class KolmogorovCrespi(nn.Module):
    """Interlayer pair energy with transverse-distance dependence (module docstring).

    Parameters
    ----------
    r_on, r_off
        The pair energy is switched off smoothly between these distances (Angstrom).
    normal_on, normal_off
        In-plane neighbours entering the normal, weight 1 below ``normal_on`` and 0 from
        ``normal_off`` (graphene: first shell 1.42 A, second 2.46 A).
    h_on, h_off
        Out-of-plane separation at which a pair starts / finishes counting as interlayer.
    params
        Initial ``C0, C2, C4, C, delta, lam, A, z0`` (default :data:`KC_GRAPHITE`).
    """

    def __init__(self, r_on: float = 5.0, r_off: float = 6.0, normal_on: float = 1.7,
                 normal_off: float = 2.1, h_on: float = 1.0, h_off: float = 2.0,
                 params: dict[str, float] | None = None, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        if not 0 < r_on < r_off:
            raise ValueError(f"need 0 < r_on < r_off, got {r_on}, {r_off}")
        if not 0 < normal_on < normal_off:
            raise ValueError(f"need 0 < normal_on < normal_off, got {normal_on}, {normal_off}")
        if not 0 <= h_on < h_off:
            raise ValueError(f"need 0 <= h_on < h_off, got {h_on}, {h_off}")
        p = dict(KC_GRAPHITE)
        if params:
            unknown = sorted(set(params) - set(p))
            if unknown:
                raise ValueError(f"unknown Kolmogorov-Crespi parameters {unknown}; known: {sorted(p)}")
            p.update(params)
        for k in _POSITIVE:
            if p[k] <= 0:
                raise ValueError(f"{k} must be > 0, got {p[k]}")
        self.r_on, self.r_off = float(r_on), float(r_off)
        self.normal_on, self.normal_off = float(normal_on), float(normal_off)
        self.h_on, self.h_off = float(h_on), float(h_off)
        for k, v in p.items():
            self.register_buffer(k, torch.tensor(float(v), dtype=dtype))

    # ------------------------------------------------------------------ parameters
    def parameter_dict(self) -> dict[str, float]:
        """Current ``C0 .. z0`` as floats (eV, Angstrom)."""
        return {k: float(getattr(self, k)) for k in KC_GRAPHITE}

    def set_parameters(self, values: dict[str, float]) -> None:
        with torch.no_grad():
            for k, v in values.items():
                getattr(self, k).fill_(float(v))

    # ------------------------------------------------------------------ geometry
    def normal_projectors(self, edge_vec: torch.Tensor, edge_index: torch.Tensor, n_atoms: int) -> torch.Tensor:
        """``P_i`` (N, 3, 3): the normal projector of the sheet at every atom."""
        r2 = (edge_vec * edge_vec).sum(-1)
        near = r2 < self.normal_off ** 2
        vec = edge_vec[near]
        w = smooth_switch(vec.norm(dim=-1), self.normal_on, self.normal_off)
        outer = w[:, None, None] * vec[:, :, None] * vec[:, None, :]
        m = torch.zeros(n_atoms, 3, 3, dtype=edge_vec.dtype, device=edge_vec.device)
        m = m.index_add(0, edge_index[0][near], outer)
        adj = _adjugate_sym(m)
        tr = adj.diagonal(dim1=1, dim2=2).sum(-1)
        ok = tr > 1e-12
        safe = torch.where(ok, tr, torch.ones_like(tr))
        return torch.where(ok[:, None, None], adj / safe[:, None, None], torch.zeros_like(adj))

    def forward(self, edge_vec: torch.Tensor, edge_index: torch.Tensor, n_atoms: int,
                proj: torch.Tensor | None = None) -> torch.Tensor:
        """Per-atom interlayer energy (N,) eV; half of every pair energy goes to each atom. ``proj``:
        the :meth:`normal_projectors` of these edges when already computed."""
        vec = edge_vec.to(self.C0.dtype)
        out = torch.zeros(n_atoms, dtype=vec.dtype, device=vec.device)
        if vec.shape[0] == 0:
            return out
        if proj is None:
            proj = self.normal_projectors(vec, edge_index, n_atoms)
        i, j = edge_index[0], edge_index[1]
        return out.index_add(0, i, self.edge_energies(vec, proj[i], proj[j]))

    def edge_energies(self, vec: torch.Tensor, proj_i: torch.Tensor, proj_j: torch.Tensor) -> torch.Tensor:
        """Energy (E,) eV that directed edge ``i -> j`` (vector ``vec``) gives its centre atom ``i``,
        from the normal projectors ``P_i``, ``P_j`` (E, 3, 3) of its two atoms; zero for pairs that
        are not interlayer or lie beyond ``r_off``."""
        r2 = (vec * vec).sum(-1)
        cand = (r2 < self.r_off ** 2) & (r2 > self.h_on ** 2)
        out = torch.zeros_like(r2)
        vec, r2 = vec[cand], r2[cand]
        h2_i, h2_j = self._heights2(vec, proj_i[cand], proj_j[cand])
        w_pair = self._interlayer_weight(h2_i) * self._interlayer_weight(h2_j)
        r = torch.sqrt(r2)
        taper = smooth_switch(r, self.r_on, self.r_off)
        rho2 = (r2 - h2_i).clamp(min=0.0) / (self.delta * self.delta)
        f = torch.exp(-rho2) * (self.C0 + self.C2 * rho2 + self.C4 * rho2 * rho2)
        rep = torch.exp(-self.lam * (r - self.z0)) * (0.5 * self.C + f)
        disp = 0.5 * self.A * (self.z0 / r) ** 6
        return out.masked_scatter(cand, w_pair * taper * (rep - disp))

    @torch.no_grad()
    def candidates(self, vec: torch.Tensor, proj: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Mask of the edges ``i -> j`` that can carry interlayer energy (inside ``r_off`` and out of
        the plane by more than ``h_on`` at both ends); every other edge gives exactly zero energy and
        zero gradient, so dropping it first changes nothing but the cost. ``proj``: (N, 3, 3) normal
        projectors of all atoms."""
        vec = vec.detach().to(proj.dtype)
        r2 = (vec * vec).sum(-1)
        mask = (r2 < self.r_off ** 2) & (r2 > self.h_on ** 2)
        idx = mask.nonzero().squeeze(1)
        v = vec[idx]
        h2_i, h2_j = self._heights2(v, proj[i[idx]], proj[j[idx]])
        mask[idx] = (h2_i > self.h_on ** 2) & (h2_j > self.h_on ** 2)
        return mask

    def pair_weight(self, vec: torch.Tensor, proj_i: torch.Tensor, proj_j: torch.Tensor) -> torch.Tensor:
        """Smooth interlayer indicator (E,) of edges: 1 for pairs in different sheets, 0 within one."""
        h2_i, h2_j = self._heights2(vec, proj_i, proj_j)
        return self._interlayer_weight(h2_i) * self._interlayer_weight(h2_j)

    @staticmethod
    def _heights2(vec: torch.Tensor, proj_i: torch.Tensor, proj_j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Squared out-of-plane separations ``r^T P_i r`` and ``r^T P_j r`` of edges."""
        return (torch.einsum("ea,eab,eb->e", vec, proj_i, vec), torch.einsum("ea,eab,eb->e", vec, proj_j, vec))

    def _interlayer_weight(self, h2: torch.Tensor) -> torch.Tensor:
        h = torch.sqrt(h2.clamp(min=self.h_on ** 2))
        return 1.0 - smooth_switch(h, self.h_on, self.h_off)

    def energy_forces(self, graph: AtomGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame energies (B,) and forces (N, 3) of this term alone (differentiable w.r.t. parameters)."""
        pos = graph.positions.to(self.C0.dtype)
        if not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        vec = graph.edge_vectors(pos, graph.cell.to(pos.dtype))
        e_at = self(vec, graph.edge_index, pos.shape[0])
        energy = torch.zeros(graph.num_frames, dtype=pos.dtype).index_add(0, graph.batch, e_at)
        (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=True)
        return energy, -grad


def fit_interlayer(term: KolmogorovCrespi, graphs: Sequence[AtomGraph], groups: Sequence[int] | None = None,
                   force_weight: float = 1.0, in_plane_forces: bool = True, steps: int = 1500,
                   lr: float = 0.02,
                   baseline: tuple[torch.Tensor, torch.Tensor] | None = None,
                   free_offset: bool = True) -> dict[str, float]:
    """Fit the parameters of ``term`` to labelled frames (e.g. a registry scan).

    Minimises ``mean(((E_DFT - E_KC) / n_atoms - c)^2) + force_weight * mean |F_DFT - F_KC|^2`` over
    the eight parameters and one offset ``c`` per atom and group of frames (the frames' intralayer
    energy per atom; frames of one group share a composition per atom, e.g. carbon only),
    with Adam. ``baseline`` = (frame energies (B,), forces (N, 3)) of the rest of a model (e.g. its
    trained network, :func:`refit_interlayer`) is subtracted from the labels first, so that the term
    is fitted to what the rest leaves. ``free_offset=False`` fits without the offsets: the baseline
    then carries the frames' whole non-interlayer energy (e.g. anchored on isolated layers), so the
    term's absolute value, the binding energy, is fitted too. Returns the fit report: energy RMSE per
    frame and force RMSE (meV, meV/A) before and after.
    """
    if not graphs:
        raise ValueError("fit_interlayer: no frames to fit")
    for g in graphs:
        if "energy" not in g.labels or "forces" not in g.labels:
            raise ValueError("fit_interlayer: every frame needs energy and force labels")
    dtype = term.C0.dtype
    n_at = torch.tensor([g.positions.shape[0] for g in graphs], dtype=dtype)
    batch = collate(list(graphs))
    gid = torch.zeros(len(graphs), dtype=torch.int64) if groups is None else torch.as_tensor(list(groups))
    if gid.shape != (len(graphs),):
        raise ValueError(f"fit_interlayer: groups needs one entry per frame ({len(graphs)})")
    gid = torch.unique(gid, return_inverse=True)[1]
    onehot = torch.nn.functional.one_hot(gid).to(dtype)            # (frames, groups)
    counts = onehot.sum(0) @ onehot.T
    e_ref = batch.labels["energy"].to(dtype)
    f_ref = batch.labels["forces"].to(dtype)
    if baseline is not None:
        e_base, f_base = (torch.as_tensor(x).to(dtype) for x in baseline)
        if e_base.shape != e_ref.shape or f_base.shape != f_ref.shape:
            raise ValueError(f"fit_interlayer: baseline shapes {tuple(e_base.shape)}, {tuple(f_base.shape)} do not "
                             f"match the frames ({tuple(e_ref.shape)}, {tuple(f_ref.shape)})")
        e_ref, f_ref = e_ref - e_base, f_ref - f_base
    names = list(KC_GRAPHITE)
    start = term.parameter_dict()
    raw = {k: torch.tensor(math.log(v) if k in _POSITIVE else v * 1e3, dtype=dtype, requires_grad=True)
           for k, v in start.items()}

    def unpack() -> dict[str, torch.Tensor]:
        return {k: torch.exp(raw[k]) if k in _POSITIVE else raw[k] * 1e-3 for k in names}

    def residuals(values: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        saved = {k: getattr(term, k) for k in names}
        for k in names:
            setattr(term, k, values[k])
        try:
            energy, forces = term.energy_forces(batch)
        finally:
            for k in names:
                setattr(term, k, saved[k])
        de = (e_ref - energy) / n_at                                   # per atom
        if free_offset:
            de = de - (onehot @ (onehot.T @ de)) / counts
        df = f_ref - forces
        return de, (df[:, :2] if in_plane_forces else df).reshape(-1)

    def report(tag: str) -> dict[str, float]:
        with torch.enable_grad():
            de, df = residuals(unpack())
        return {f"energy_rmse_meV_{tag}": float((de * n_at).detach().pow(2).mean().sqrt()) * 1e3,
                f"force_rmse_meV_A_{tag}": float(df.detach().pow(2).mean().sqrt()) * 1e3}

    rep = report("start")
    opt = torch.optim.Adam(list(raw.values()), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        opt.zero_grad()
        de, df = residuals(unpack())
        loss = 1e6 * (de.pow(2).mean() + force_weight * df.pow(2).mean())
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        final = {k: float(v) for k, v in unpack().items()}
    term.set_parameters(final)
    rep.update(report("fit"))
    rep.update({f"param_{k}": v for k, v in final.items()})
    rep["frames"] = len(graphs)
    return rep
