"""Tight-binding Hamiltonians, band structures and densities of states.

Storage, gauges and orbital order follow docs/conventions.md; usage is described in docs/tb.md.
"""

from wander.tb.bands import band_structure, band_windows
from wander.tb.dos import density_of_states, local_density_of_states
from wander.tb.eigen import eigsh_near, eigvalsh_dense
from wander.tb.fermi import fermi_level, fermi_level_at_k
from wander.tb.hamiltonian import TBHamiltonian
from wander.tb.kpath import bandpath_2d
from wander.tb.slater_koster import PZ_MODELS, graphene_nn, moon_koshino, pz_model

__all__ = [
    "PZ_MODELS",
    "TBHamiltonian",
    "band_structure",
    "band_windows",
    "bandpath_2d",
    "density_of_states",
    "eigsh_near",
    "eigvalsh_dense",
    "fermi_level",
    "fermi_level_at_k",
    "graphene_nn",
    "local_density_of_states",
    "moon_koshino",
    "pz_model",
]
