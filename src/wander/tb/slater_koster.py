"""Two-centre pz tight-binding models on ASE ``Atoms`` (one pz orbital per carbon atom).

``graphene_nn``
    Nearest-neighbour graphene: ``H_ij = -t`` for bonded pairs, bands ``+- t |f(k)|``.

``moon_koshino``
    The Slater-Koster two-centre form used for twisted bilayer graphene by P. Moon and
    M. Koshino, Phys. Rev. B 85, 195458 (2012) (same parameters as G. Trambly de Laissardiere
    et al., Nano Lett. 10, 804 (2010)):

    ``-t(d) = V_pppi(d) [1 - (d_z/d)^2] + V_ppsigma(d) (d_z/d)^2`` with
    ``V_pppi(d) = V0_pi exp(-(d - a0)/delta)``, ``V_ppsigma(d) = V0_sigma exp(-(d - d0)/delta)``,
    ``V0_pi = -2.7 eV``, ``V0_sigma = 0.48 eV``, ``a0 = a/sqrt(3) = 1.42 A`` (C-C bond),
    ``d0 = 3.35 A`` (interlayer distance), ``delta = 0.184 a`` (``a = 2.46 A``: 0.453 A, so the
    hopping falls by 10 from ``a0`` to the next-nearest distance ``a``). The matrix element is
    ``H_ij = -t(d_ij)``; onsite energies are 0. Pairs farther than ``cutoff`` (default 5 A) are
    dropped: the largest dropped terms are about 1 meV in-plane and 6 meV between layers.

Neighbour lists come from ``matscipy.neighbours.neighbour_list`` (vectorised, mixed pbc).
``atoms.arrays["layer"]`` is not used to build the model (the formula decides from geometry);
it is only reported by :func:`pz_model_summary`.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from wander.tb.hamiltonian import TBHamiltonian

__all__ = ["PZ_MODELS", "graphene_nn", "moon_koshino", "pz_model", "pz_model_summary", "MOON_KOSHINO"]

#: Moon & Koshino (2012) parameters (eV, Angstrom).
MOON_KOSHINO = {
    "v0_pi": -2.7,
    "v0_sigma": 0.48,
    "a0": 2.46 / np.sqrt(3.0),
    "d0": 3.35,
    "delta": 0.184 * 2.46,
    "cutoff": 5.0,
}


def _check_carbon(atoms: Atoms, model: str) -> None:
    if len(atoms) == 0:
        raise ValueError(f"{model}: empty structure")
    bad = sorted(set(atoms.get_chemical_symbols()) - {"C"})
    if bad:
        raise ValueError(f"{model} is a carbon pz model; the structure also contains {', '.join(bad)}")
    if not atoms.pbc[0] or not atoms.pbc[1]:
        raise ValueError(f"{model}: expects a 2D structure with pbc=(True, True, False), got {tuple(atoms.pbc)}")
    if abs(np.linalg.det(atoms.cell[:])) < 1e-10:
        raise ValueError(f"{model}: the cell is singular; 2D structures need a vacuum vector along z")


def _pairs(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from matscipy.neighbours import neighbour_list

    i, j, D, S = neighbour_list("ijDS", atoms, float(cutoff))
    keep = (i < j) | ((i == j) & _positive(S))  # one direction of every pair
    return i[keep].astype(np.int64), j[keep].astype(np.int64), D[keep], S[keep].astype(np.int64)


def _positive(S: np.ndarray) -> np.ndarray:
    out = np.zeros(len(S), dtype=bool)
    undecided = np.ones(len(S), dtype=bool)
    for axis in range(3):
        out |= undecided & (S[:, axis] > 0)
        undecided &= S[:, axis] == 0
    return out


def _hamiltonian(atoms: Atoms, i, j, S, t) -> TBHamiltonian:
    n = len(atoms)
    return TBHamiltonian.from_hoppings(
        atoms.cell[:],
        atoms.positions,
        S,
        i,
        j,
        t,
        orbital_atoms=np.arange(n),
        orbital_labels=np.full(n, "pz"),
        pbc=tuple(bool(p) for p in atoms.pbc),
    )


def graphene_nn(atoms: Atoms, t: float = 2.7, cutoff: float | None = None) -> TBHamiltonian:
    """Nearest-neighbour pz model: ``H_ij = -t`` for every bonded carbon pair.

    Parameters
    ----------
    atoms : ase.Atoms
        Carbon atoms, pbc (True, True, False).
    t : float, eV
        Hopping magnitude (bands ``+- t |f(k)|``).
    cutoff : float, Angstrom, optional
        Bond cutoff; default ``1.37 d_min`` (between the first and second neighbour shells,
        ``d_min`` the shortest C-C distance in the structure).

    Returns
    -------
    TBHamiltonian
    """
    _check_carbon(atoms, "graphene-nn")
    if cutoff is None:
        i, j, D, S = _pairs(atoms, 2.5)
        if len(i) == 0:
            raise ValueError("graphene-nn: no C-C pair within 2.5 A")
        cutoff = 0.5 * (1.0 + np.sqrt(3.0)) * np.linalg.norm(D, axis=1).min()
    i, j, D, S = _pairs(atoms, cutoff)
    return _hamiltonian(atoms, i, j, S, np.full(len(i), -float(t), dtype=complex))


def moon_koshino(
    atoms: Atoms,
    *,
    cutoff: float = MOON_KOSHINO["cutoff"],
    v0_pi: float = MOON_KOSHINO["v0_pi"],
    v0_sigma: float = MOON_KOSHINO["v0_sigma"],
    a0: float = MOON_KOSHINO["a0"],
    d0: float = MOON_KOSHINO["d0"],
    delta: float = MOON_KOSHINO["delta"],
) -> TBHamiltonian:
    """Moon-Koshino two-centre pz model (see the module docstring for the formula).

    Parameters
    ----------
    atoms : ase.Atoms
        Carbon atoms (monolayer, bilayer or twisted bilayer), pbc (True, True, False); the
        out-of-plane direction is z.
    cutoff : float, Angstrom
        Pairs farther apart are dropped.
    v0_pi, v0_sigma : float, eV
    a0, d0, delta : float, Angstrom

    Returns
    -------
    TBHamiltonian
        ``n_atoms`` pz orbitals at the atom positions, onsite 0.
    """
    _check_carbon(atoms, "moon-koshino")
    if cutoff <= a0:
        raise ValueError(f"moon-koshino: cutoff {cutoff} A is shorter than the bond length {a0:.3f} A")
    i, j, D, S = _pairs(atoms, cutoff)
    d = np.linalg.norm(D, axis=1)
    c2 = (D[:, 2] / d) ** 2
    t = v0_pi * np.exp(-(d - a0) / delta) * (1.0 - c2) + v0_sigma * np.exp(-(d - d0) / delta) * c2
    return _hamiltonian(atoms, i, j, S, t.astype(complex))


#: Named pz models for the CLIs (one explicit table).
PZ_MODELS = {"moon-koshino": moon_koshino, "graphene-nn": graphene_nn}


def pz_model(atoms: Atoms, name: str) -> TBHamiltonian:
    """Build the pz model ``name`` (a key of :data:`PZ_MODELS`) on ``atoms``."""
    try:
        build = PZ_MODELS[name]
    except KeyError:
        raise ValueError(f"unknown tight-binding model {name!r}; choose from {sorted(PZ_MODELS)}") from None
    return build(atoms)


def pz_model_summary(atoms: Atoms, ham: TBHamiltonian) -> str:
    """One-line description: orbitals, hoppings, and intra/interlayer counts if layers are tagged."""
    text = f"{ham.n_orbitals} pz orbitals, {ham.n_hoppings} hoppings"
    layer = atoms.arrays.get("layer")
    if layer is not None and len(layer) == ham.n_orbitals:
        layer = np.asarray(layer)
        inter = layer[ham.orbital_atoms[ham.i]] != layer[ham.orbital_atoms[ham.j]]
        text += f" ({int((~inter).sum())} intralayer, {int(inter.sum())} interlayer)"
    return text
