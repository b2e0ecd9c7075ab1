"""Real-space maps of moire bilayers and their plots.

geometry  periodic in-plane neighbour queries, honeycomb sublattices
maps      interlayer distance, displacement field, stacking registry (AA / AB / BA / SP)
ldos      local density of states of a tight-binding Hamiltonian at an energy, per atom
plots     matplotlib figures of the maps
"""

from wander.moire.maps import (REGISTRIES, MoireMap, displacement_field, interlayer_distance_map,
                               stacking_registry)

__all__ = ["REGISTRIES", "MoireMap", "displacement_field", "interlayer_distance_map", "stacking_registry"]
