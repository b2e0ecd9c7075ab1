"""Hamiltonian heads: Wannier tight-binding blocks from shared descriptors and equivariant features.

For a half-stored pair (i, j, R) with bond vector ``r = x_j + R @ cell - x_i`` the block is

    H_ij(R) = 1/2 [ f(i, j, r) + f(j, i, -r)^T ],
    f(i, j, r) = u(r / r_cut) sum_c s_c(r) BlockCoupling_{z_i z_j}( MLP_{c, z_i z_j}(inv), F(i, j, r) )

with ``c`` running over the categories of the pair (intralayer near / long, blended smoothly across
``r_near`` by ``s_c``; or interlayer), ``inv = [d_i, d_j, rbf(|r|), invariant features]`` and ``F``
the equivariant feature bank of :class:`~wander.nn.hamiltonian.features.PairFeatures`. Onsite blocks
come from ``A_i`` and ``d_i`` and are symmetrised. Hence, exactly and by construction:

- rotations / reflections: ``H_ij(QX) = D_i(Q) H_ij(X) D_j(Q)^T``;
- Hermiticity: the block of (j, i, -R) is the transpose of that of (i, j, R); onsite blocks are
  symmetric; all blocks are real;
- permutation equivariance (no dependence on which atom is called i), translation invariance;
- blocks vanish smoothly (C2) at ``r_cut`` and are C2 in r across ``r_near``.

``d`` is the shared per-atom descriptor ``(N, F)``: detached in ``descriptor_mode="frozen"``,
differentiated through in ``"joint"``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from wander.nn.hamiltonian.basis import OrbitalBasis, default_dtype
from wander.nn.hamiltonian.blocks import BlockCoupling, required_irreps
from wander.nn.hamiltonian.categories import CATEGORIES, INTER, INTRA_LONG, INTRA_NEAR
from wander.nn.hamiltonian.features import (AtomicDensity, GaussianBasis, OnsiteFeatures, PairFeatures,
                                            cutoff_envelope, smooth_step)

__all__ = ["HamiltonianHeads", "HeadsConfig"]

_MODES = ("frozen", "joint")


@dataclass(frozen=True)
class HeadsConfig:
    """Settings of :class:`HamiltonianHeads` (lengths in Angstrom).

    Attributes
    ----------
    type_map : element of every species index (the descriptor's type order)
    orbitals : ``{element: spec}`` for :class:`OrbitalBasis`, e.g. ``{"C": "pz"}``
    descriptor_dim : width F of the shared descriptor
    r_cut : hopping cutoff; blocks vanish smoothly there
    r_near : intralayer near / long boundary (graphene shells: 1.42, 2.46, 2.84 | 3.76, ...)
    near_width : width of the smooth near -> long blend centred on ``r_near`` (0: hard switch)
    r_env : cutoff of the equivariant neighbour density ``A_i``
    layered : whether interlayer pairs have their own heads (needs ``atoms.arrays["layer"]``)
    descriptor_mode : ``"frozen"`` (descriptor detached) or ``"joint"``
    density_channels, tp_channels : channels of ``A_i`` and of the tensor-product features
    n_rbf : Gaussians of the pair distance fed to the coefficient networks
    feature_lmax : highest order L of the neighbour density ``A_i`` and of the bond harmonics
        (default ``2 l_max`` of the basis, the least the blocks need). Invariants of order L see
        L-fold in-plane anisotropy: a planar trigonal environment (graphene, the S or Mo sublattice
        of MoS2) has none below L = 3, so with pz orbitals (default 2) the interlayer hoppings
        cannot depend on the bond direction relative to each layer's bonds (the cos 3 theta terms
        of Fang and Kaxiras, PRB 93, 235153 (2016)); ``feature_lmax: 3`` adds them.
    pair_overlap : add the contractions ``A_i . A_j`` of the two atoms' densities (per channel and
        order) to the pair invariants (``PairFeatures.forward(..., overlaps=True)``); without them the heads
        cannot tell AA from AB stacking above a vertical interlayer pair
    hidden : hidden widths of the coefficient networks
    avg_neighbors : normalisation of ``A_i``
    output_scale : eV; the coefficient networks' outputs are multiplied by it (set it to the size
        of the largest hoppings so that unit-scale networks reach them quickly)
    seed : seed of the initialisation (None: torch's global generator)
    """

    type_map: tuple[str, ...]
    orbitals: Mapping[str, Any]
    descriptor_dim: int
    r_cut: float = 7.0
    r_near: float = 3.3
    near_width: float = 0.5
    r_env: float = 4.0
    layered: bool = True
    descriptor_mode: str = "frozen"
    density_channels: int = 8
    tp_channels: int = 8
    n_rbf: int = 16
    feature_lmax: int | None = None
    pair_overlap: bool = False
    hidden: tuple[int, ...] = (64, 64)
    avg_neighbors: float = 10.0
    output_scale: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "type_map", tuple(self.type_map))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if len(set(self.type_map)) != len(self.type_map) or not self.type_map:
            raise ValueError(f"type_map must be non-empty without duplicates, got {self.type_map}")
        if self.descriptor_mode not in _MODES:
            raise ValueError(f"descriptor_mode must be one of {_MODES}, got {self.descriptor_mode!r}")
        if not 0 < self.r_near <= self.r_cut:
            raise ValueError(f"need 0 < r_near <= r_cut, got r_near={self.r_near}, r_cut={self.r_cut}")
        if self.near_width < 0 or self.r_near - self.near_width / 2 <= 0 or \
                self.r_near + self.near_width / 2 > self.r_cut:
            raise ValueError("the near/long blend [r_near -+ near_width/2] must lie inside (0, r_cut]")
        if self.feature_lmax is not None and not 0 <= int(self.feature_lmax) <= 8:
            raise ValueError(f"feature_lmax must be between 0 and 8 (or None), got {self.feature_lmax}")
        if self.r_env <= 0 or self.descriptor_dim < 0 or not self.output_scale > 0:
            raise ValueError("need r_env > 0, descriptor_dim >= 0 and output_scale > 0")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["type_map"], d["hidden"] = list(self.type_map), list(self.hidden)
        d["orbitals"] = OrbitalBasis(self.orbitals).to_dict()
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HeadsConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown Hamiltonian head settings {unknown}; known: {sorted(known)}")
        return cls(**data)


def _mlp(n_in: int, hidden: Sequence[int], n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.SiLU()]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class HamiltonianHeads(nn.Module):
    """Onsite and hopping blocks of every (category, ordered element pair).

    Parameters
    ----------
    config
        :class:`HeadsConfig`.
    dtype
        Parameter dtype (float64 by default).
    """

    def __init__(self, config: HeadsConfig, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.config = config
        self.basis = OrbitalBasis(config.orbitals)
        missing = [el for el in config.type_map if el not in self.basis.elements]
        if missing:
            raise ValueError(f"elements {missing} of type_map have no orbitals in {self.basis}")
        self.type_map = config.type_map
        self.n_orbitals = [self.basis.n_orbitals(el) for el in self.type_map]
        self.max_orbitals = max(self.n_orbitals)
        self.pair_categories = (INTRA_NEAR, INTRA_LONG) + ((INTER,) if config.layered else ())
        with torch.random.fork_rng(enabled=config.seed is not None), default_dtype(torch.float64):
            if config.seed is not None:
                torch.manual_seed(config.seed)
            self._build()
        self.to(dtype)

    def _build(self) -> None:
        c, tm, basis = self.config, self.type_map, self.basis
        lmax = 2 * basis.lmax
        if c.feature_lmax is not None:
            if c.feature_lmax < lmax:
                raise ValueError(f"feature_lmax={c.feature_lmax} is below {lmax}, the order the blocks of "
                                 f"{basis} need (2 l_max)")
            lmax = int(c.feature_lmax)
        shells = {el: basis.shells(el) for el in tm}
        need_pair = set().union(*(required_irreps(shells[a], shells[b]) for a in tm for b in tm))
        need_onsite = set().union(*(required_irreps(shells[a], shells[a]) for a in tm))
        self.density = AtomicDensity(len(tm), c.r_env, lmax, c.density_channels, c.n_rbf, c.avg_neighbors)
        self.pair_features = PairFeatures(self.density.irreps_out, lmax, need_pair, c.tp_channels)
        self.onsite_features = OnsiteFeatures(self.density.irreps_out, need_onsite, c.tp_channels)
        self.pair_rbf = GaussianBasis(c.n_rbf, c.r_cut)
        # channel counts of the banks, read off a dummy evaluation
        dummy = torch.zeros(2, self.density.irreps_out.dim)
        bank, _ = self.pair_features(dummy, torch.tensor([[0, 1], [1, 0]]), torch.eye(3)[:2])
        pair_ch = {k: v.shape[1] for k, v in bank.items()}
        bank, _ = self.onsite_features(dummy)
        onsite_ch = {k: v.shape[1] for k, v in bank.items()}

        self.n_overlaps = self.density.irreps_out.num_irreps if c.pair_overlap else 0
        n_pair_in = 2 * c.descriptor_dim + c.n_rbf + self.pair_features.n_scalars + self.n_overlaps
        n_onsite_in = c.descriptor_dim + self.onsite_features.n_scalars
        self.couplings = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        for a in tm:
            cp = BlockCoupling(shells[a], shells[a], basis.n_orbitals(a), basis.n_orbitals(a), onsite_ch)
            self.couplings[f"onsite_{a}"] = cp
            self.heads[f"onsite_{a}"] = _mlp(n_onsite_in, c.hidden, cp.n_coefficients)
            for b in tm:
                cp = BlockCoupling(shells[a], shells[b], basis.n_orbitals(a), basis.n_orbitals(b), pair_ch)
                self.couplings[f"pair_{a}_{b}"] = cp
                for cat in self.pair_categories:
                    self.heads[f"{CATEGORIES[cat]}_{a}_{b}"] = _mlp(n_pair_in, c.hidden, cp.n_coefficients)

    # ------------------------------------------------------------------ forward
    def forward(self, descriptors: torch.Tensor, species: torch.Tensor, env_vec: torch.Tensor,
                env_index: torch.Tensor, pair_index: torch.Tensor, pair_vec: torch.Tensor,
                layer: torch.Tensor | None = None) -> torch.Tensor:
        """Blocks of the listed pairs, ``(P, M, M)`` eV, ``M = max orbitals per atom``.

        Parameters
        ----------
        descriptors : (N, F) shared invariant per-atom descriptor
        species : (N,) int64 index into ``type_map``
        env_vec, env_index : (E, 3) Angstrom and (2, E): neighbour edges for the density ``A_i``
            (``x_k - x_i + S @ cell``; edges beyond ``r_env`` contribute nothing)
        pair_index : (2, P) rows (i, j) of the blocks; ``i == j`` with a zero vector is onsite
        pair_vec : (P, 3) Angstrom, ``x_j + R @ cell - x_i``
        layer : (N,) int64 layer tags; required when ``config.layered``

        Block ``p`` holds ``H_{i a, j b}`` in ``[p, a, b]`` for the ``n(z_i)`` x ``n(z_j)`` orbitals
        of the two atoms (Wannier90 order); padding entries are exactly zero.
        """
        density = self.density(species, env_vec, env_index)
        return self.blocks(descriptors, species, density, pair_index, pair_vec, layer)

    def blocks(self, descriptors: torch.Tensor, species: torch.Tensor, density: torch.Tensor,
               pair_index: torch.Tensor, pair_vec: torch.Tensor, layer: torch.Tensor | None = None
               ) -> torch.Tensor:
        """As :meth:`forward` with the densities ``(N, irreps)`` of :attr:`density` precomputed."""
        n, dtype = species.shape[0], self.pair_rbf.centres.dtype
        if descriptors.shape != (n, self.config.descriptor_dim):
            raise ValueError(f"descriptors must be ({n}, {self.config.descriptor_dim}), got {tuple(descriptors.shape)}")
        if pair_index.ndim != 2 or pair_index.shape[0] != 2 or pair_vec.shape != (pair_index.shape[1], 3):
            raise ValueError("pair_index must be (2, P) and pair_vec (P, 3)")
        if n and (int(species.min()) < 0 or int(species.max()) >= len(self.type_map)):
            raise ValueError(f"species indices must lie in [0, {len(self.type_map)})")
        d = descriptors.detach() if self.config.descriptor_mode == "frozen" else descriptors
        d = d.to(dtype)
        i, j = pair_index
        vec = pair_vec.to(dtype)
        r = vec.norm(dim=-1)
        onsite = (i == j) & (r == 0)
        if bool(((r == 0) & ~onsite).any()):
            raise ValueError("two distinct atoms at the same position (zero bond vector)")
        same = self._same_layer(layer, i, j, n)
        m = self.max_orbitals
        out = vec.new_zeros(pair_index.shape[1], m, m)
        sel = torch.nonzero(onsite).squeeze(-1)
        if sel.numel():
            out = out.index_put((sel,), self._onsite(d, species, density, i[sel]))
        sel = torch.nonzero(~onsite).squeeze(-1)
        if sel.numel():
            out = out.index_put((sel,), self._hopping(d, species, density, i[sel], j[sel], vec[sel],
                                                      same[sel], r[sel]))
        return out

    # ------------------------------------------------------------------ parts
    def _same_layer(self, layer: torch.Tensor | None, i: torch.Tensor, j: torch.Tensor, n: int) -> torch.Tensor:
        if layer is None:
            if self.config.layered:
                raise ValueError("this model has an interlayer category and needs layer tags "
                                 "(atoms.arrays['layer'])")
            return torch.ones_like(i, dtype=torch.bool)
        if layer.shape != (n,):
            raise ValueError(f"layer must be ({n},), got {tuple(layer.shape)}")
        same = layer[i] == layer[j]
        if not self.config.layered and not bool(same.all()):
            raise ValueError("pairs between different layers given to a model without interlayer heads")
        return same

    def _pad(self, block: torch.Tensor) -> torch.Tensor:
        m = self.max_orbitals
        return nn.functional.pad(block, (0, m - block.shape[2], 0, m - block.shape[1]))

    def _onsite(self, d: torch.Tensor, species: torch.Tensor, density: torch.Tensor, atoms: torch.Tensor
                ) -> torch.Tensor:
        bank, scalars = self.onsite_features(density[atoms])
        inv = torch.cat([d[atoms], scalars], dim=1)
        z = species[atoms]
        out = inv.new_zeros(atoms.shape[0], self.max_orbitals, self.max_orbitals)
        for t, el in enumerate(self.type_map):
            sel = torch.nonzero(z == t).squeeze(-1)
            if not sel.numel():
                continue
            coef = self.heads[f"onsite_{el}"](inv[sel]) * self.config.output_scale
            blk = self.couplings[f"onsite_{el}"](coef, {k: v[sel] for k, v in bank.items()})
            out = out.index_put((sel,), self._pad(0.5 * (blk + blk.transpose(1, 2))))
        return out

    def category_weights(self, r: torch.Tensor, same: torch.Tensor) -> dict[int, torch.Tensor]:
        """Weight of every pair category times the cutoff envelope, ``{code: (P,)}``."""
        c = self.config
        env = cutoff_envelope(r, c.r_cut)
        if c.near_width > 0:
            near = 1.0 - smooth_step((r - (c.r_near - c.near_width / 2)) / c.near_width)
        else:
            near = (r < c.r_near).to(r.dtype)
        intra = same.to(r.dtype) * env
        w = {INTRA_NEAR: intra * near, INTRA_LONG: intra * (1.0 - near)}
        if c.layered:
            w[INTER] = (~same).to(r.dtype) * env
        return w

    def _hopping(self, d: torch.Tensor, species: torch.Tensor, density: torch.Tensor, i: torch.Tensor,
                 j: torch.Tensor, vec: torch.Tensor, same: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        p = i.shape[0]
        ii, jj = torch.cat([i, j]), torch.cat([j, i])
        rr, ss = torch.cat([r, r]), torch.cat([same, same])
        # with overlaps, they are the last invariants (a warm start pads their first-layer columns with zeros)
        bank, scalars = self.pair_features(density, torch.stack([ii, jj]), torch.cat([vec, -vec]),
                                           overlaps=bool(self.n_overlaps))
        pair_inv = torch.cat([self.pair_rbf(rr), scalars], dim=1)
        # The coefficient MLPs read [d_i, d_j, pair invariants]. Their first layer is split by
        # columns, so the descriptor part is projected once per atom of this batch of pairs instead
        # of being copied into a (2P, 2F + ...) input (the same numbers, without that memory traffic).
        zi, zj = species[ii], species[jj]
        out = vec.new_zeros(2 * p, self.max_orbitals, self.max_orbitals)
        for cat, weight in self.category_weights(rr, ss).items():
            for a, el_a in enumerate(self.type_map):
                for b, el_b in enumerate(self.type_map):
                    sel = torch.nonzero((zi == a) & (zj == b) & (weight > 0)).squeeze(-1)
                    if not sel.numel():
                        continue
                    mlp = self.heads[f"{CATEGORIES[cat]}_{el_a}_{el_b}"]
                    hidden = self._first_layer(mlp[0], d, ii[sel], jj[sel], pair_inv[sel])
                    coef = mlp[1:](hidden) * self.config.output_scale
                    blk = self.couplings[f"pair_{el_a}_{el_b}"](coef, {k: v[sel] for k, v in bank.items()})
                    out = out.index_add(0, sel, self._pad(blk * weight[sel, None, None]))
        return 0.5 * (out[:p] + out[p:].transpose(1, 2))

    def _first_layer(self, lin: nn.Linear, d: torch.Tensor, i: torch.Tensor, j: torch.Tensor,
                     pair_inv: torch.Tensor) -> torch.Tensor:
        """``lin(cat([d[i], d[j], pair_inv]))`` with the descriptor columns applied per atom."""
        f = self.config.descriptor_dim
        w = lin.weight
        atoms, local = torch.unique(torch.cat([i, j]), return_inverse=True)
        proj_i, proj_j = d[atoms] @ w[:, :f].T, d[atoms] @ w[:, f:2 * f].T
        n = i.shape[0]
        return proj_i[local[:n]] + proj_j[local[n:]] + nn.functional.linear(pair_inv, w[:, 2 * f:], lin.bias)

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def from_config(cls, config: HeadsConfig | Mapping[str, Any], dtype: torch.dtype = torch.float64
                    ) -> "HamiltonianHeads":
        cfg = config if isinstance(config, HeadsConfig) else HeadsConfig.from_dict(config)
        return cls(cfg, dtype=dtype)
