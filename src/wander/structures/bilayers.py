"""Untwisted bilayers with named stackings and arbitrary in-plane shifts.

Stackings describe where the top layer sits relative to the bottom one, in fractional
coordinates of the (primitive, hexagonal) bottom cell.  With sublattice A at (0, 0) and
B at (1/3, 1/3) (graphene C/C, hBN B/N, MX2 M/X):

``"AA"``   top = bottom translated vertically (A over A, B over B).
``"AB"``   top shifted by (1/3, 1/3): top A over bottom B, top B over a hexagon centre (Bernal).
``"BA"``   top shifted by (2/3, 2/3): top A over a hexagon centre, top B over bottom A.
``"AA'"``  top rotated by 180 degrees about z through the A-B bond centre: top A over bottom B
           and top B over bottom A (hBN: B over N; MX2: M over X, the bulk 2H stacking).

``distance`` is the vertical separation between the mean planes (mean z) of the two layers;
for MX2 that is the M-M distance.  The stacked slab is centred at z = 0.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from wander.structures.lattice import (
    CELL_RTOL,
    centre_slab,
    primitive_hexagonal,
    slab_cell,
    wrap_fractional,
)
from wander.structures.monolayers import default_distance, monolayer

STACKINGS: tuple[str, ...] = ("AA", "AB", "BA", "AA'")


def as_layer(layer: Atoms | str, what: str) -> Atoms:
    """Monolayer from an ``Atoms`` (returned as a copy) or a material name."""
    if isinstance(layer, str):
        return monolayer(layer)
    if not isinstance(layer, Atoms):
        raise TypeError(f"{what} must be ase.Atoms or a material name, got {type(layer).__name__}")
    return layer.copy()


def stacked_basis(frac: np.ndarray, stacking: str, shift=None) -> np.ndarray:
    """Fractional in-plane basis of the top layer for a named stacking plus an extra shift.

    Parameters
    ----------
    frac : numpy.ndarray, shape (n_basis, 2)
        Basis of the unshifted layer, fractional in its primitive vectors.
    stacking : {"AA", "AB", "BA", "AA'"}
    shift : sequence of 2 floats, optional
        Extra fractional shift (f1, f2) applied after the stacking.

    Returns
    -------
    numpy.ndarray, shape (n_basis, 2)
        Unwrapped fractional coordinates.
    """
    if stacking not in STACKINGS:
        raise ValueError(f"stacking must be one of {STACKINGS}, got {stacking!r}")
    f = np.array(frac, dtype=float).reshape(-1, 2)
    if stacking == "AB":
        f = f + 1 / 3
    elif stacking == "BA":
        f = f + 2 / 3
    elif stacking == "AA'":
        f = 1 / 3 - f  # 180-degree rotation about the A-B bond centre (1/6, 1/6)
    if shift is not None:
        s = np.asarray(shift, dtype=float)
        if s.shape != (2,) or not np.all(np.isfinite(s)):
            raise ValueError(f"shift must be two finite fractional coordinates, got {shift!r}")
        f = f + s
    return f


def check_primitive(frac: np.ndarray, numbers: np.ndarray, what: str, tol: float = 1e-5) -> None:
    """Raise ``ValueError`` if a layer has a pure translation symmetry (i.e. is a supercell)."""
    f = np.asarray(frac, dtype=float)
    cand = f[numbers == numbers[0]] - f[0]
    cand = cand[np.linalg.norm(cand - np.round(cand), axis=1) > tol]
    if len(cand) == 0:
        return
    # (n_cand, n, n): does translating every atom by t land on an atom of the same species?
    d = f[None, :, None, :] + cand[:, None, None, :] - f[None, None, :, :]
    hit = (np.abs(d - np.round(d)).max(axis=-1) < tol) & (numbers[:, None] == numbers[None, :])
    if np.any(hit.any(axis=2).all(axis=1)):
        raise ValueError(f"{what} is not a primitive cell; named stackings need primitive monolayers")


def vertical_placement(
    bottom: Atoms, top: Atoms, distance: float | None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Basis z of both layers with their mean planes ``distance`` apart.

    Parameters
    ----------
    bottom, top : ase.Atoms
        Primitive monolayers.
    distance : float or None
        Distance between the layers' mean planes (Angstrom); None takes the ``MATERIALS``
        default (mean of the two layers' defaults).

    Returns
    -------
    z_bottom : numpy.ndarray, shape (len(bottom),)
        Bottom layer z, mean plane at 0 (Angstrom).
    z_top : numpy.ndarray, shape (len(top),)
        Top layer z, mean plane at ``distance``.
    distance : float
    """
    if distance is None:
        d_b, d_t = default_distance(bottom), default_distance(top)
        if d_b is None or d_t is None:
            raise ValueError("no default interlayer distance for these layers: pass distance=")
        distance = 0.5 * (d_b + d_t)
    distance = float(distance)
    z_b = bottom.positions[:, 2] - bottom.positions[:, 2].mean()
    z_t = top.positions[:, 2] - top.positions[:, 2].mean() + distance
    if not z_t.min() > z_b.max():
        raise ValueError(
            f"distance={distance} Angstrom makes the layers interpenetrate "
            "(the top layer's lowest atom must lie above the bottom layer's highest)"
        )
    return z_b, z_t, distance


def layer_planes(atoms: Atoms) -> np.ndarray:
    """Mean z (Angstrom) of each layer, shape (n_layers,), from ``atoms.arrays["layer"]``."""
    if "layer" not in atoms.arrays:
        raise ValueError('atoms has no "layer" array')
    layer = atoms.arrays["layer"]
    z = atoms.positions[:, 2]
    return np.array([z[layer == k].mean() for k in np.unique(layer)])


def bilayer(
    bottom: Atoms | str,
    top: Atoms | str | None = None,
    stacking: str = "AB",
    shift=None,
    distance: float | None = None,
    vacuum: float = 20.0,
    max_strain: float = 0.0,
) -> Atoms:
    """Untwisted bilayer of two primitive hexagonal monolayers.

    Parameters
    ----------
    bottom : ase.Atoms or str
        Bottom monolayer (primitive hexagonal cell) or a material name ("graphene", "hbn",
        "mos2", ...).
    top : ase.Atoms or str, optional
        Top monolayer; default a copy of ``bottom``.  If its lattice constant differs, it is
        strained isotropically onto the bottom cell (see ``max_strain``).
    stacking : {"AA", "AB", "BA", "AA'"}
        Registry of the top layer (see module docstring).
    shift : sequence of 2 floats, optional
        Extra in-plane shift (f1, f2) of the top layer, fractional in the bottom cell vectors,
        applied after the stacking.
    distance : float, optional
        Vertical distance between the mean planes of the layers (Angstrom).  Default: the
        ``MATERIALS`` value (mean of the two for a hetero-bilayer).
    vacuum : float
        Vacuum (Angstrom); c = vacuum + slab thickness.
    max_strain : float
        Largest accepted |strain| of the top layer, as a fraction (0.02 = 2 %).

    Returns
    -------
    ase.Atoms
        Bottom atoms first; ``arrays["layer"]`` 0 (bottom) / 1 (top); slab centred at z = 0.
        ``info``: ``stacking``, ``shift`` (2,), ``distance``, ``strain`` (top layer, relative),
        ``material`` and ``top_material`` when known.
    """
    bot = as_layer(bottom, "bottom")
    topl = bot.copy() if top is None else as_layer(top, "top")
    a_b, vec_b, frac_b = primitive_hexagonal(bot, "bottom")
    a_t, _, frac_t = primitive_hexagonal(topl, "top")
    if stacking != "AA" or shift is not None:
        check_primitive(frac_b, bot.numbers, "bottom")
        check_primitive(frac_t, topl.numbers, "top")
    strain = a_b / a_t - 1.0
    if abs(strain) <= CELL_RTOL:
        strain = 0.0
    elif not abs(strain) <= max_strain:
        raise ValueError(
            f"lattice mismatch: top layer would be strained by {100 * strain:+.3f} % "
            f"(a_bottom={a_b:.4f}, a_top={a_t:.4f} Angstrom) > max_strain={100 * max_strain:.3f} %"
        )
    z_b, z_t, distance = vertical_placement(bot, topl, distance)
    f_top = stacked_basis(frac_t, stacking, shift)
    frac = wrap_fractional(np.concatenate([frac_b, f_top]))
    pos = np.zeros((len(frac), 3))
    pos[:, :2] = frac @ vec_b
    pos[:, 2] = np.concatenate([z_b, z_t])
    pos = centre_slab(pos)
    atoms = Atoms(
        numbers=np.concatenate([bot.numbers, topl.numbers]),
        positions=pos,
        cell=slab_cell(vec_b, pos, vacuum),
        pbc=(True, True, False),
    )
    atoms.arrays["layer"] = np.repeat([0, 1], [len(bot), len(topl)])
    atoms.info.update(
        stacking=stacking,
        shift=np.zeros(2) if shift is None else np.asarray(shift, dtype=float),
        distance=float(distance),
        strain=float(strain),
    )
    for key, layer in (("material", bot), ("top_material", topl)):
        if "material" in layer.info:
            atoms.info[key] = layer.info["material"]
    return atoms
