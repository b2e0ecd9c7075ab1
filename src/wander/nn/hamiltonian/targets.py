"""Training targets: atom-pair blocks from TB Hamiltonians, hopping lists and the DFT dataset.

A target set of one frame is a :class:`HamiltonianTargets`: the model's half-stored pair list
(:func:`~wander.nn.hamiltonian.categories.hamiltonian_pairs`, onsite first) with the reference block
of every pair, zero where the reference has no entry (it dropped a negligible block), plus the size of
the reference beyond ``r_cut`` that the model cannot represent.

Blocks are padded to ``(P, M, M)`` with ``M`` the largest orbital count; ``mask`` marks the real
entries ``a < n(z_i), b < n(z_j)``. Values are real float64 eV (real Wannier functions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from ase import Atoms

from wander.nn.hamiltonian.basis import OrbitalBasis
from wander.nn.hamiltonian.categories import PairList, half_stored, hamiltonian_pairs

__all__ = [
    "HamiltonianTargets",
    "align_blocks",
    "blocks_from_hoppings",
    "blocks_from_tb",
    "dataset_targets",
    "local_orbital_index",
]

#: Largest imaginary part (eV) accepted when reading complex hoppings as real blocks.
IMAG_TOL = 1e-4


@dataclass(frozen=True)
class HamiltonianTargets:
    """Reference blocks aligned with a pair list.

    Attributes
    ----------
    pairs : PairList (P pairs, onsite first)
    blocks : (P, M, M) float64 eV, zero outside ``mask``
    mask : (P, M, M) bool, real orbital entries
    outside_max : float, eV, largest |H| of reference entries not in ``pairs`` (beyond r_cut)
    n_outside : int, number of such reference blocks
    """

    pairs: PairList
    blocks: np.ndarray
    mask: np.ndarray
    outside_max: float
    n_outside: int


def block_mask(counts_i: np.ndarray, counts_j: np.ndarray, m: int) -> np.ndarray:
    """``(P, m, m)`` bool, True for ``a < counts_i[p]`` and ``b < counts_j[p]``."""
    a = np.arange(m)
    return (a[None, :, None] < np.asarray(counts_i)[:, None, None]) & \
           (a[None, None, :] < np.asarray(counts_j)[:, None, None])


def local_orbital_index(orbital_atoms: np.ndarray, orbital_labels: Sequence[str], symbols: Sequence[str],
                        basis: OrbitalBasis) -> np.ndarray:
    """Position of every orbital inside its atom's block, checked against ``basis``.

    Orbitals of one atom keep their relative order. ``ValueError`` if an atom's orbital count or
    labels differ from the basis.
    """
    oa = np.asarray(orbital_atoms, dtype=np.int64)
    n_at = len(symbols)
    if oa.size and (oa.min() < 0 or oa.max() >= n_at):
        raise ValueError(f"orbital_atoms must index the {n_at} atoms")
    counts = basis.orbital_counts(symbols)
    have = np.bincount(oa, minlength=n_at)
    bad = np.flatnonzero(have != counts)
    if bad.size:
        a = int(bad[0])
        raise ValueError(f"atom {a} ({symbols[a]}) has {have[a]} orbitals, the basis has {counts[a]}")
    order = np.argsort(oa, kind="stable")
    start = np.concatenate([[0], np.cumsum(counts)])[:-1]
    local = np.empty_like(oa)
    local[order] = np.arange(oa.size) - start[oa[order]]
    _, expected, offsets = basis.orbital_table(symbols)
    got = np.asarray(orbital_labels).astype(str)
    want = expected[offsets[oa] + local]
    wrong = np.flatnonzero(got != want)
    if wrong.size:
        o = int(wrong[0])
        raise ValueError(f"orbital {o} on atom {oa[o]} ({symbols[oa[o]]}) is {got[o]!r}, the basis "
                         f"expects {want[o]!r} (order {basis.labels(symbols[oa[o]])})")
    return local


def blocks_from_hoppings(atoms: Atoms, basis: OrbitalBasis, R: np.ndarray, i: np.ndarray, j: np.ndarray,
                         t: np.ndarray, orbital_atoms: np.ndarray, orbital_labels: Sequence[str]
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Atom-pair blocks of an orbital hopping list ``H_{i j}(R) = t``.

    Accepts a half-stored list (docs/conventions.md) or a full one (both directions); every entry is
    mapped to the half-stored atom pair (``H_ba(-R) = H_ab(R)^T``) and duplicates are averaged.

    Parameters
    ----------
    atoms : structure (symbols, for the basis)
    R : (H, 3) int, i, j : (H,) int orbital indices, t : (H,) float or complex eV
    orbital_atoms : (n_orb,) host atom of every orbital; orbital_labels : (n_orb,) Wannier90 names

    Returns
    -------
    pair_i, pair_j : (P,) int64; pair_R : (P, 3) int64; blocks : (P, M, M) float64 (zero padded)
    """
    symbols = atoms.get_chemical_symbols()
    local = local_orbital_index(orbital_atoms, orbital_labels, symbols, basis)
    oa = np.asarray(orbital_atoms, dtype=np.int64)
    t = np.asarray(t)
    if np.iscomplexobj(t):
        imag = float(np.abs(t.imag).max()) if t.size else 0.0
        if imag > IMAG_TOL:
            raise ValueError(f"hoppings have imaginary parts up to {imag:.3g} eV; real Wannier functions expected")
        t = t.real
    R = np.asarray(R, dtype=np.int64).reshape(-1, 3)
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    a, b, la, lb = oa[i], oa[j], local[i], local[j]
    flip = ~half_stored(a, b, R)
    a, b = np.where(flip, b, a), np.where(flip, a, b)
    la, lb = np.where(flip, lb, la), np.where(flip, la, lb)
    R = np.where(flip[:, None], -R, R)
    # onsite blocks are symmetric: store both triangles
    ons = (a == b) & ~R.any(axis=1) & (la != lb)
    a, b, R = np.concatenate([a, a[ons]]), np.concatenate([b, b[ons]]), np.concatenate([R, R[ons]])
    la, lb = np.concatenate([la, lb[ons]]), np.concatenate([lb, la[ons]])
    t = np.concatenate([t, t[ons]])
    keys, inv = np.unique(np.c_[a, b, R], axis=0, return_inverse=True)
    inv = inv.ravel()
    m = basis.max_orbitals
    total = np.zeros((len(keys), m, m))
    count = np.zeros((len(keys), m, m))
    np.add.at(total, (inv, la, lb), t.astype(float))
    np.add.at(count, (inv, la, lb), 1.0)
    blocks = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return keys[:, 0], keys[:, 1], keys[:, 2:5], blocks


def blocks_from_tb(tb: Any, atoms: Atoms, basis: OrbitalBasis) -> tuple[np.ndarray, ...]:
    """Atom-pair blocks ``(pair_i, pair_j, pair_R, blocks)`` of a ``wander.tb.TBHamiltonian``.

    Uses the hopping list ``tb.R, tb.i, tb.j, tb.t`` and ``tb.orbital_atoms``, ``tb.orbital_labels``
    (see :func:`blocks_from_hoppings`). The inverse is :func:`wander.nn.hamiltonian.assemble.to_tb_hamiltonian`.
    """
    need = ("R", "i", "j", "t", "orbital_atoms", "orbital_labels")
    missing = [k for k in need if not hasattr(tb, k)]
    if missing:
        raise TypeError(f"{type(tb).__name__} lacks {missing}; expected a wander.tb.TBHamiltonian")
    return blocks_from_hoppings(atoms, basis, np.asarray(tb.R), np.asarray(tb.i), np.asarray(tb.j),
                                np.asarray(tb.t), np.asarray(tb.orbital_atoms), np.asarray(tb.orbital_labels))


def align_blocks(pairs: PairList, ref_i: np.ndarray, ref_j: np.ndarray, ref_R: np.ndarray,
                 ref_blocks: np.ndarray, counts: np.ndarray) -> HamiltonianTargets:
    """Reference blocks on the model's pair list.

    ``ref_*`` must be half-stored (as returned by :func:`blocks_from_hoppings`); ``counts`` (N,) are
    the orbitals per atom. Pairs without a reference block get zero targets.
    """
    m = ref_blocks.shape[1] if ref_blocks.ndim == 3 else 1
    key_p = np.c_[pairs.i, pairs.j, pairs.R].astype(np.int64)
    key_r = np.c_[ref_i, ref_j, np.asarray(ref_R).reshape(-1, 3)].astype(np.int64)
    if not half_stored(key_r[:, 0], key_r[:, 1], key_r[:, 2:]).all():
        raise ValueError("reference blocks must be half-stored (R > 0, or R = 0 and i <= j)")
    _, inv = np.unique(np.concatenate([key_p, key_r]), axis=0, return_inverse=True)
    inv = inv.ravel()
    slot = np.full(inv.max() + 1 if inv.size else 0, -1, dtype=np.int64)
    slot[inv[:len(key_p)]] = np.arange(len(key_p))
    where = slot[inv[len(key_p):]]
    found = where >= 0
    blocks = np.zeros((len(key_p), m, m))
    blocks[where[found]] = ref_blocks[found]
    outside = ref_blocks[~found]
    mask = block_mask(counts[pairs.i], counts[pairs.j], m)
    return HamiltonianTargets(pairs, np.where(mask, blocks, 0.0), mask,
                              float(np.abs(outside).max()) if outside.size else 0.0, int((~found).sum()))


def dataset_targets(ham: Mapping[str, np.ndarray], frame: int, atoms: Atoms, basis: OrbitalBasis,
                    r_cut: float, r_near: float, layered: bool = True) -> HamiltonianTargets:
    """Targets of frame ``frame`` of a DFT dataset's ``hamiltonians.npz`` (see :mod:`wander.dft.dataset`).

    ``ham`` is the dict of arrays (``wander.dft.dataset.load_hamiltonians``), ``atoms`` the frame's
    structure (same atom order). The file stores both (i, j, R) and (j, i, -R); both are read and
    averaged onto the half-stored pair.
    """
    nf = len(ham["pair_offset"]) - 1
    if not 0 <= frame < nf:
        raise IndexError(f"frame {frame} out of range for {nf} frames")
    a0, a1 = ham["atom_offset"][frame:frame + 2]
    if a1 - a0 != len(atoms):
        raise ValueError(f"frame {frame} has {a1 - a0} atoms, the structure {len(atoms)}")
    o0, o1 = ham["orb_offset"][frame:frame + 2]
    p0, p1 = ham["pair_offset"][frame:frame + 2]
    orb_atom, orb_label = ham["orb_atom"][o0:o1], ham["orb_label"][o0:o1]
    pi, pj, pR = ham["pair_i"][p0:p1], ham["pair_j"][p0:p1], ham["pair_R"][p0:p1]
    off = ham["block_offset"][p0:p1 + 1]
    counts = np.asarray(ham["orb_count"][a0:a1], dtype=np.int64)
    sizes = counts[pi] * counts[pj]
    if not np.array_equal(np.diff(off), sizes):
        raise ValueError(f"frame {frame}: block sizes disagree with orb_count")
    # expand to orbital hoppings: entry e of pair p is (m, n) = divmod(e - off[p], counts[pj])
    pair_of = np.repeat(np.arange(len(pi)), sizes)
    e = np.arange(off[0], off[-1]) - off[:-1][pair_of]
    row, col = np.divmod(e, counts[pj][pair_of])
    # orbital index of local orbital k on atom a, in the frame's WF order
    local = local_orbital_index(orb_atom, orb_label, atoms.get_chemical_symbols(), basis)
    table = np.full((len(atoms), basis.max_orbitals), -1, dtype=np.int64)
    table[orb_atom, local] = np.arange(len(orb_atom))
    oi, oj = table[pi[pair_of], row], table[pj[pair_of], col]
    vals = ham["block_values"][off[0]:off[-1]]
    ri, rj, rR, rb = blocks_from_hoppings(atoms, basis, pR[pair_of], oi, oj, vals, orb_atom, orb_label)
    pairs = hamiltonian_pairs(atoms, r_cut, r_near, layered=layered)
    return align_blocks(pairs, ri, rj, rR, rb, basis.orbital_counts(atoms.get_chemical_symbols()))
