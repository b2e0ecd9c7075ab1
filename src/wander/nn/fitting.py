"""Per-type energy fitting nets: descriptor -> atomic energy (eV), plus a per-type energy bias."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from wander.nn.networks import FittingNet

__all__ = ["EnergyFitting", "energy_bias_from_data"]


class EnergyFitting(nn.Module):
    """``E_i = F_{t_i}(D_i) + bias_atom_e[t_i]`` with one fitting net per atom type.

    Parameters
    ----------
    ntypes
        Number of atom types.
    dim_descrpt
        Descriptor width.
    neuron, resnet_dt, activation_function
        Fitting-net options as in DeePMD-kit (``fitting_net`` section).
    seed
        Seed of the parameter initialisation.

    Buffer ``bias_atom_e`` (ntypes,) in eV is set from data by :func:`energy_bias_from_data`.
    """

    def __init__(
        self,
        ntypes: int,
        dim_descrpt: int,
        neuron: Sequence[int] = (240, 240, 240),
        resnet_dt: bool = True,
        activation_function: str = "tanh",
        seed: int | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        self.ntypes = int(ntypes)
        self.nets = nn.ModuleList(
            FittingNet(dim_descrpt, neuron, 1, activation_function, resnet_dt, generator=gen, dtype=dtype)
            for _ in range(self.ntypes)
        )
        self.register_buffer("bias_atom_e", torch.zeros(self.ntypes, dtype=dtype))

    def forward(self, descriptor: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Atomic energies (N,) in eV from descriptors (N, D) and type indices (N,)."""
        out = torch.zeros(species.shape[0], dtype=self.bias_atom_e.dtype, device=descriptor.device)
        for t, net in enumerate(self.nets):
            idx = torch.nonzero(species == t).squeeze(-1)
            if idx.numel():
                out = out.index_put((idx,), net(descriptor[idx]).squeeze(-1))
        return out + self.bias_atom_e[species]


def energy_bias_from_data(type_counts: np.ndarray, energies: np.ndarray) -> np.ndarray:
    """Least-squares per-type energies ``b`` with ``E_frame ~ sum_t n_{frame,t} b_t`` (eV).

    ``type_counts`` (n_frames, ntypes), ``energies`` (n_frames,). Types absent from the data get 0.
    """
    a = np.asarray(type_counts, dtype=float)
    e = np.asarray(energies, dtype=float)
    if a.ndim != 2 or e.shape != (a.shape[0],) or a.shape[0] == 0:
        raise ValueError("need type_counts (n_frames, ntypes) and energies (n_frames,) with n_frames > 0")
    present = a.sum(0) > 0
    bias = np.zeros(a.shape[1])
    bias[present] = np.linalg.lstsq(a[:, present], e, rcond=None)[0]
    return bias
