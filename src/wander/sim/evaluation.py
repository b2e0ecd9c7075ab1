"""Force-field evaluation on large structures: compact neighbour lists and atom-chunked forward passes.

The energy of a Deep Potential is a sum of atomic energies, ``E = sum_i E_i``, and ``E_i`` depends only
on the neighbour vectors ``D_ij = x_j - x_i + S_ij @ cell`` of the centre atom ``i``. The centre atoms
are therefore processed in chunks of ``chunk_atoms``: for each chunk the edges of its centres are
turned into vectors, ``E_chunk`` is differentiated with respect to them (``g_e = dE/dD_e``), and the
gradients are scattered,

    F_i += g_e,   F_j -= g_e                                  (eV/Angstrom)
    W   = -sym( sum_e D_e (x) g_e )                           (eV, virial)

which is the chain rule of ``F = -dE/dx`` and of the symmetric-strain virial of
:class:`wander.nn.model.ForceField`. Peak autograd memory is set by the chunk, not by the system;
the only whole-system arrays are the positions, the forces and the compact edge list
(:class:`CompactNeighborList`, 7 bytes per directed pair).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

from wander.data.graph import species_indices
from wander.data.neighbors import neighbor_list

__all__ = ["CompactNeighborList", "ForceFieldResult", "build_neighbor_list", "compute_descriptors", "evaluate_forcefield"]


@dataclass(frozen=True)
class CompactNeighborList:
    """Directed pairs in CSR form, sorted by centre atom.

    Attributes
    ----------
    row_ptr : (N + 1,) int64
        Pairs of centre ``i`` are ``row_ptr[i]:row_ptr[i + 1]``.
    j : (E,) int32
        Neighbour atom of every pair.
    shift : (E, 3) int8 or int16
        Integer lattice shift ``S`` (neighbour vector ``x_j - x_i + S @ cell``).
    cutoff : float
        Search radius in Angstrom (model cutoff + skin).
    """

    row_ptr: np.ndarray
    j: np.ndarray
    shift: np.ndarray
    cutoff: float

    @property
    def n_atoms(self) -> int:
        return int(self.row_ptr.shape[0] - 1)

    @property
    def n_pairs(self) -> int:
        return int(self.j.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.row_ptr.nbytes + self.j.nbytes + self.shift.nbytes)

    def centres(self, start: int, stop: int) -> np.ndarray:
        """Centre index of the pairs of atoms ``start:stop``, shape (E_chunk,) int64."""
        counts = np.diff(self.row_ptr[start:stop + 1])
        return np.repeat(np.arange(start, stop, dtype=np.int64), counts)


def build_neighbor_list(atoms: Atoms, cutoff: float) -> CompactNeighborList:
    """All directed pairs closer than ``cutoff`` (Angstrom) of ``atoms`` as a :class:`CompactNeighborList`."""
    nl = neighbor_list(atoms, cutoff)
    n = len(atoms)
    if n >= np.iinfo(np.int32).max:
        raise ValueError(f"{n} atoms exceed the int32 index range of the compact neighbour list")
    counts = np.bincount(nl.i, minlength=n)
    row_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=row_ptr[1:])
    smax = int(np.abs(nl.shift).max()) if len(nl) else 0
    sdtype = np.int8 if smax <= np.iinfo(np.int8).max else np.int16
    return CompactNeighborList(row_ptr, nl.j.astype(np.int32), nl.shift.astype(sdtype), float(cutoff))


@dataclass(frozen=True)
class ForceFieldResult:
    """Energies (eV), forces (eV/Angstrom) and virial (eV) of one structure, as numpy float64.

    Attributes
    ----------
    energy : float
    energies : (N,) per-atom energies, summing to ``energy``
    forces : (N, 3)
    virial : (3, 3) or None, ``virial = -stress * volume``
    """

    energy: float
    energies: np.ndarray
    forces: np.ndarray
    virial: np.ndarray | None


def evaluate_forcefield(
    model: torch.nn.Module,
    atoms: Atoms,
    nlist: CompactNeighborList,
    compute_virial: bool = True,
    chunk_atoms: int = 8192,
    device: torch.device | str = "cpu",
) -> ForceFieldResult:
    """Energy, per-atom energies, forces and virial of ``atoms`` with a ForceField, chunk by chunk.

    Parameters
    ----------
    model
        A :class:`wander.nn.model.ForceField` (uses ``descriptor``, ``fitting``, ``type_map``, ``dtype``).
    atoms
        Structure; ``nlist`` must have been built for the same atoms (positions may have moved by less
        than half the skin since).
    nlist
        Pairs within at least ``model.rcut``; pairs beyond ``rcut`` contribute exactly nothing.
    compute_virial
        Also accumulate the virial.
    chunk_atoms
        Centre atoms per chunk (>= 1). Results do not depend on it beyond round-off.
    device
        Torch device of the model.
    """
    if chunk_atoms < 1:
        raise ValueError(f"chunk_atoms must be >= 1, got {chunk_atoms}")
    n = len(atoms)
    if nlist.n_atoms != n:
        raise ValueError(f"neighbour list is for {nlist.n_atoms} atoms, structure has {n}")
    if nlist.cutoff < model.rcut:
        raise ValueError(f"neighbour list cutoff {nlist.cutoff} is below the model cutoff {model.rcut}")
    # Edge vectors are formed and results accumulated in float64; the network runs in the model's
    # precision, so a float32 model loses no accuracy to large coordinates or to summing many atoms.
    acc = torch.float64
    species = torch.as_tensor(species_indices(atoms.get_chemical_symbols(), model.type_map), device=device)
    pos = torch.as_tensor(atoms.positions, dtype=acc, device=device)
    cell = torch.as_tensor(np.array(atoms.cell), dtype=acc, device=device)
    energies = torch.zeros(n, dtype=acc, device=device)
    forces = torch.zeros(n, 3, dtype=acc, device=device)
    strain_grad = torch.zeros(3, 3, dtype=acc, device=device)
    interlayer = getattr(model, "interlayer", None)
    if interlayer is not None:  # normals of every atom first: pair energies need P_i and P_j
        near = _NormalProjectors(interlayer, nlist, pos, cell, device)
    for start in range(0, n, chunk_atoms):
        stop = min(start + chunk_atoms, n)
        vec, i, j, edge_index, sp = _chunk_inputs(model, nlist, species, pos, cell, start, stop, device)
        vec_m = vec.to(model.dtype).requires_grad_(True)                    # (E_c, 3)
        m = stop - start
        with torch.enable_grad():
            keep = model.descriptor_edges(vec_m) if hasattr(model, "descriptor_edges") else None
            vd, ed, id_, jd = (vec_m, edge_index, i, j) if keep is None else (vec_m[keep], edge_index[:, keep],
                                                                              i[keep], j[keep])
            w = None
            if getattr(model, "hide_other_layer", False):
                w = 1.0 - interlayer.pair_weight(vd.to(near.proj.dtype), near.proj[id_], near.proj[jd])
            desc = model.descriptor(vd, ed, sp, w)[:m]
            e_atoms = model.fitting(desc, species[start:stop])
            if interlayer is None:
                (g,) = torch.autograd.grad(e_atoms.sum(), vec_m, allow_unused=True)
            else:
                c = interlayer.candidates(vec_m, near.proj, i, j)   # the term's edges: a few % of the list
                e_edges = interlayer.edge_energies(vec_m[c].to(near.proj.dtype), near.proj[i[c]], near.proj[j[c]])
                e_atoms = e_atoms + torch.zeros_like(e_atoms).index_add(0, i[c] - start, e_edges.to(e_atoms.dtype))
                g, g_proj = torch.autograd.grad(e_atoms.sum(), [vec_m, near.proj], retain_graph=True,
                                                allow_unused=True)
                near.accumulate(g_proj)
        g = torch.zeros_like(vec) if g is None else g.to(acc)
        energies[start:stop] = e_atoms.detach().to(acc)
        forces.index_add_(0, i, g)
        forces.index_add_(0, j, -g)
        if compute_virial:
            strain_grad += vec.detach().T @ g
    if interlayer is not None:  # chain rule through the normals: dE/dP -> dE/d(in-plane bonds)
        g, (i, j), vec = near.backward()
        forces.index_add_(0, i, g)
        forces.index_add_(0, j, -g)
        if compute_virial:
            strain_grad += vec.T @ g
    virial = None
    if compute_virial:
        virial = (-0.5 * (strain_grad + strain_grad.T)).cpu().numpy().astype(np.float64)
    e = energies.cpu().numpy().astype(np.float64)
    return ForceFieldResult(float(e.sum()), e, forces.cpu().numpy().astype(np.float64), virial)


class _NormalProjectors:
    """Normal projectors of all atoms for the interlayer term, with their gradient accumulated over chunks.

    Only the in-plane bonds (``r < normal_off``, about 3 per atom) enter, so this whole-system graph
    is small and linear in atoms.
    """

    def __init__(self, term: torch.nn.Module, nlist: CompactNeighborList, pos: torch.Tensor,
                 cell: torch.Tensor, device: torch.device | str) -> None:
        n = nlist.n_atoms
        i = torch.as_tensor(nlist.centres(0, n), device=device)
        j = torch.as_tensor(nlist.j.astype(np.int64), device=device)
        vec = pos[j] - pos[i] + torch.as_tensor(nlist.shift, dtype=pos.dtype, device=device) @ cell
        keep = (vec * vec).sum(-1) < term.normal_off ** 2
        self.i, self.j, self.vec = i[keep], j[keep], vec[keep]
        dtype = term.C0.dtype
        with torch.enable_grad():
            self.vec_t = self.vec.to(dtype, copy=True).requires_grad_(True)
            self.proj = term.normal_projectors(self.vec_t, torch.stack([self.i, self.j]), n)
        self.grad = torch.zeros_like(self.proj)

    def accumulate(self, g_proj: torch.Tensor | None) -> None:
        if g_proj is not None:
            self.grad += g_proj

    def backward(self) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``dE/d(bond vector)`` (E_n, 3) float64, the bonds' (i, j) and their vectors."""
        if not self.proj.requires_grad:
            return torch.zeros_like(self.vec), (self.i, self.j), self.vec
        (g,) = torch.autograd.grad(self.proj, self.vec_t, grad_outputs=self.grad, allow_unused=True)
        g = torch.zeros_like(self.vec) if g is None else g.to(self.vec.dtype)
        return g, (self.i, self.j), self.vec


def _chunk_inputs(model: torch.nn.Module, nlist: CompactNeighborList, species: torch.Tensor, pos: torch.Tensor,
                  cell: torch.Tensor, start: int, stop: int, device: torch.device | str):
    """Edge vectors (E_c, 3), centre indices (E_c,), neighbour indices (E_c,), local edge index and species."""
    lo, hi = int(nlist.row_ptr[start]), int(nlist.row_ptr[stop])
    i = torch.as_tensor(nlist.centres(start, stop), device=device)
    j = torch.as_tensor(nlist.j[lo:hi].astype(np.int64), device=device)
    shift = torch.as_tensor(nlist.shift[lo:hi], dtype=pos.dtype, device=device)
    vec = pos[j] - pos[i] + shift @ cell
    m = stop - start
    # neighbours only enter through their type: point them at ``ntypes`` stand-in rows
    sp = torch.cat([species[start:stop], torch.arange(len(model.type_map), device=device)])
    edge_index = torch.stack([i - start, m + species[j]])
    return vec, i, j, edge_index, sp


@torch.no_grad()
def compute_descriptors(
    model: torch.nn.Module, atoms: Atoms, nlist: CompactNeighborList, chunk_atoms: int = 8192,
    device: torch.device | str = "cpu", progress: bool = False,
) -> torch.Tensor:
    """Per-atom se_e2_a descriptors (N, dim_out) of ``atoms``, computed chunk by chunk (no autograd;
    ``progress``: a bar over the chunks)."""
    from tqdm.auto import tqdm

    if chunk_atoms < 1:
        raise ValueError(f"chunk_atoms must be >= 1, got {chunk_atoms}")
    n = len(atoms)
    species = torch.as_tensor(species_indices(atoms.get_chemical_symbols(), model.type_map), device=device)
    pos = torch.as_tensor(atoms.positions, dtype=torch.float64, device=device)
    cell = torch.as_tensor(np.array(atoms.cell), dtype=torch.float64, device=device)
    out = torch.zeros(n, model.descriptor.dim_out, dtype=model.dtype, device=device)
    hide = getattr(model, "hide_other_layer", False)
    if hide:
        proj = _NormalProjectors(model.interlayer, nlist, pos, cell, device).proj.detach()
    starts = range(0, n, chunk_atoms)
    for start in tqdm(starts, desc="descriptors", unit="chunk", disable=not progress or len(starts) < 2):
        stop = min(start + chunk_atoms, n)
        vec, i, j, edge_index, sp = _chunk_inputs(model, nlist, species, pos, cell, start, stop, device)
        keep = model.descriptor_edges(vec) if hasattr(model, "descriptor_edges") else None
        if keep is not None:  # the list reaches farther than the descriptor (a longer-range interlayer term)
            vec, i, j, edge_index = vec[keep], i[keep], j[keep], edge_index[:, keep]
        w = 1.0 - model.interlayer.pair_weight(vec.to(proj.dtype), proj[i], proj[j]) if hide else None
        out[start:stop] = model.descriptor(vec.to(model.dtype), edge_index, sp, w)[: stop - start]
    return out
