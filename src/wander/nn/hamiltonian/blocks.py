"""Clebsch-Gordan coupling of equivariant features into orbital blocks (Wannier90 order).

For shells ``l_a`` on atom i and ``l_b`` on atom j, a block is

    H^{ab} = sum_{L=|l_a-l_b|}^{l_a+l_b} C_a  W(l_a, l_b, L) . h^L  C_b^T,
    h^L    = sum_c w_c(invariants) F^{L, p}_c,       p = (-1)^(l_a + l_b)

with ``W`` e3nn's ``wigner_3j``, ``C_l`` the basis change of :mod:`.basis`, ``F`` a feature bank of
irreps ``(L, p)`` and ``w`` coefficients from a network of invariants. Because ``W`` intertwines the
representations, ``H(QX) = D_a(Q) H(X) D_b(Q)^T`` holds exactly for every rotation and reflection.
Incomplete shells keep only the rows/columns of the orbitals present; terms that vanish on them
(e.g. the antisymmetric L = 1 part of a pz-pz block) are dropped.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from e3nn import o3
from torch import nn

from wander.nn.hamiltonian.basis import Shell, w90_from_e3nn

__all__ = ["BlockCoupling", "required_irreps"]

_ZERO = 1e-12


def coupling_kernels(shells_a: Sequence[Shell], shells_b: Sequence[Shell], n_a: int, n_b: int
                     ) -> list[tuple[int, int, torch.Tensor]]:
    """Non-vanishing coupling terms ``(L, p, K)`` between two shell lists, float64.

    ``K`` (n_a, n_b, 2L+1) maps an irrep ``(L, p)`` to the block in Wannier90 order, restricted to
    the orbitals present (zero rows / columns elsewhere).
    """
    terms = []
    for sa in shells_a:
        for sb in shells_b:
            parity = (-1) ** (sa.l + sb.l)
            ca = torch.as_tensor(w90_from_e3nn(sa.l), dtype=torch.float64)
            cb = torch.as_tensor(w90_from_e3nn(sb.l), dtype=torch.float64)
            for big_l in range(abs(sa.l - sb.l), sa.l + sb.l + 1):
                w3j = o3.wigner_3j(sa.l, sb.l, big_l, dtype=torch.float64) * math.sqrt(2 * big_l + 1)
                k = torch.einsum("ai,bj,ijm->abm", ca, cb, w3j)
                k = k[list(sa.components)][:, list(sb.components)]
                if float(k.abs().max()) < _ZERO:
                    continue
                full = torch.zeros(n_a, n_b, 2 * big_l + 1, dtype=torch.float64)
                full[torch.tensor(sa.positions)[:, None], torch.tensor(sb.positions)[None, :]] = k
                terms.append((big_l, parity, full))
    return terms


def required_irreps(shells_a: Sequence[Shell], shells_b: Sequence[Shell]) -> set[tuple[int, int]]:
    """Irreps ``(L, p)`` that contribute to blocks between the two shell lists (orbitals present)."""
    n_a = 1 + max(p for sh in shells_a for p in sh.positions)
    n_b = 1 + max(p for sh in shells_b for p in sh.positions)
    return {(big_l, parity) for big_l, parity, _ in coupling_kernels(shells_a, shells_b, n_a, n_b)}


class BlockCoupling(nn.Module):
    """Blocks ``(P, n_a, n_b)`` of one ordered element pair from coefficients and a feature bank.

    Parameters
    ----------
    shells_a, shells_b
        Shells of the row (atom i) and column (atom j) element.
    n_a, n_b
        Orbital counts of the two elements.
    channels
        Feature channels available for every ``(L, p)`` of the bank.
    """

    def __init__(self, shells_a: Sequence[Shell], shells_b: Sequence[Shell], n_a: int, n_b: int,
                 channels: dict[tuple[int, int], int]) -> None:
        super().__init__()
        self.n_a, self.n_b = int(n_a), int(n_b)
        terms: list[tuple[int, int, int]] = []
        kernels = []
        for big_l, parity, full in coupling_kernels(shells_a, shells_b, self.n_a, self.n_b):
            if (big_l, parity) not in channels:
                raise ValueError(f"feature bank has no irrep {(big_l, parity)}")
            kernels.append(full)
            terms.append((big_l, parity, channels[(big_l, parity)]))
        self.terms = terms
        self.n_coefficients = sum(t[2] for t in terms)
        kernel = torch.cat(kernels, dim=2) if kernels else torch.zeros(self.n_a, self.n_b, 0)
        self.register_buffer("kernel", kernel.reshape(self.n_a * self.n_b, -1))

    def forward(self, coefficients: torch.Tensor, bank: dict[tuple[int, int], torch.Tensor]) -> torch.Tensor:
        """``coefficients`` (P, n_coefficients), ``bank[(L, p)]`` (P, ch, 2L+1) -> blocks (P, n_a, n_b)."""
        if coefficients.shape[-1] != self.n_coefficients:
            raise ValueError(f"expected {self.n_coefficients} coefficients, got {coefficients.shape[-1]}")
        h = []
        start = 0
        for big_l, parity, ch in self.terms:
            h.append(torch.einsum("pc,pcm->pm", coefficients[:, start:start + ch], bank[(big_l, parity)]))
            start += ch
        if not h:
            return coefficients.new_zeros(coefficients.shape[0], self.n_a, self.n_b)
        return (torch.cat(h, dim=1) @ self.kernel.T).reshape(-1, self.n_a, self.n_b)
