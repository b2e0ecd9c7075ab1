"""Real-space maps of twisted bilayers: interlayer distance, displacement field, stacking registry.

Every map is sampled at atoms (no interpolation grid): ``MoireMap.xy`` (M, 2) Angstrom in-plane
positions folded into the cell and ``MoireMap.values`` (M,) or (M, d). :mod:`wander.moire.plots` draws
them with triangulated contours, so a map costs memory linear in the number of atoms.

The LDOS map lives in :mod:`wander.moire.ldos` (it needs a tight-binding Hamiltonian).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from wander.moire.geometry import PeriodicPlane, _check_2d, layer_indices, sublattice_a

__all__ = [
    "REGISTRIES",
    "MoireMap",
    "displacement_field",
    "interlayer_distance_map",
    "stacking_registry",
]

#: registry classes: fractional shift of sublattice A of the top layer relative to the bottom lattice
REGISTRIES: dict[str, tuple[float, float]] = {"AA": (0.0, 0.0), "AB": (1 / 3, 1 / 3), "BA": (2 / 3, 2 / 3)}


@dataclass
class MoireMap:
    """A scalar or vector field sampled at in-plane points of a 2D moire cell.

    Attributes
    ----------
    xy : (M, 2) Angstrom, folded into the cell
    values : (M,) or (M, d)
    cell2 : (2, 2) in-plane cell vectors (rows), Angstrom
    name, unit : labels for plots
    extra : further per-sample arrays (e.g. registry class labels)
    """

    xy: np.ndarray
    values: np.ndarray
    cell2: np.ndarray
    name: str
    unit: str
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        """min / max / mean of a scalar map (of the norm for a vector map)."""
        v = self.values if self.values.ndim == 1 else np.linalg.norm(self.values, axis=1)
        return {"min": float(v.min()), "max": float(v.max()), "mean": float(v.mean())}


def _local_plane_height(plane: PeriodicPlane, z: np.ndarray, xy: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted mean height (Angstrom) of a layer under the points ``xy`` (Q, 2)."""
    qi, pi, vec = plane.ball(xy, 3.0 * sigma)
    w = np.exp(-0.5 * (vec * vec).sum(1) / sigma ** 2)
    num = np.bincount(qi, weights=w * z[pi], minlength=len(xy))
    den = np.bincount(qi, weights=w, minlength=len(xy))
    if (den <= 0).any():
        raise ValueError(f"smoothing length {sigma} Angstrom is too short: some points see no atom of the other layer")
    return num / den


def interlayer_distance_map(atoms: Atoms, sigma: float | None = None, at: str = "all") -> MoireMap:
    """Local interlayer distance ``d(r) = h_top(r) - h_bottom(r)`` (Angstrom) sampled at atoms.

    ``h_l(r)`` is the Gaussian-weighted (standard deviation ``sigma``) mean height of the atoms of layer
    ``l`` around the in-plane point ``r``, so for MX2 layers it is the local mean plane (the metal
    plane), and for graphene the local sheet height. ``sigma`` defaults to the in-plane
    nearest-neighbour distance of the bottom layer; corrugations of wavelength ``lambda`` are damped by
    ``exp(-2 pi^2 sigma^2 / lambda^2)`` (below 0.1 % for moire periods over 40 sigma).

    Parameters
    ----------
    atoms
        Bilayer with ``arrays["layer"]`` and pbc ``(T, T, F)``.
    sigma
        Smoothing length, Angstrom.
    at
        Sample points: ``"all"`` atoms, ``"bottom"`` or ``"top"`` layer atoms.
    """
    cell2 = _check_2d(atoms)
    bottom, top = layer_indices(atoms)
    if sigma is None:
        _, _, sigma = sublattice_a(atoms, bottom)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    choice = {"all": np.arange(len(atoms)), "bottom": bottom, "top": top}
    if at not in choice:
        raise ValueError(f"at must be one of {tuple(choice)}, got {at!r}")
    sample = choice[at]
    xy = atoms.positions[sample, :2]
    z = atoms.positions[:, 2]
    hb = _local_plane_height(PeriodicPlane(atoms.positions[bottom, :2], cell2, 3 * sigma), z[bottom], xy, sigma)
    ht = _local_plane_height(PeriodicPlane(atoms.positions[top, :2], cell2, 3 * sigma), z[top], xy, sigma)
    plane = PeriodicPlane(xy, cell2, 0.0)
    return MoireMap(plane.wrap(xy), ht - hb, cell2, "interlayer distance", "Angstrom",
                    extra={"atoms": sample, "h_bottom": hb, "h_top": ht})


def displacement_field(reference: Atoms, relaxed: Atoms, remove_layer_mean: bool = True) -> MoireMap:
    """Displacements ``u_i`` (Angstrom, (N, 3)) of the atoms from ``reference`` to ``relaxed``.

    Both structures must hold the same atoms in the same order. When the in-plane cell changed, the
    reference is first mapped affinely onto the relaxed cell (same fractional coordinates), so ``u``
    holds only the non-affine relaxation; in-plane components use the minimum image. With
    ``remove_layer_mean`` the mean displacement of every layer (a rigid layer translation) is removed.
    ``values[:, :2]`` is the in-plane field, ``values[:, 2]`` the out-of-plane one. Sampled at the
    relaxed positions.
    """
    if len(reference) != len(relaxed) or not np.array_equal(reference.numbers, relaxed.numbers):
        raise ValueError("reference and relaxed must hold the same atoms in the same order")
    cell_r = np.array(relaxed.cell)
    cell2 = _check_2d(relaxed)
    _check_2d(reference)
    frac_ref = np.linalg.solve(np.array(reference.cell)[:2, :2].T, reference.positions[:, :2].T).T
    frac_rel = np.linalg.solve(cell2.T, relaxed.positions[:, :2].T).T
    dfrac = frac_rel - frac_ref
    dfrac -= np.round(dfrac)
    u = np.zeros((len(relaxed), 3))
    u[:, :2] = dfrac @ cell_r[:2, :2]
    u[:, 2] = relaxed.positions[:, 2] - reference.positions[:, 2]
    if remove_layer_mean:
        layer = np.asarray(relaxed.arrays.get("layer", np.zeros(len(relaxed), dtype=int)))
        _, inv = np.unique(layer, return_inverse=True)
        counts = np.bincount(inv)
        for c in range(3):
            u[:, c] -= (np.bincount(inv, weights=u[:, c]) / counts)[inv]
    plane = PeriodicPlane(relaxed.positions[:, :2], cell2, 0.0)
    return MoireMap(plane.wrap(relaxed.positions[:, :2]), u, cell2, "displacement", "Angstrom")


def stacking_registry(atoms: Atoms, sp_tolerance: float = 0.35) -> MoireMap:
    """Local stacking registry of a honeycomb bilayer (graphene, hBN, MX2), sampled at top A-sublattice atoms.

    For every top-layer atom ``t`` of sublattice A, the shift ``s = x_t - x_b`` to the nearest
    bottom-layer A atom is reduced to the bottom lattice (whose vectors follow from the bottom bond
    direction and length). ``s`` is compared with the three high-symmetry registries of
    :data:`REGISTRIES`: AA (A over A), AB (top A over bottom B, Bernal) and BA (top A over a hexagon
    centre). The class is the nearest of them, or ``"SP"`` (saddle point / domain wall) when ``s`` is
    farther than ``sp_tolerance`` x bond length from all three.

    ``values`` (M,) is the distance of ``s`` to the AA registry in units of the bond length (0 at AA,
    1 at AB / BA); ``extra["shift"]`` (M, 2) Angstrom, ``extra["label"]`` (M,) str, ``extra["atoms"]``
    the sampled atom indices. Sublattice A is that of the first atom of each layer (see
    :func:`wander.moire.geometry.sublattice_a`); AA and SP do not depend on that choice, AB and BA swap.
    """
    cell2 = _check_2d(atoms)
    bottom, top = layer_indices(atoms)
    is_a_b, phi_b, bond = sublattice_a(atoms, bottom)
    is_a_t, _, _ = sublattice_a(atoms, top)
    # bottom primitive vectors: A->B bonds point along (a1 + a2) / 3, 30 degrees from a1
    a = bond * np.sqrt(3.0)
    ang1 = phi_b - np.pi / 6
    prim = a * np.array([[np.cos(ang1), np.sin(ang1)], [np.cos(ang1 + np.pi / 3), np.sin(ang1 + np.pi / 3)]])
    bottom_a = bottom[is_a_b]
    top_a = top[is_a_t]
    plane = PeriodicPlane(atoms.positions[bottom_a, :2], cell2, 2.0 * a)
    _, _, vec = plane.nearest(atoms.positions[top_a, :2], k=1)
    shift = -vec[:, 0, :]                                          # x_t - x_b, (M, 2)
    frac = np.linalg.solve(prim.T, shift.T).T
    dists = []
    for ref in REGISTRIES.values():  # three registries, each vectorised over all samples
        d = frac - np.asarray(ref)
        d -= np.round(d)
        cand = (d[:, None, :] + np.array([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1], [1, -1], [-1, 1]])[None]) @ prim
        dists.append(np.linalg.norm(cand, axis=2).min(axis=1))
    dists = np.stack(dists, axis=1) / bond                          # (M, 3) in bond lengths
    names = np.array(list(REGISTRIES))
    label = names[np.argmin(dists, axis=1)].astype(object)
    label[dists.min(axis=1) > sp_tolerance] = "SP"
    xy = PeriodicPlane(atoms.positions[top_a, :2], cell2, 0.0).wrap(atoms.positions[top_a, :2])
    return MoireMap(xy, dists[:, 0], cell2, "distance to AA registry", "bond lengths",
                    extra={"shift": shift, "label": label.astype(str), "atoms": top_a})
