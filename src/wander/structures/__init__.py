"""Monolayers, bilayers and commensurate twisted bilayers as ASE ``Atoms``.

Conventions: hexagonal cell a1 = (a, 0, 0), a2 = (a/2, a*sqrt(3)/2, 0), a3 = (0, 0, c) with
c = vacuum + slab thickness; ``pbc=(True, True, False)``; the slab is centred at z = 0;
``atoms.arrays["layer"]`` is 0 for the bottom layer and 1 for the top one.
"""

from wander.structures.bilayers import STACKINGS, bilayer, layer_planes
from wander.structures.commensurate import (
    CommensurateCell,
    commensurate_angles,
    supercell_matrices,
    twist_angle,
)
from wander.structures.hetero import HeteroMatch, match_lattices
from wander.structures.lattice import hexagonal_cell
from wander.structures.monolayers import MATERIALS, graphene, hbn, monolayer, mx2
from wander.structures.twist import twisted_bilayer

__all__ = [
    "MATERIALS",
    "STACKINGS",
    "CommensurateCell",
    "HeteroMatch",
    "bilayer",
    "commensurate_angles",
    "graphene",
    "hbn",
    "hexagonal_cell",
    "layer_planes",
    "match_lattices",
    "monolayer",
    "mx2",
    "supercell_matrices",
    "twist_angle",
    "twisted_bilayer",
]
