"""Hamiltonian heads: Wannier tight-binding blocks H_ij(R) from the shared force-field descriptor.

Modules
-------
basis        OrbitalBasis; the Wannier90 <-> e3nn real-harmonic conversion; Wigner matrices
features     radial functions, equivariant atomic densities and pair / onsite feature banks
blocks       Clebsch-Gordan coupling of features into orbital blocks
categories   half-stored pair lists and categories (onsite, intralayer near / long, interlayer)
heads        HeadsConfig, HamiltonianHeads (the torch module)
targets      training targets from a TB Hamiltonian, hopping lists or the DFT dataset
assemble     blocks -> half-stored hoppings -> wander.tb.TBHamiltonian; inference on structures
losses       per-category MSE / MAE

Needs torch and e3nn. See docs/hamiltonian.md.
"""

from wander.nn.hamiltonian.basis import OrbitalBasis, w90_from_e3nn, wigner_w90
from wander.nn.hamiltonian.categories import CATEGORIES, PairList, hamiltonian_pairs
from wander.nn.hamiltonian.heads import HamiltonianHeads, HeadsConfig

__all__ = [
    "CATEGORIES",
    "HamiltonianHeads",
    "HeadsConfig",
    "OrbitalBasis",
    "PairList",
    "hamiltonian_pairs",
    "w90_from_e3nn",
    "wigner_w90",
]
