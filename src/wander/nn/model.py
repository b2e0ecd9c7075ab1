"""Deep Potential force field: se_e2_a descriptor + per-type fitting nets, forces and virial by autograd.

Energy ``E = sum_i E_i(D_i)``; forces ``F = -dE/dx``; virial ``W = -dE/d(eps)`` for a symmetric
homogeneous strain ``eps`` applied to positions and cell (``x -> x (1 + eps)``, ``cell -> cell (1 + eps)``,
rows); stress ``sigma = -W / V`` (ASE sign, eV/Angstrom^3), ``V = |det(cell)|``. Periodicity is per
axis and comes with the graph (2D systems: periodic in-plane, open along z).

The descriptor is reusable by other heads: ``model.descriptor`` is the :class:`DescrptSeA` module and
:meth:`ForceField.compute_descriptor` returns the per-atom descriptor together with the edge vectors
of a graph.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from wander.data.graph import AtomGraph
from wander.nn.descriptor import DescrptSeA, neighbor_counts
from wander.nn.env_mat import EnvStatAccumulator, environment_rows
from wander.nn.fitting import EnergyFitting, energy_bias_from_data
from wander.nn.interlayer import KolmogorovCrespi

__all__ = ["ForceField", "PRECISIONS"]

#: DeePMD ``precision`` names.
PRECISIONS: dict[str, torch.dtype] = {"float64": torch.float64, "float32": torch.float32}


class ForceField(nn.Module):
    """Energy / force / virial model.

    Parameters
    ----------
    type_map
        Element symbol of every type index.
    descriptor
        The se_e2_a descriptor (``ntypes == len(type_map)``).
    fitting
        Per-type energy fitting nets on ``descriptor.dim_out`` inputs.
    interlayer
        Optional registry-dependent interlayer term (:mod:`wander.nn.interlayer`) added to the atomic
        energies; it works on the same neighbour list, whose cutoff (:attr:`rcut`) is the larger of
        ``descriptor.rcut`` and the term's ``r_off``.
    hide_other_layer
        With an interlayer term: scale the descriptor's environment rows by ``1 - w_ij``, the term's
        smooth interlayer indicator, so that the network sees only the atom's own sheet and all
        interlayer energy is the term's.
    """

    def __init__(self, type_map: Sequence[str], descriptor: DescrptSeA, fitting: EnergyFitting,
                 interlayer: KolmogorovCrespi | None = None, hide_other_layer: bool = False) -> None:
        super().__init__()
        if len(set(type_map)) != len(type_map):
            raise ValueError(f"type_map has duplicates: {list(type_map)}")
        if descriptor.ntypes != len(type_map) or fitting.ntypes != len(type_map):
            raise ValueError("descriptor, fitting and type_map disagree on the number of types")
        self.type_map = list(type_map)
        self.descriptor = descriptor
        self.fitting = fitting
        if hide_other_layer and interlayer is None:
            raise ValueError("hide_other_layer needs an interlayer term (its normals tell the layers apart)")
        self.interlayer = interlayer
        self.hide_other_layer = bool(hide_other_layer)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, model: Mapping[str, Any]) -> "ForceField":
        """Build from a validated ``model`` config section (DeePMD names, see docs/model.md)."""
        d = dict(model["descriptor"])
        f = dict(model["fitting_net"])
        if d.get("type", "se_e2_a") != "se_e2_a":
            raise ValueError(f"unsupported descriptor type {d.get('type')!r}")
        dtype = PRECISIONS[d.get("precision", "float64")]
        seed = d.get("seed")
        descriptor = DescrptSeA(
            ntypes=len(model["type_map"]), rcut=d["rcut"], rcut_smth=d["rcut_smth"], sel=d["sel"],
            neuron=d["neuron"], axis_neuron=d["axis_neuron"], resnet_dt=d.get("resnet_dt", False),
            type_one_side=d.get("type_one_side", False),
            activation_function=d.get("activation_function", "tanh"), seed=seed, dtype=dtype,
        )
        fitting = EnergyFitting(
            ntypes=len(model["type_map"]), dim_descrpt=descriptor.dim_out, neuron=f["neuron"],
            resnet_dt=f.get("resnet_dt", True), activation_function=f.get("activation_function", "tanh"),
            seed=f.get("seed"), dtype=dtype,
        )
        interlayer, hide = None, False
        il = model.get("interlayer")
        if il is not None:  # keys left out keep KolmogorovCrespi's defaults
            geometry = {k: il[k] for k in ("r_on", "normal_on", "normal_off", "h_on", "h_off", "params") if k in il}
            interlayer = KolmogorovCrespi(r_off=il.get("r_off") or descriptor.rcut, dtype=dtype, **geometry)
            hide = bool(il.get("hide_from_network", False))
        return cls(model["type_map"], descriptor, fitting, interlayer, hide_other_layer=hide)

    @property
    def rcut(self) -> float:
        """Cutoff of the neighbour list the model needs (Angstrom)."""
        if self.interlayer is None:
            return self.descriptor.rcut
        return max(self.descriptor.rcut, self.interlayer.r_off)

    @property
    def dtype(self) -> torch.dtype:
        return self.descriptor.davg.dtype

    # ------------------------------------------------------------------ forward
    def descriptor_weights(self, edge_vec: torch.Tensor, edge_index: torch.Tensor, n_atoms: int,
                           proj: torch.Tensor | None = None) -> torch.Tensor | None:
        """Per-edge factors on the descriptor rows (None unless ``hide_other_layer``); ``proj`` are
        the interlayer term's normal projectors when already computed."""
        if not self.hide_other_layer:
            return None
        term = self.interlayer
        vec = edge_vec.to(term.C0.dtype)
        if proj is None:
            proj = term.normal_projectors(vec, edge_index, n_atoms)
        return 1.0 - term.pair_weight(vec, proj[edge_index[0]], proj[edge_index[1]])

    def _descriptor_inputs(self, edge_vec: torch.Tensor, edge_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``edge_vec`` and ``edge_index`` restricted to :meth:`descriptor_edges`."""
        keep = self.descriptor_edges(edge_vec)
        return (edge_vec, edge_index) if keep is None else (edge_vec[keep], edge_index[:, keep])

    def descriptor_edges(self, edge_vec: torch.Tensor) -> torch.Tensor | None:
        """Mask of the edges inside ``descriptor.rcut``, or None when the neighbour list reaches no
        farther. An interlayer term with a longer range (``r_off`` > ``rcut``) makes the list longer;
        the pairs beyond ``rcut`` add exactly zero to the descriptor, so they are dropped before its
        embedding nets, the costly part."""
        if self.rcut <= self.descriptor.rcut:
            return None
        return (edge_vec.detach() ** 2).sum(-1) < self.descriptor.rcut ** 2

    def compute_descriptor(self, graph: AtomGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-atom descriptor (N, dim_out) and edge vectors (E, 3) of ``graph`` (differentiable)."""
        edge_vec = graph.edge_vectors().to(self.dtype)
        vec, index = self._descriptor_inputs(edge_vec, graph.edge_index)
        w = self.descriptor_weights(vec, index, graph.positions.shape[0])
        return self.descriptor(vec, index, graph.species, w), edge_vec

    def forward(
        self,
        graph: AtomGraph,
        compute_forces: bool = True,
        compute_virial: bool = True,
        create_graph: bool | None = None,
    ) -> dict[str, torch.Tensor]:
        """Evaluate the model.

        Returns a dict with ``energy`` (B,) eV, ``atom_energy`` (N,) eV, and on request ``forces``
        (N, 3) eV/Angstrom, ``virial`` (B, 3, 3) eV and ``stress`` (B, 3, 3) eV/Angstrom^3 (NaN for a
        frame whose cell has zero volume). ``create_graph`` (default: ``self.training``) keeps the
        graph of the derivatives so that a loss on forces / virial can be back-propagated.
        """
        if create_graph is None:
            create_graph = self.training
        dtype = self.dtype
        pos = graph.positions.to(dtype)
        cell = graph.cell.to(dtype)
        need_grad = compute_forces or compute_virial
        strain = None
        with torch.enable_grad() if need_grad else torch.no_grad():
            if need_grad and not pos.requires_grad:
                pos = pos.detach().requires_grad_(True)
            if compute_virial:
                strain = torch.zeros(graph.num_frames, 3, 3, dtype=dtype, device=pos.device, requires_grad=True)
                sym = 0.5 * (strain + strain.transpose(1, 2))
                pos_s = pos + torch.einsum("ni,nij->nj", pos, sym[graph.batch])
                cell_s = cell + torch.bmm(cell, sym)
            else:
                pos_s, cell_s = pos, cell
            edge_vec = graph.edge_vectors(pos_s, cell_s)
            proj = None  # normals once, for both the term and the descriptor weights
            if self.interlayer is not None:
                proj = self.interlayer.normal_projectors(edge_vec.to(self.interlayer.C0.dtype), graph.edge_index,
                                                         pos.shape[0])
            vec, index = self._descriptor_inputs(edge_vec, graph.edge_index)
            w = self.descriptor_weights(vec, index, pos.shape[0], proj)
            desc = self.descriptor(vec, index, graph.species, w)
            atom_energy = self.fitting(desc, graph.species)
            if self.interlayer is not None:
                atom_energy = atom_energy + self.interlayer(edge_vec, graph.edge_index, pos.shape[0], proj)
            energy = torch.zeros(graph.num_frames, dtype=dtype, device=pos.device).index_add(
                0, graph.batch, atom_energy
            )
            out: dict[str, torch.Tensor] = {"energy": energy, "atom_energy": atom_energy}
            if need_grad:
                inputs = [pos] + ([strain] if strain is not None else [])
                grads = torch.autograd.grad(
                    energy.sum(), inputs, create_graph=create_graph, allow_unused=True
                )
                grads = [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]
                if compute_forces:
                    out["forces"] = -grads[0]
                if strain is not None:
                    virial = -grads[-1]
                    volume = torch.linalg.det(cell).abs()
                    safe = torch.where(volume > 0, volume, torch.ones_like(volume))
                    stress = torch.where(
                        (volume > 0)[:, None, None], -virial / safe[:, None, None],
                        torch.full_like(virial, float("nan")),
                    )
                    out["virial"] = virial
                    out["stress"] = stress
        if not create_graph:
            out = {k: v.detach() for k, v in out.items()}
        return out

    # ------------------------------------------------------------------ statistics
    @torch.no_grad()
    def compute_statistics(self, graphs: Sequence[AtomGraph]) -> dict[str, Any]:
        """Set ``davg``/``dstd`` and the per-type energy bias from labelled frames.

        Returns ``{"max_neighbors": list per type, "sel_ok": bool}``: the largest number of
        neighbours of each type inside ``rcut`` seen on any atom, and whether ``sel`` covers it.
        """
        if not graphs:
            raise ValueError("no frames for the statistics")
        ntypes = len(self.type_map)
        acc = EnvStatAccumulator(ntypes, self.descriptor.sel)
        max_nei = torch.zeros(ntypes, dtype=torch.int64)
        counts, energies = [], []
        for g in graphs:
            vec = g.edge_vectors().to(self.dtype)
            inside = (vec * vec).sum(-1) < self.descriptor.rcut ** 2
            rows, _ = environment_rows(vec[inside], self.descriptor.rcut_smth, self.descriptor.rcut)
            w = self.descriptor_weights(vec, g.edge_index, g.positions.shape[0])
            if w is not None:
                rows = rows * w[inside][:, None].to(rows.dtype)
            acc.add(rows, g.edge_index[:, inside], g.species)
            nc = neighbor_counts(g.edge_index, g.species, ntypes, edge_mask=inside)
            if nc.numel():
                max_nei = torch.maximum(max_nei, nc.max(0).values)
            if "energy" in g.labels:
                # the fitting nets learn what the interlayer term leaves: subtract it from the bias data
                e_fixed = torch.zeros(g.num_frames, dtype=self.dtype)
                if self.interlayer is not None:
                    e_fixed = e_fixed.index_add(0, g.batch, self.interlayer(vec, g.edge_index, g.positions.shape[0]))
                for f in range(g.num_frames):
                    if bool(g.label_mask["energy"][f]):
                        counts.append(torch.bincount(g.species[g.batch == f], minlength=ntypes).numpy())
                        energies.append(float(g.labels["energy"][f]) - float(e_fixed[f]))
        davg, dstd = acc.compute()
        self.descriptor.set_stats(davg.to(self.dtype), dstd.to(self.dtype))
        if energies:
            bias = energy_bias_from_data(np.stack(counts), np.asarray(energies))
            self.fitting.bias_atom_e.copy_(torch.as_tensor(bias, dtype=self.dtype))
        max_list = [int(x) for x in max_nei]
        return {
            "max_neighbors": max_list,
            "sel_ok": all(m <= s for m, s in zip(max_list, self.descriptor.sel)),
        }
