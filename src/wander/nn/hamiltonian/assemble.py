"""From predicted atom-pair blocks to the project's tight-binding Hamiltonian.

:func:`hoppings_from_blocks` expands half-stored atom-pair blocks into the half-stored orbital COO
list ``(R, i, j, t)`` of :class:`wander.tb.TBHamiltonian` (orbitals grouped by atom in atom order,
Wannier90 order inside an atom; onsite blocks contribute their upper triangle). It works in chunks of
pairs, so memory stays linear in the number of atoms. :func:`predict_hamiltonian` runs the heads on a
structure chunk by chunk and returns the TB Hamiltonian directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ase import Atoms

from wander.nn.hamiltonian.basis import OrbitalBasis
from wander.nn.hamiltonian.categories import PairList, half_stored, hamiltonian_pairs, layers_of
from wander.nn.hamiltonian.heads import HamiltonianHeads

__all__ = ["hopping_counts", "hoppings_from_blocks", "predict_blocks", "predict_hamiltonian", "species_of",
           "tb_from_blocks", "to_tb_hamiltonian"]

DEFAULT_CHUNK = 200_000


def hoppings_from_blocks(pair_i: np.ndarray, pair_j: np.ndarray, pair_R: np.ndarray, blocks: np.ndarray,
                         counts: np.ndarray, chunk_size: int = DEFAULT_CHUNK
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Half-stored orbital hoppings of half-stored atom-pair blocks.

    Parameters
    ----------
    pair_i, pair_j : (P,) atom indices; pair_R : (P, 3) int lattice shift of atom j
    blocks : (P, M, M) float eV, block ``[p, a, b] = H_{i a, j b}(R)``; entries beyond the orbital
        counts are ignored
    counts : (N,) orbitals per atom
    chunk_size : pairs expanded at once

    Returns
    -------
    R (H, 3) int64, i (H,) int64, j (H,) int64, t (H,) float64 -- orbital indices, with
    R > 0 lexicographically or R = 0 and i <= j.
    """
    pair_i, pair_j = np.asarray(pair_i, dtype=np.int64), np.asarray(pair_j, dtype=np.int64)
    pair_R = np.asarray(pair_R, dtype=np.int64).reshape(-1, 3)
    blocks = np.asarray(blocks)
    if blocks.ndim != 3 or blocks.shape[0] != pair_i.shape[0] or blocks.shape[1] != blocks.shape[2]:
        raise ValueError(f"blocks must be (P, M, M) with P={pair_i.shape[0]}, got {blocks.shape}")
    if not half_stored(pair_i, pair_j, pair_R).all():
        raise ValueError("pairs must be half-stored: R > 0 lexicographically, or R = 0 and i <= j")
    counts = np.asarray(counts, dtype=np.int64)
    if counts.size and int(counts.max()) > blocks.shape[1]:
        raise ValueError(f"blocks of size {blocks.shape[1]} cannot hold {int(counts.max())} orbitals")
    offsets = np.concatenate([[0], np.cumsum(counts)])
    m = blocks.shape[1]
    a = np.arange(m)
    out: list[tuple[np.ndarray, ...]] = []
    step = max(int(chunk_size), 1)
    for s in range(0, pair_i.shape[0], step):
        pi, pj, pR = pair_i[s:s + step], pair_j[s:s + step], pair_R[s:s + step]
        valid = (a[None, :, None] < counts[pi][:, None, None]) & (a[None, None, :] < counts[pj][:, None, None])
        onsite = (pi == pj) & ~pR.any(axis=1)
        valid &= ~(onsite[:, None, None] & (a[None, :, None] > a[None, None, :]))
        p, ra, cb = np.nonzero(valid)
        out.append((pR[p], offsets[pi[p]] + ra, offsets[pj[p]] + cb, blocks[s:s + step][p, ra, cb]))
    if not out:
        return np.zeros((0, 3), np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return (np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out]),
            np.concatenate([o[2] for o in out]), np.concatenate([o[3] for o in out]).astype(np.float64))


def to_tb_hamiltonian(atoms: Atoms, basis: OrbitalBasis, R: np.ndarray, i: np.ndarray, j: np.ndarray,
                      t: np.ndarray) -> Any:
    """``wander.tb.TBHamiltonian`` of orbital hoppings, orbitals centred on their atoms."""
    from wander.tb import TBHamiltonian

    orbital_atoms, orbital_labels, _ = basis.orbital_table(atoms.get_chemical_symbols())
    return TBHamiltonian.from_hoppings(
        np.asarray(atoms.cell, dtype=float), atoms.positions[orbital_atoms], R, i, j, t,
        orbital_atoms=orbital_atoms, orbital_labels=orbital_labels, pbc=tuple(bool(p) for p in atoms.pbc),
    )


def tb_from_blocks(atoms: Atoms, basis: OrbitalBasis, pair_i: np.ndarray, pair_j: np.ndarray,
                   pair_R: np.ndarray, blocks: np.ndarray, chunk_size: int = DEFAULT_CHUNK) -> Any:
    """``wander.tb.TBHamiltonian`` of half-stored atom-pair blocks (inverse of ``targets.blocks_from_tb``)."""
    counts = basis.orbital_counts(atoms.get_chemical_symbols())
    return to_tb_hamiltonian(atoms, basis, *hoppings_from_blocks(pair_i, pair_j, pair_R, blocks, counts, chunk_size))


def species_of(atoms: Atoms, type_map: tuple[str, ...]) -> np.ndarray:
    """Type index of every atom; ``ValueError`` for elements outside ``type_map``."""
    lookup = {s: k for k, s in enumerate(type_map)}
    symbols = atoms.get_chemical_symbols()
    missing = sorted(set(symbols) - lookup.keys())
    if missing:
        raise ValueError(f"elements {missing} are not in type_map {list(type_map)}")
    return np.fromiter((lookup[s] for s in symbols), dtype=np.int64, count=len(symbols))


def _iter_blocks(heads: HamiltonianHeads, atoms: Atoms, descriptors: torch.Tensor, chunk_size: int,
                 progress: bool = False, pairs: PairList | None = None):
    """Yield ``(pairs, slice, blocks)`` chunk by chunk; bond vectors are formed per chunk."""
    from tqdm.auto import tqdm

    from wander.data.neighbors import neighbor_list

    cfg = heads.config
    dtype, device = heads.pair_rbf.centres.dtype, heads.pair_rbf.centres.device
    species = torch.as_tensor(species_of(atoms, heads.type_map), device=device)
    layer_np = layers_of(atoms, required=cfg.layered)
    layer = torch.as_tensor(layer_np, device=device) if layer_np is not None and cfg.layered else None
    env = neighbor_list(atoms, cfg.r_env)
    env_vec = torch.as_tensor(env.vectors(atoms.positions, atoms.cell), dtype=dtype, device=device)
    env_index = torch.as_tensor(np.stack([env.i, env.j]), device=device)
    del env
    with torch.no_grad():
        density = heads.density(species, env_vec, env_index, chunk_size=chunk_size)
    del env_vec, env_index
    if pairs is None:
        pairs = hamiltonian_pairs(atoms, cfg.r_cut, cfg.r_near, layered=cfg.layered)
    descriptors = descriptors.to(device)
    with torch.no_grad():
        starts = range(0, len(pairs), chunk_size)
        for s in tqdm(starts, desc="hamiltonian", unit="chunk", disable=not progress or len(starts) < 2):
            sl = slice(s, s + chunk_size)
            index = torch.as_tensor(np.stack([pairs.i[sl], pairs.j[sl]]), device=device)
            blk = heads.blocks(descriptors, species, density, index,
                               torch.as_tensor(pairs.vectors(atoms, sl), dtype=dtype, device=device), layer)
            yield pairs, sl, blk.cpu().numpy()


def predict_blocks(heads: HamiltonianHeads, atoms: Atoms, descriptors: torch.Tensor,
                   chunk_size: int = 50_000) -> tuple[PairList, np.ndarray]:
    """Half-stored pairs (onsite first) and predicted blocks ``(P, M, M)`` eV of a structure.

    ``descriptors`` (N, F) are the shared per-atom descriptors of ``atoms``.
    """
    pairs, parts = None, []
    for pairs, _, blk in _iter_blocks(heads, atoms, descriptors, chunk_size):
        parts.append(blk)
    if pairs is None:
        raise ValueError("structure has no atoms")
    return pairs, np.concatenate(parts)


def hopping_counts(pairs: PairList, counts: np.ndarray) -> np.ndarray:
    """Orbital hoppings every half-stored pair contributes: ``c_i c_j``, or ``c_i (c_i + 1) / 2``
    for an onsite block (its upper triangle)."""
    ci, cj = counts[pairs.i], counts[pairs.j]
    onsite = (pairs.i == pairs.j) & ~pairs.R.any(axis=1)
    return np.where(onsite, ci * (ci + 1) // 2, ci * cj)


def hopping_cutoff(heads: HamiltonianHeads, r_cut: float | None) -> float:
    """The pair range of a prediction: the heads' ``r_cut``, or a shorter ``r_cut`` that drops the
    pairs beyond it (their blocks are small but not zero: a controlled truncation that saves memory
    and time on very large cells). It must keep the near/long blend whole."""
    cfg = heads.config
    if r_cut is None:
        return float(cfg.r_cut)
    lo = cfg.r_near + cfg.near_width / 2
    if not lo <= r_cut <= cfg.r_cut:
        raise ValueError(f"hopping cutoff {r_cut} A outside [{lo:g}, {cfg.r_cut:g}] A: at most the heads' r_cut, "
                         "at least the end of their near/long blend")
    return float(r_cut)


def predict_hamiltonian(heads: HamiltonianHeads, atoms: Atoms, descriptors: torch.Tensor,
                        chunk_size: int = 50_000, progress: bool = False, r_cut: float | None = None) -> Any:
    """``wander.tb.TBHamiltonian`` predicted for ``atoms``, assembled chunk by chunk (``progress``: a
    bar over the chunks of pairs). ``r_cut``: predict only the pairs within this distance, at most the
    heads' own ``r_cut`` (:func:`hopping_cutoff`); None predicts every pair the heads reach.

    Memory: the half-stored pair list and the final hopping arrays (allocated once, at their final
    size, and filled chunk by chunk) are the only arrays over all pairs; bond vectors, features and
    blocks exist one chunk at a time. The Hamiltonian is built by
    :meth:`~wander.tb.TBHamiltonian.from_half_hoppings` (the pair list is half-stored and has no
    repeats by construction, so nothing is merged, sorted or copied).
    """
    from wander.tb import TBHamiltonian

    cfg = heads.config
    counts = heads.basis.orbital_counts(atoms.get_chemical_symbols()).astype(np.int64)
    pairs = hamiltonian_pairs(atoms, hopping_cutoff(heads, r_cut), cfg.r_near, layered=cfg.layered)
    total = int(hopping_counts(pairs, counts).sum())
    R = np.empty((total, 3), dtype=np.int64)
    i = np.empty(total, dtype=np.int64)
    j = np.empty(total, dtype=np.int64)
    t = np.empty(total, dtype=np.complex128)
    at = 0
    for _, sl, blk in _iter_blocks(heads, atoms, descriptors, chunk_size, progress=progress, pairs=pairs):
        hR, hi, hj, ht = hoppings_from_blocks(pairs.i[sl], pairs.j[sl], pairs.R[sl], blk, counts)
        end = at + len(ht)
        R[at:end], i[at:end], j[at:end], t[at:end] = hR, hi, hj, ht
        at = end
    if at != total:
        raise RuntimeError(f"predicted {at} hoppings, expected {total}")
    del pairs
    orbital_atoms, orbital_labels, _ = heads.basis.orbital_table(atoms.get_chemical_symbols())
    return TBHamiltonian.from_half_hoppings(
        np.asarray(atoms.cell, dtype=float), atoms.positions[orbital_atoms], R, i, j, t,
        orbital_atoms=orbital_atoms, orbital_labels=orbital_labels, pbc=tuple(bool(p) for p in atoms.pbc),
    )
