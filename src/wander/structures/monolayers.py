"""Hexagonal monolayers: graphene, hBN and transition-metal dichalcogenides MX2.

Every builder returns a primitive cell in the package convention
(a1 = (a, 0, 0), a2 = (a/2, a*sqrt(3)/2, 0), a3 = (0, 0, c)), ``pbc=(True, True, False)``,
the slab centred at z = 0 and ``c = vacuum + slab thickness``.  The first atom (C, B or
the metal M) sits at the origin; ``atoms.arrays["layer"]`` is 0 for all atoms.
"""

from __future__ import annotations

import re

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from wander.structures.lattice import centre_slab, hexagonal_cell

#: Defaults per material.  ``a``: in-plane lattice constant (Angstrom); ``thickness``:
#: vertical extent of one layer (X-X distance for MX2, Angstrom); ``distance``: default
#: interlayer distance between the mean planes of two stacked layers (Angstrom; the
#: M-M distance for MX2); ``formula`` and, for MX2, ``kind`` ("2H" or "1T").
#: Graphene/hBN: experimental; MX2 ``a`` and ``thickness``: PBE monolayer values,
#: ``distance``: half the experimental c of the bulk 2H crystal.
MATERIALS: dict[str, dict] = {
    "graphene": {"formula": "C2", "a": 2.46, "thickness": 0.0, "distance": 3.35},
    "hbn": {"formula": "BN", "a": 2.504, "thickness": 0.0, "distance": 3.33},
    "mos2": {"formula": "MoS2", "a": 3.19, "thickness": 3.13, "distance": 6.15, "kind": "2H"},
    "ws2": {"formula": "WS2", "a": 3.18, "thickness": 3.14, "distance": 6.16, "kind": "2H"},
    "mose2": {"formula": "MoSe2", "a": 3.32, "thickness": 3.34, "distance": 6.46, "kind": "2H"},
    "wse2": {"formula": "WSe2", "a": 3.32, "thickness": 3.36, "distance": 6.48, "kind": "2H"},
}

_MX2_RE = re.compile(r"^([A-Z][a-z]?)([A-Z][a-z]?)2$")


def _layer(
    symbols: list[str], frac: np.ndarray, z: np.ndarray, a: float, vacuum: float, material: str
) -> Atoms:
    if not a > 0:
        raise ValueError(f"lattice constant a must be positive, got {a}")
    if not vacuum > 0:
        raise ValueError(f"vacuum must be positive, got {vacuum}")
    cell = hexagonal_cell(a, vacuum + float(np.ptp(z)))
    pos = np.zeros((len(symbols), 3))
    pos[:, :2] = np.asarray(frac, dtype=float) @ cell[:2, :2]
    pos[:, 2] = z
    atoms = Atoms(symbols, positions=centre_slab(pos), cell=cell, pbc=(True, True, False))
    atoms.arrays["layer"] = np.zeros(len(atoms), dtype=int)
    atoms.info["material"] = material
    return atoms


def graphene(a: float = 2.46, vacuum: float = 20.0) -> Atoms:
    """Graphene primitive cell: C at fractional (0, 0) and (1/3, 1/3).

    Parameters
    ----------
    a : float
        Lattice constant (Angstrom); C-C bond length is a / sqrt(3).
    vacuum : float
        Vacuum thickness (Angstrom); c = vacuum.

    Returns
    -------
    ase.Atoms
        2 atoms, ``info["material"] = "graphene"``.
    """
    return _layer(["C", "C"], [[0, 0], [1 / 3, 1 / 3]], np.zeros(2), a, vacuum, "graphene")


def hbn(a: float = 2.504, vacuum: float = 20.0) -> Atoms:
    """Hexagonal boron nitride primitive cell: B at (0, 0), N at (1/3, 1/3) (fractional).

    Parameters
    ----------
    a : float
        Lattice constant (Angstrom).
    vacuum : float
        Vacuum thickness (Angstrom); c = vacuum.

    Returns
    -------
    ase.Atoms
        2 atoms (B, N), ``info["material"] = "hbn"``.
    """
    return _layer(["B", "N"], [[0, 0], [1 / 3, 1 / 3]], np.zeros(2), a, vacuum, "hbn")


def mx2(
    formula: str = "MoS2",
    a: float | None = None,
    thickness: float | None = None,
    kind: str | None = None,
    vacuum: float = 20.0,
) -> Atoms:
    """Transition-metal dichalcogenide monolayer MX2 (primitive cell, 3 atoms).

    M sits at fractional (0, 0, z=0).  ``kind="2H"`` (trigonal prismatic): both X at
    (1/3, 1/3), z = +/- thickness/2.  ``kind="1T"`` (octahedral): X at (1/3, 1/3, +t/2) and
    (2/3, 2/3, -t/2).  Atom order: M, upper X, lower X.

    Parameters
    ----------
    formula : str
        Chemical formula "MX2" (e.g. "MoS2", "WSe2", "NbSe2").
    a : float, optional
        Lattice constant (Angstrom); default from :data:`MATERIALS` for known formulas.
    thickness : float, optional
        Vertical X-X distance (Angstrom); default from :data:`MATERIALS`.
    kind : {"2H", "1T"}, optional
        Polytype of the layer; default "2H".
    vacuum : float
        Vacuum thickness (Angstrom); c = vacuum + thickness.

    Returns
    -------
    ase.Atoms
        ``info["material"]`` is the lower-case formula.
    """
    match = _MX2_RE.match(formula)
    if match is None or not all(s in chemical_symbols[1:] for s in match.groups()):
        raise ValueError(f"formula must look like 'MoS2' (metal, chalcogen, '2'), got {formula!r}")
    metal, chalc = match.groups()
    defaults = MATERIALS.get(formula.lower(), {})
    a = defaults.get("a") if a is None else a
    thickness = defaults.get("thickness") if thickness is None else thickness
    kind = defaults.get("kind", "2H") if kind is None else kind
    if a is None or thickness is None:
        raise ValueError(f"no defaults for {formula}: pass a= and thickness= (Angstrom)")
    if thickness < 0:
        raise ValueError(f"thickness must be >= 0, got {thickness}")
    if kind == "2H":
        frac = [[0, 0], [1 / 3, 1 / 3], [1 / 3, 1 / 3]]
    elif kind == "1T":
        frac = [[0, 0], [1 / 3, 1 / 3], [2 / 3, 2 / 3]]
    else:
        raise ValueError(f"kind must be '2H' or '1T', got {kind!r}")
    z = np.array([0.0, thickness / 2, -thickness / 2])
    return _layer([metal, chalc, chalc], frac, z, a, vacuum, formula.lower())


def monolayer(material: str, vacuum: float = 20.0, **kwargs) -> Atoms:
    """Monolayer by name: a key of :data:`MATERIALS` or any "MX2" formula.

    Parameters
    ----------
    material : str
        "graphene", "hbn", "mos2", "ws2", "mose2", "wse2" (case-insensitive) or an MX2
        formula such as "NbSe2" (then ``a`` and ``thickness`` are required).
    vacuum : float
        Vacuum thickness (Angstrom).
    **kwargs
        Passed to :func:`graphene`, :func:`hbn` or :func:`mx2` (``a``, ``thickness``, ``kind``).

    Returns
    -------
    ase.Atoms
    """
    if not isinstance(material, str):
        raise TypeError(f"material must be a string, got {type(material).__name__}")
    key = material.lower()
    if key == "graphene":
        return graphene(vacuum=vacuum, **kwargs)
    if key in ("hbn", "bn"):
        return hbn(vacuum=vacuum, **kwargs)
    if key in MATERIALS:
        return mx2(MATERIALS[key]["formula"], vacuum=vacuum, **kwargs)
    if _MX2_RE.match(material):
        return mx2(material, vacuum=vacuum, **kwargs)
    raise ValueError(f"unknown material {material!r}; known: {', '.join(MATERIALS)} or an MX2 formula")


def default_distance(atoms: Atoms) -> float | None:
    """Default interlayer distance for a monolayer built here (``MATERIALS``), else None."""
    entry = MATERIALS.get(str(atoms.info.get("material", "")).lower())
    return None if entry is None else float(entry["distance"])
