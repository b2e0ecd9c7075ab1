"""Deterministic sampling of bilayer and monolayer configurations for DFT labels.

Every configuration is a small periodic cell (``pbc = (T, T, F)``, cell rows,
slab centred at z = 0, ``arrays["layer"]``) plus a ``params`` dict recording how
it was made.  The sample covers:

* the full stacking registry (top-layer shift ``(f1, f2)`` in fractional units of
  the primitive cell; AA, AB and SP always included),
* interlayer distances (graphene: 3.0-4.0 A between the layer planes; MoS2: the
  S-S gap 2.8-3.8 A, i.e. Mo-Mo plane distance gap + S-S thickness),
* homogeneous in-plane strain (symmetric 2x2 tensor, a few percent),
* rattled atoms (Gaussian, all three directions) and, in sqrt3 x sqrt3 and 2 x 2
  supercells, a small rigid rotation of the top-layer atoms about the cell centre
  ("local twist": the cell stays commensurate, the twist leaves a seam),
* monolayer frames.

The same ``seed`` always gives the same list.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

__all__ = ["LayerSpec", "LAYERS", "Configuration", "build_bilayer", "sample_configurations",
           "NAMED_SHIFTS", "SCAN_SHIFTS", "registry_scan"]


@dataclass(frozen=True)
class LayerSpec:
    """Primitive hexagonal layer.

    Attributes:
        a: lattice constant (Angstrom).
        basis: (symbol, f1, f2, z) with z relative to the layer's mid-plane (Angstrom).
        thickness: vertical extent of the layer (Angstrom); 0 for graphene.
        distance_range: sampled interlayer distance (Angstrom). For zero-thickness layers
            the plane-to-plane distance, otherwise the gap between facing atomic sheets.
        c: cell length along z (Angstrom), fixed per material.
        orientations: allowed top-layer orientations: ``"R"`` (parallel) and/or ``"H"``
            (rotated by 180 degrees, 2H-like).
    """

    a: float
    basis: tuple[tuple[str, float, float, float], ...]
    thickness: float
    distance_range: tuple[float, float]
    c: float
    orientations: tuple[str, ...] = ("R",)


LAYERS: dict[str, LayerSpec] = {
    "graphene": LayerSpec(2.46, (("C", 0.0, 0.0, 0.0), ("C", 1 / 3, 1 / 3, 0.0)), 0.0,
                          (3.0, 4.0), 20.0),
    "mos2": LayerSpec(3.19, (("Mo", 0.0, 0.0, 0.0), ("S", 1 / 3, 1 / 3, 1.565),
                             ("S", 1 / 3, 1 / 3, -1.565)), 3.13, (2.8, 3.8), 25.0, ("H", "R")),
}

#: top-layer shifts (fractional) of the high-symmetry registries for orientation "R"
NAMED_SHIFTS: dict[str, tuple[float, float]] = {"AA": (0.0, 0.0), "AB": (1 / 3, 1 / 3),
                                                "SP": (0.5, 0.0), "BA": (2 / 3, 2 / 3)}

_SUPERCELLS = {"1x1": np.eye(2, dtype=int), "sqrt3": np.array([[1, 1], [-1, 2]]),
               "2x2": 2 * np.eye(2, dtype=int)}


@dataclass
class Configuration:
    """One sampled structure.

    Attributes:
        name: unique, sortable name (``"blg_0007"``).
        atoms: structure (Angstrom), ``arrays["layer"]`` set.
        params: JSON-serialisable record of the sampling parameters.
    """

    name: str
    atoms: Atoms
    params: dict = field(default_factory=dict)


def _layer_atoms(spec: LayerSpec, orientation: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    sym = [b[0] for b in spec.basis]
    f = np.array([[b[1], b[2]] for b in spec.basis])
    z = np.array([b[3] for b in spec.basis])
    if orientation == "H":
        f = -f
        z = -z
    elif orientation != "R":
        raise ValueError(f"orientation must be 'R' or 'H', got {orientation!r}")
    return sym, f, z


def build_bilayer(
    material: str,
    *,
    shift: tuple[float, float] = (0.0, 0.0),
    distance: float | None = None,
    orientation: str = "R",
    strain: np.ndarray | None = None,
    supercell: str = "1x1",
    monolayer: bool = False,
) -> Atoms:
    """Unrelaxed bilayer (or monolayer) of ``material`` in the package conventions.

    Args:
        material: key of :data:`LAYERS`.
        shift: top-layer shift in fractional units of the primitive cell.
        distance: interlayer distance (see :class:`LayerSpec`); default mid-range.
        orientation: top layer ``"R"`` (parallel) or ``"H"`` (rotated 180 degrees).
        strain: symmetric (2, 2) in-plane strain; positions and cell are scaled by (1 + strain).
        supercell: ``"1x1"``, ``"sqrt3"`` or ``"2x2"``.
        monolayer: only the bottom layer.

    Returns:
        Atoms with pbc (T, T, F), slab centred at z = 0, ``arrays["layer"]``.
    """
    if material not in LAYERS:
        raise ValueError(f"unknown material {material!r}; known: {sorted(LAYERS)}")
    if supercell not in _SUPERCELLS:
        raise ValueError(f"unknown supercell {supercell!r}; known: {sorted(_SUPERCELLS)}")
    spec = LAYERS[material]
    if distance is None:
        distance = float(np.mean(spec.distance_range))
    if not 1.0 < distance < 10.0:
        raise ValueError(f"interlayer distance {distance} A outside (1, 10)")
    a = spec.a
    prim = np.array([[a, 0.0], [a / 2, a * np.sqrt(3) / 2]])
    sym0, f0, z0 = _layer_atoms(spec, "R")
    layers = [(sym0, f0, z0, 0)]
    if not monolayer:
        sym1, f1, z1 = _layer_atoms(spec, orientation)
        layers.append((sym1, f1 + np.asarray(shift, dtype=float)[None, :], z1, 1))
    sep = distance + spec.thickness
    M = _SUPERCELLS[supercell]
    # lattice points of the supercell: integer combos inside M
    rng_pts = [(i, j) for i in range(-3, 4) for j in range(-3, 4)]
    Minv = np.linalg.inv(M.astype(float))
    pts = [p for p in rng_pts if np.all((np.array(p) @ Minv > -1e-9) & (np.array(p) @ Minv < 1 - 1e-9))]
    if len(pts) != round(abs(np.linalg.det(M))):
        raise RuntimeError("supercell lattice-point enumeration failed")
    symbols, pos, layer = [], [], []
    zoff = [-sep / 2, sep / 2] if not monolayer else [0.0]
    for (sym, f, z, tag), dz in zip(layers, zoff):
        for p in pts:
            fr = f + np.array(p)[None, :]
            xy = fr @ prim
            symbols += sym
            pos.append(np.c_[xy, z + dz])
            layer += [tag] * len(sym)
    pos = np.concatenate(pos)
    cell2 = M @ prim
    if strain is not None:
        eps = np.asarray(strain, dtype=float)
        if eps.shape != (2, 2) or not np.allclose(eps, eps.T):
            raise ValueError("strain must be a symmetric (2, 2) array")
        F = np.eye(2) + eps
        cell2 = cell2 @ F.T
        pos[:, :2] = pos[:, :2] @ F.T
    cell = np.zeros((3, 3))
    cell[:2, :2] = cell2
    cell[2, 2] = spec.c
    atoms = Atoms(symbols, positions=pos, cell=cell, pbc=(True, True, False))
    atoms.arrays["layer"] = np.array(layer, dtype=int)
    _wrap_inplane(atoms)
    return atoms


def _wrap_inplane(atoms: Atoms) -> None:
    frac = atoms.get_scaled_positions(wrap=False)
    frac[:, :2] = np.mod(frac[:, :2], 1.0)
    frac[:, :2][frac[:, :2] > 1 - 1e-10] = 0.0
    atoms.set_scaled_positions(frac)
    z = atoms.positions[:, 2]
    atoms.positions[:, 2] -= 0.5 * (z.max() + z.min())


def _min_distance(atoms: Atoms) -> float:
    from ase.geometry import get_distances

    _, d = get_distances(atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    d[np.diag_indices_from(d)] = np.inf
    return float(d.min()) if len(atoms) > 1 else np.inf


def sample_configurations(
    material: str,
    n: int,
    seed: int = 0,
    *,
    prefix: str | None = None,
    monolayer_fraction: float = 0.1,
    supercell_fraction: float = 0.12,
    max_strain: float = 0.02,
    rattle_primitive: float = 0.03,
    rattle_supercell: float = 0.06,
    max_twist_deg: float = 3.0,
) -> list[Configuration]:
    """Deterministic list of ``n`` configurations.

    The first entries are the named registries (AA, AB, SP; for MoS2 both
    orientations) at the mid-range distance, unstrained and unrattled, and one
    monolayer; the rest draw shift uniformly over the registry cell, distance
    uniformly over the material's range, strain components uniformly within
    +-``max_strain`` (biaxial) and +-``max_strain/2`` (shear / uniaxial), and
    Gaussian rattles with sigma drawn in [0, ``rattle_*``] Angstrom.

    Args:
        material: ``"graphene"`` or ``"mos2"``.
        n: number of configurations (>= 1).
        seed: seed of ``numpy.random.default_rng``.
        prefix: name prefix (default ``"blg"`` / ``"mos2"``).
        monolayer_fraction, supercell_fraction: expected fractions of monolayer and
            supercell (sqrt3, 2x2) frames among the random ones.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if material not in LAYERS:
        raise ValueError(f"unknown material {material!r}; known: {sorted(LAYERS)}")
    spec = LAYERS[material]
    prefix = prefix or {"graphene": "blg", "mos2": "mos2"}.get(material, material)
    rng = np.random.default_rng(seed)
    d_mid = float(np.mean(spec.distance_range))
    plan: list[dict] = []
    for orient in spec.orientations:
        for reg in ("AA", "AB", "SP"):
            plan.append(dict(kind="bilayer", registry=reg, orientation=orient,
                             shift=list(NAMED_SHIFTS[reg]), distance=d_mid, strain=[[0, 0], [0, 0]],
                             supercell="1x1", rattle=0.0, twist_deg=0.0))
    plan.append(dict(kind="monolayer", registry=None, orientation="R", shift=[0.0, 0.0],
                     distance=d_mid, strain=[[0, 0], [0, 0]], supercell="1x1", rattle=0.0,
                     twist_deg=0.0))
    plan = plan[:n]
    while len(plan) < n:
        u = rng.random()
        mono = u < monolayer_fraction
        sc = "1x1"
        if rng.random() < supercell_fraction:
            sc = "sqrt3" if rng.random() < 0.7 else "2x2"
        shift = rng.random(2)
        dist = rng.uniform(*spec.distance_range)
        e_b = rng.uniform(-max_strain, max_strain)
        e_u = rng.uniform(-max_strain / 2, max_strain / 2)
        e_s = rng.uniform(-max_strain / 2, max_strain / 2)
        strain = [[e_b + e_u, e_s], [e_s, e_b - e_u]]
        orient = spec.orientations[int(rng.integers(len(spec.orientations)))]
        rat = rng.uniform(0.0, rattle_supercell if sc != "1x1" else rattle_primitive)
        tw = rng.uniform(-max_twist_deg, max_twist_deg) if (sc != "1x1" and not mono) else 0.0
        plan.append(dict(kind="monolayer" if mono else "bilayer", registry=None, orientation=orient,
                         shift=[float(x) for x in shift], distance=float(dist), strain=strain,
                         supercell=sc, rattle=float(rat), twist_deg=float(tw),
                         rattle_seed=int(rng.integers(2**31))))
    out = []
    for idx, p in enumerate(plan):
        atoms = build_bilayer(material, shift=tuple(p["shift"]), distance=p["distance"],
                              orientation=p["orientation"], strain=np.array(p["strain"], float),
                              supercell=p["supercell"], monolayer=p["kind"] == "monolayer")
        if p["twist_deg"]:
            top = atoms.arrays["layer"] == 1
            centre = atoms.cell[:2, :2].sum(axis=0) / 2
            t = np.radians(p["twist_deg"])
            rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
            atoms.positions[top, :2] = (atoms.positions[top, :2] - centre) @ rot.T + centre
        if p["rattle"] > 0:
            r2 = np.random.default_rng(p["rattle_seed"])
            atoms.positions += r2.normal(0.0, p["rattle"], size=(len(atoms), 3))
        _wrap_inplane(atoms)
        dmin = _min_distance(atoms)
        if dmin < 0.8:
            raise RuntimeError(f"configuration {idx} has atoms {dmin:.2f} A apart")
        p = dict(p, material=material, seed=seed, index=idx, min_distance=dmin)
        out.append(Configuration(f"{prefix}_{idx:04d}", atoms, p))
    return out


#: fractional top-layer shifts of the default registry scan: the AA -> AB -> SP diagonal
#: (s, s) at s = 0, 1/6, 1/4, 1/3, 5/12, 1/2 (edges AA-AB and AB-SP of the irreducible
#: registry triangle AA (0, 0) - AB (1/3, 1/3) - SP (1/2, 0) of a parallel (R) bilayer), the
#: midpoint of its third edge AA-SP and its centroid
SCAN_SHIFTS: tuple[tuple[float, float], ...] = (
    (0.0, 0.0), (1 / 6, 1 / 6), (1 / 4, 1 / 4), (1 / 3, 1 / 3), (5 / 12, 5 / 12), (0.5, 0.5),
    (0.25, 0.0), (5 / 18, 1 / 9))


def registry_scan(
    material: str,
    distances: tuple[float, ...] | list[float],
    *,
    shifts: tuple[tuple[float, float], ...] | list | None = None,
    prefix: str | None = None,
    first_index: int = 0,
) -> list[Configuration]:
    """Unstrained, unrattled bilayers on a grid of registries x interlayer distances.

    These frames pin down what relaxation of a twisted bilayer feeds on: the stacking
    energy landscape (AA above SP above AB), its in-plane gradient (the layer forces
    between the high-symmetry points) and the binding curve at each registry.

    Args:
        material: key of :data:`LAYERS`.
        distances: interlayer distances (see :class:`LayerSpec`), outer loop, in this order,
            so the first distance is complete before the next starts.
        shifts: fractional top-layer shifts (default :data:`SCAN_SHIFTS`); every orientation
            of the material is scanned.
        prefix: name prefix (default ``"blgscan"`` / ``"mos2scan"``).
        first_index: number of the first frame's name, so that a scan extending an earlier one
            (more distances, e.g. the tail of the binding curve) continues its names.
    """
    if material not in LAYERS:
        raise ValueError(f"unknown material {material!r}; known: {sorted(LAYERS)}")
    if len(distances) == 0:
        raise ValueError("registry scan needs at least one distance")
    spec = LAYERS[material]
    shifts = SCAN_SHIFTS if shifts is None else tuple(tuple(map(float, s)) for s in shifts)
    if len(shifts) == 0 or any(len(s) != 2 for s in shifts):
        raise ValueError("each shift must be a pair (f1, f2), and at least one is needed")
    if first_index < 0:
        raise ValueError(f"first_index must be >= 0, got {first_index}")
    prefix = prefix or {"graphene": "blgscan", "mos2": "mos2scan"}.get(material, f"{material}scan")
    named = {tuple(np.round(v, 6)): k for k, v in NAMED_SHIFTS.items()}
    named.update({(0.0, 0.5): "SP", (0.5, 0.5): "SP"})  # the three equivalent saddle points
    out: list[Configuration] = []
    for dist in distances:
        for orient in spec.orientations:
            for s in shifts:
                atoms = build_bilayer(material, shift=s, distance=float(dist), orientation=orient)
                reg = named.get(tuple(np.round(np.mod(s, 1.0), 6))) if orient == "R" else None
                p = dict(kind="bilayer", registry=reg, orientation=orient, shift=list(s),
                         distance=float(dist), strain=[[0, 0], [0, 0]], supercell="1x1",
                         rattle=0.0, twist_deg=0.0, material=material, scan=True,
                         index=first_index + len(out), min_distance=_min_distance(atoms))
                out.append(Configuration(f"{prefix}_{first_index + len(out):04d}", atoms, p))
    return out
