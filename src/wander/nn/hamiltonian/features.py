"""Equivariant features of atoms and atom pairs, and smooth radial functions.

Everything here is built from distances and e3nn real spherical harmonics (``component``
normalisation, input order ``(x, y, z)``), so every output is an e3nn irreps tensor that rotates
with ``Irreps.D_from_matrix``; no raw lab-frame coordinate reaches a network.

- :class:`AtomicDensity`: ``A_i^L[c] = (1/n_avg) sum_k phi_c(r_ik, z_k) Y^L(r_ik_hat)``, a cheap
  ACE/MACE-like density of the neighbours within ``r_env`` (natural parity ``(-1)^L``).
- :class:`PairFeatures`: features of a directed pair i -> j with bond vector ``r_ij``:
  ``Y^L(r_ij_hat)``, ``A_i``, ``A_j`` and the tensor product ``Y (x) [A_i, A_j]`` which supplies
  irreps of both parities (e.g. the pseudo-vector 1e that the antisymmetric part of a p-p block
  needs).
- :class:`OnsiteFeatures`: a constant scalar, ``A_i`` and ``A_i (x) A_i``.

A feature *bank* is a dict ``{(L, p): tensor (n, channels, 2L+1)}`` plus invariant scalars
``(n, n_scalars)`` for the coefficient networks.
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from torch import nn

__all__ = [
    "AtomicDensity",
    "GaussianBasis",
    "OnsiteFeatures",
    "PairFeatures",
    "cutoff_envelope",
    "natural_irreps",
    "smooth_step",
    "split_irreps",
]

Bank = dict[tuple[int, int], torch.Tensor]


def cutoff_envelope(r: torch.Tensor, r_cut: float, p: int = 6) -> torch.Tensor:
    """Polynomial cutoff ``u(r/r_cut)`` (DimeNet): 1 at r = 0, 0 for r >= r_cut.

    ``u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2)``; value, first and second
    derivatives vanish at ``x = 1``. Shape of ``r`` is kept.
    """
    x = (r / r_cut).clamp(min=0.0, max=1.0)
    u = 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
    return torch.where(r < r_cut, u, torch.zeros_like(u))


def smooth_step(x: torch.Tensor) -> torch.Tensor:
    """``0`` for x <= 0, ``1`` for x >= 1, ``6x^5 - 15x^4 + 10x^3`` between (C2 continuous)."""
    t = x.clamp(0.0, 1.0)
    return t * t * t * (t * (6 * t - 15) + 10)


class GaussianBasis(nn.Module):
    """Gaussians of a distance, centres evenly spaced on ``[0, r_max]``; ``(...,) -> (..., n)``."""

    def __init__(self, n: int, r_max: float) -> None:
        super().__init__()
        if n < 1 or r_max <= 0:
            raise ValueError(f"need n >= 1 and r_max > 0, got n={n}, r_max={r_max}")
        self.register_buffer("centres", torch.linspace(0.0, r_max, n), persistent=False)
        self.width = r_max / max(n - 1, 1)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return torch.exp(-(((r[..., None] - self.centres) / self.width) ** 2))


def natural_irreps(mul: int, lmax: int) -> o3.Irreps:
    """``mul x 0e + mul x 1o + mul x 2e + ...`` up to ``lmax`` (parity ``(-1)^L``)."""
    return o3.Irreps([(mul, (l, (-1) ** l)) for l in range(lmax + 1)])


def split_irreps(x: torch.Tensor, irreps: o3.Irreps) -> Bank:
    """Split an e3nn tensor ``(n, irreps.dim)`` into ``{(L, p): (n, mul, 2L+1)}``.

    Repeated irreps are concatenated along the channel axis.
    """
    out: dict[tuple[int, int], list[torch.Tensor]] = {}
    start = 0
    for mul, ir in irreps:
        width = mul * ir.dim
        out.setdefault((ir.l, ir.p), []).append(x[:, start:start + width].reshape(-1, mul, ir.dim))
        start += width
    return {k: torch.cat(v, dim=1) for k, v in out.items()}


def _overlaps(bank_i: Bank, bank_j: Bank) -> torch.Tensor:
    """Overlap invariants ``(P, channels x orders)``: ``mean_m A_i[c, L, m] A_j[c, L, m]`` of every
    density channel ``c`` and order ``(L, p)`` (sorted), from the split densities of both atoms.

    The other pair invariants are linear in each density, so they see the two environments only
    through the bond direction: for a bond along the layer normal they cannot tell the in-plane
    orientation of atom i's neighbours from atom j's (AA from AB stacking above a vertical
    interlayer pair, whose hoppings differ by 15 % in DFT). The contraction of the two densities
    with each other can (its L = 3 part goes as cos 3 of the angle between the two trigonal
    environments).
    """
    return torch.cat([(bank_i[k] * bank_j[k]).mean(dim=2) for k in sorted(bank_i)], dim=1)


def _merge(*banks: Bank) -> Bank:
    out: dict[tuple[int, int], list[torch.Tensor]] = {}
    for bank in banks:
        for k, v in bank.items():
            out.setdefault(k, []).append(v)
    return {k: torch.cat(v, dim=1) for k, v in out.items()}


class AtomicDensity(nn.Module):
    """Equivariant neighbour density ``A_i`` of irreps ``channels x (0e + 1o + ... + lmax)``.

    Parameters
    ----------
    n_species
        Number of atom types.
    r_env
        Cutoff (Angstrom); neighbours enter through the smooth envelope ``u(r / r_env)``.
    lmax
        Highest order L.
    channels
        Radial channels per order.
    n_rbf
        Gaussian radial functions.
    avg_neighbors
        Normalisation: the sum over neighbours is divided by this number.
    """

    def __init__(self, n_species: int, r_env: float, lmax: int, channels: int = 8, n_rbf: int = 8,
                 avg_neighbors: float = 10.0) -> None:
        super().__init__()
        if r_env <= 0 or lmax < 0 or channels < 1 or avg_neighbors <= 0:
            raise ValueError("need r_env > 0, lmax >= 0, channels >= 1 and avg_neighbors > 0")
        self.r_env, self.lmax, self.channels = float(r_env), int(lmax), int(channels)
        self.n_species = int(n_species)
        self.avg_neighbors = float(avg_neighbors)
        self.rbf = GaussianBasis(n_rbf, r_env)
        self.radial = nn.Parameter(torch.randn(n_rbf, n_species * channels) / math.sqrt(n_rbf))
        self.irreps_out = natural_irreps(channels, lmax)

    def forward(self, species: torch.Tensor, edge_vec: torch.Tensor, edge_index: torch.Tensor,
                chunk_size: int | None = None) -> torch.Tensor:
        """Densities of all atoms, ``(N, irreps_out.dim)``.

        Parameters
        ----------
        species : (N,) int64
        edge_vec : (E, 3) Angstrom, ``x_k - x_i + S @ cell`` for edge (i, k)
        edge_index : (2, E) int64, rows (centre i, neighbour k); edges beyond ``r_env`` add zero
        chunk_size : edges processed at once (memory bound); None = all
        """
        n = species.shape[0]
        dtype = self.radial.dtype
        out = torch.zeros(n, self.irreps_out.dim, dtype=dtype, device=edge_vec.device)
        if edge_index.shape != (2, edge_vec.shape[0]):
            raise ValueError(f"edge_index must be (2, E={edge_vec.shape[0]}), got {tuple(edge_index.shape)}")
        e = edge_vec.shape[0]
        step = e if not chunk_size else int(chunk_size)
        for s in range(0, e, max(step, 1)):
            vec = edge_vec[s:s + step].to(dtype)
            i, k = edge_index[0, s:s + step], edge_index[1, s:s + step]
            r = vec.norm(dim=-1)
            if bool((r <= 0).any()):
                raise ValueError("zero-length environment edge (overlapping atoms)")
            env = cutoff_envelope(r, self.r_env)
            w = (self.rbf(r) @ self.radial).reshape(-1, self.n_species, self.channels)
            phi = w[torch.arange(r.shape[0], device=r.device), species[k]] * env[:, None]   # (e, c)
            sh = o3.spherical_harmonics(list(range(self.lmax + 1)), vec, normalize=True,
                                        normalization="component")
            parts = [(phi[:, :, None] * sh[:, l * l:(l + 1) ** 2][:, None, :]).reshape(r.shape[0], -1)
                     for l in range(self.lmax + 1)]
            out = out.index_add(0, i, torch.cat(parts, dim=1))
        return out / self.avg_neighbors


class PairFeatures(nn.Module):
    """Feature bank of directed pairs i -> j from ``Y(r_ij_hat)`` and the densities ``A_i, A_j``.

    Parameters
    ----------
    density_irreps
        Irreps of ``A`` (natural parity).
    lmax
        Highest order of the bond harmonics and of the products.
    needed
        Set of ``(L, p)`` the blocks require; the product supplies ``tp_channels`` of each.
    tp_channels
        Channels of every ``(L, p)`` produced by the tensor product.
    """

    def __init__(self, density_irreps: o3.Irreps, lmax: int, needed: set[tuple[int, int]],
                 tp_channels: int = 8) -> None:
        super().__init__()
        self.lmax = int(lmax)
        self.irreps_sh = o3.Irreps.spherical_harmonics(self.lmax)
        self.irreps_pair = density_irreps + density_irreps       # [A_i, A_j], not simplified
        self.density_irreps = density_irreps
        out = sorted(set(needed) | {(0, 1)})
        self.irreps_tp = o3.Irreps([(tp_channels, ir) for ir in out]).sort().irreps.simplify()
        self.tp = o3.FullyConnectedTensorProduct(self.irreps_sh, self.irreps_pair, self.irreps_tp)
        self.n_scalars = 2 * density_irreps.count("0e") + self.irreps_tp.count("0e")

    def forward(self, density: torch.Tensor, index: torch.Tensor, vec: torch.Tensor, overlaps: bool = False
                ) -> tuple[Bank, torch.Tensor]:
        """Bank ``{(L, p): (P, ch, 2L+1)}`` and invariants ``(P, n_scalars)`` of pairs ``index`` (2, P);
        with ``overlaps`` the invariants end with the overlap invariants of :func:`_overlaps`."""
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        a_i, a_j = density[index[0]], density[index[1]]
        bank_i, bank_j = split_irreps(a_i, self.density_irreps), split_irreps(a_j, self.density_irreps)
        prod = self.product(sh, density, index)
        bank = _merge(split_irreps(sh, self.irreps_sh), bank_i, bank_j, prod)
        scalars = [bank_i[(0, 1)][:, :, 0], bank_j[(0, 1)][:, :, 0], prod[(0, 1)][:, :, 0]]
        if overlaps:
            scalars.append(_overlaps(bank_i, bank_j))
        return bank, torch.cat(scalars, 1)

    def product(self, sh: torch.Tensor, density: torch.Tensor, index: torch.Tensor) -> Bank:
        """``split_irreps(self.tp(sh, cat([A_i, A_j])), irreps_tp)``, computed in the cheaper order.

        Every path of the fully connected product is ``pw * CG(Y^l1, sum_v w[v, c] A[v])``: it is
        linear in ``A``, so the channel mixing ``sum_v w[v, c] A_v`` is done once per *atom* of the
        batch (not per pair), the two halves ``A_i``, ``A_j`` of a path are added before the
        Clebsch-Gordan contraction, and only that small contraction runs per pair. The numbers are
        those of the e3nn module (tested to rounding), several times faster.
        """
        n_density = len(self.density_irreps)
        atoms, local = torch.unique(index.reshape(-1), return_inverse=True)
        local = local.reshape(2, -1)
        bank = split_irreps(density[atoms], self.density_irreps)
        sh_l = [sh[:, l * l:(l + 1) ** 2] for l in range(self.lmax + 1)]
        groups: dict[tuple[int, int, int], list[torch.Tensor | None]] = {}
        flat = 0
        for ins in self.tp.instructions:
            size = ins.path_shape[0] * ins.path_shape[1] * ins.path_shape[2]
            w = self.tp.weight[flat:flat + size].reshape(ins.path_shape)[0] * ins.path_weight  # (v, c)
            flat += size
            side, i2 = divmod(ins.i_in2, n_density)
            groups.setdefault((ins.i_in1, i2, ins.i_out), [None, None])[side] = w
        out: dict[int, torch.Tensor] = {}
        for (i1, i2, io), weights in groups.items():
            l1, ir2, ir3 = self.irreps_sh[i1].ir.l, self.density_irreps[i2].ir, self.irreps_tp[io].ir
            a = bank[(ir2.l, ir2.p)]                                            # (U, v, 2 l2 + 1)
            mixed = None
            for side, w in enumerate(weights):
                if w is not None:
                    m = torch.einsum("vc,uvj->ucj", w, a).contiguous().index_select(0, local[side])
                    mixed = m if mixed is None else mixed + m                   # (Z, c, 2 l2 + 1)
            cg = o3.wigner_3j(l1, ir2.l, ir3.l, dtype=a.dtype, device=a.device)
            r = torch.bmm(mixed, torch.einsum("zi,ijk->zjk", sh_l[l1], cg))    # (Z, c, 2 l3 + 1)
            out[io] = r if io not in out else out[io] + r
        z = index.shape[1]
        return {(mul_ir.ir.l, mul_ir.ir.p): out[io] if io in out else  # an irrep no path reaches: zeros
                sh.new_zeros(z, mul_ir.mul, mul_ir.ir.dim) for io, mul_ir in enumerate(self.irreps_tp)}


class OnsiteFeatures(nn.Module):
    """Feature bank of single atoms: a constant scalar, ``A_i`` and ``A_i (x) A_i``."""

    def __init__(self, density_irreps: o3.Irreps, needed: set[tuple[int, int]], tp_channels: int = 8) -> None:
        super().__init__()
        self.density_irreps = density_irreps
        out = sorted(set(needed) | {(0, 1)})
        self.irreps_tp = o3.Irreps([(tp_channels, ir) for ir in out]).sort().irreps.simplify()
        self.tp = o3.FullyConnectedTensorProduct(density_irreps, density_irreps, self.irreps_tp)
        self.n_scalars = density_irreps.count("0e") + self.irreps_tp.count("0e")

    def forward(self, density: torch.Tensor) -> tuple[Bank, torch.Tensor]:
        """Bank ``{(L, p): (N, ch, 2L+1)}`` and invariants ``(N, n_scalars)`` of atoms with ``density``."""
        bank_a = split_irreps(density, self.density_irreps)
        prod = split_irreps(self.tp(density, density), self.irreps_tp)
        const = {(0, 1): torch.ones(density.shape[0], 1, 1, dtype=density.dtype, device=density.device)}
        bank = _merge(const, bank_a, prod)
        scalars = torch.cat([bank_a[(0, 1)][:, :, 0], prod[(0, 1)][:, :, 0]], dim=1)
        return bank, scalars
