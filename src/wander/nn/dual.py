"""Force field + Hamiltonian heads sharing one se_e2_a descriptor.

:class:`DualModel` holds a :class:`~wander.nn.model.ForceField` and
:class:`~wander.nn.hamiltonian.HamiltonianHeads` whose invariant inputs are the force field's
per-atom descriptor ``ForceField.compute_descriptor(graph)`` and whose neighbour densities use the
force field's edge list (so ``heads.r_env <= forcefield.rcut``).

``descriptor_mode`` (of the heads' config):

- ``"frozen"``: the descriptor is detached before it enters the heads; the Hamiltonian loss never
  reaches the force field (trained first, kept fixed);
- ``"joint"``: the Hamiltonian loss is back-propagated into the descriptor's embedding nets too.

Built from the ``model`` section of a training config (DeePMD names plus ``model.hamiltonian``,
see docs/model.md) with :meth:`DualModel.from_config`.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from wander.data.graph import AtomGraph
from wander.nn.hamiltonian import HamiltonianHeads, HeadsConfig
from wander.nn.hamiltonian.batch import pair_vectors
from wander.nn.model import ForceField

__all__ = ["DualModel", "heads_config"]

#: keys of ``model.hamiltonian`` that are not HeadsConfig fields
_NOT_HEADS = ("n_electrons", "energy_zero")


def heads_config(model: Mapping[str, Any], descriptor_dim: int) -> HeadsConfig:
    """:class:`HeadsConfig` of a ``model`` config section (plain dict) with a ``hamiltonian`` entry."""
    h = dict(model.get("hamiltonian") or {})
    if not h:
        raise ValueError("the model section has no 'hamiltonian' entry")
    for key in _NOT_HEADS:
        h.pop(key, None)
    h["orbitals"] = {el: (v if isinstance(v, str) else (v[0] if len(v) == 1 else list(v)))
                     for el, v in h["orbitals"].items()}
    return HeadsConfig(type_map=tuple(model["type_map"]), descriptor_dim=int(descriptor_dim), **h)


class DualModel(nn.Module):
    """Energy / forces / virial and Hamiltonian blocks from one shared descriptor.

    Parameters
    ----------
    forcefield : ForceField
    heads : HamiltonianHeads, with ``type_map`` equal to the force field's and ``descriptor_dim``
        equal to its descriptor width
    n_electrons : ``{element: electrons per atom}`` in the Wannier manifold (optional; stored in
        checkpoints for band filling)
    energy_zero : ``"fermi"`` (predicted energies are relative to the Fermi level, as trained),
        ``"onsite_mean"`` (relative to the mean onsite energy of the training frames) or ``"absolute"``
    """

    def __init__(self, forcefield: ForceField, heads: HamiltonianHeads,
                 n_electrons: Mapping[str, float] | None = None, energy_zero: str = "absolute") -> None:
        super().__init__()
        if tuple(heads.type_map) != tuple(forcefield.type_map):
            raise ValueError(f"heads type_map {list(heads.type_map)} differs from the force field's "
                             f"{list(forcefield.type_map)}")
        if heads.config.descriptor_dim != forcefield.descriptor.dim_out:
            raise ValueError(f"heads expect a descriptor of width {heads.config.descriptor_dim}, the force "
                             f"field gives {forcefield.descriptor.dim_out}")
        if heads.config.r_env > forcefield.rcut + 1e-12:
            raise ValueError(f"heads r_env {heads.config.r_env} exceeds the force-field cutoff {forcefield.rcut}; "
                             "the densities would miss neighbours")
        self.forcefield = forcefield
        self.heads = heads
        if energy_zero not in ("fermi", "absolute", "onsite_mean"):
            raise ValueError(f"energy_zero must be 'fermi', 'onsite_mean' or 'absolute', got {energy_zero!r}")
        self.n_electrons = dict(n_electrons) if n_electrons else None
        self.energy_zero = energy_zero

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, model: Mapping[str, Any]) -> "DualModel":
        """Build from a validated ``model`` config section (plain dict) with ``hamiltonian``."""
        ff = ForceField.from_config(model)
        heads = HamiltonianHeads(heads_config(model, ff.descriptor.dim_out), dtype=ff.dtype)
        h = model.get("hamiltonian") or {}
        return cls(ff, heads, h.get("n_electrons"), h.get("energy_zero", "fermi"))

    @property
    def type_map(self) -> list[str]:
        return self.forcefield.type_map

    @property
    def rcut(self) -> float:
        return self.forcefield.rcut

    @property
    def dtype(self) -> torch.dtype:
        return self.forcefield.dtype

    @property
    def descriptor_mode(self) -> str:
        return self.heads.config.descriptor_mode

    def forcefield_parameters(self) -> list[nn.Parameter]:
        return list(self.forcefield.parameters())

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimizer updates: the heads only in frozen mode, everything in joint mode."""
        if self.descriptor_mode == "frozen":
            return list(self.heads.parameters())
        return list(self.parameters())

    # ------------------------------------------------------------------ forward
    def hamiltonian_blocks(self, graph: AtomGraph, pair_index: torch.Tensor, pair_R: torch.Tensor,
                           layer: torch.Tensor | None = None) -> torch.Tensor:
        """Blocks ``(P, M, M)`` eV of the pairs ``(i, j, R)`` of a (batched) graph.

        ``pair_index`` (2, P) global atom indices; ``pair_R`` (P, 3) integer shifts of atom j;
        ``layer`` (N,) layer tags (required by layered heads; atoms outside every pair may hold any value).
        """
        desc, edge_vec = self.forcefield.compute_descriptor(graph)
        vec = pair_vectors(graph.positions.to(self.dtype), graph.cell.to(self.dtype), graph.batch,
                           pair_index, pair_R)
        return self.heads(desc, graph.species, edge_vec, graph.edge_index, pair_index, vec, layer)

    def forward(self, graph: AtomGraph, pair_index: torch.Tensor | None = None, pair_R: torch.Tensor | None = None,
                layer: torch.Tensor | None = None, compute_forces: bool = True, compute_virial: bool = True,
                create_graph: bool | None = None) -> dict[str, torch.Tensor]:
        """Force-field outputs (see :meth:`ForceField.forward`) plus ``blocks`` when pairs are given."""
        out = self.forcefield(graph, compute_forces=compute_forces, compute_virial=compute_virial,
                              create_graph=create_graph)
        if pair_index is not None:
            if pair_R is None:
                raise ValueError("pair_R is required with pair_index")
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.training):
                out["blocks"] = self.hamiltonian_blocks(graph, pair_index, pair_R, layer)
        return out

    def predict_hamiltonian(self, atoms: Any, chunk_atoms: int = 8192, chunk_pairs: int = 50_000) -> Any:
        """``wander.tb.TBHamiltonian`` of a structure (descriptors and pairs evaluated in chunks)."""
        from wander.nn.hamiltonian.assemble import predict_hamiltonian
        from wander.sim.evaluation import build_neighbor_list, compute_descriptors

        nl = build_neighbor_list(atoms, self.rcut)
        desc = compute_descriptors(self.forcefield, atoms, nl, chunk_atoms=chunk_atoms)
        with torch.no_grad():
            return predict_hamiltonian(self.heads, atoms, desc, chunk_size=chunk_pairs)
