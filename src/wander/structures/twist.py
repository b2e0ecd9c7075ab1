"""Commensurate twisted bilayers (homo- and hetero-bilayers) as ASE ``Atoms``.

Construction: start from an untwisted bilayer in the requested stacking, then rotate the top
layer counter-clockwise about a vertical axis through ``center`` (a point given in
fractional coordinates of the bottom primitive cell: ``"atom"`` = (0, 0), the A/B/metal
site; ``"hexagon"`` = (2/3, 2/3), the hexagon centre / hollow site).  For a hetero-bilayer
the top layer is also scaled isotropically so both layers share the moire cell; the same
fractional point of both lattices sits on the rotation axis.

Every site is generated at once from the integer coset representatives of the supercell
(Hermite normal form) and wrapped into the half-open cell, so each atom appears exactly
once and the cost is linear in the number of atoms.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from wander.structures.bilayers import (
    STACKINGS,
    as_layer,
    check_primitive,
    stacked_basis,
    vertical_placement,
)
from wander.structures.commensurate import (
    closest_pair,
    hexagonal_supercell,
    supercell_matrices,
    twist_angle,
)
from wander.structures.hetero import match_lattices, vector_match
from wander.structures.lattice import (
    CELL_RTOL,
    centre_slab,
    lattice_points_in_supercell,
    primitive_hexagonal,
    slab_cell,
)

CENTERS: dict[str, tuple[float, float]] = {"atom": (0.0, 0.0), "hexagon": (2 / 3, 2 / 3)}


def _center(center) -> np.ndarray:
    if isinstance(center, str):
        if center not in CENTERS:
            raise ValueError(f"center must be one of {tuple(CENTERS)} or (fx, fy), got {center!r}")
        return np.array(CENTERS[center])
    c = np.asarray(center, dtype=float)
    if c.shape != (2,) or not np.all(np.isfinite(c)):
        raise ValueError(f"center must be 'atom', 'hexagon' or two fractional coordinates, got {center!r}")
    return c


def _rotation_and_strain(a0: np.ndarray, a1: np.ndarray) -> tuple[float, float]:
    """Angle (degrees) and relative length change taking in-plane vector a0 to a1."""
    cross = a0[0] * a1[1] - a0[1] * a1[0]
    return float(np.degrees(np.arctan2(cross, a0 @ a1))), float(np.linalg.norm(a1) / np.linalg.norm(a0) - 1)


def twisted_bilayer(
    bottom: Atoms | str = "graphene",
    angle: float | None = None,
    m: int | None = None,
    n: int | None = None,
    top: Atoms | str | None = None,
    *,
    top_mn: tuple[int, int] | None = None,
    distance: float | None = None,
    vacuum: float = 20.0,
    center="atom",
    stacking: str = "AA",
    max_strain: float = 0.001,
    angle_tol: float = 0.01,
    max_atoms: int = 2_000_000,
) -> Atoms:
    """Commensurate twisted bilayer in its moire supercell.

    Parameters
    ----------
    bottom : ase.Atoms or str
        Bottom primitive hexagonal monolayer or material name ("graphene", "hbn", "mos2", ...).
    angle : float, optional
        Requested twist (degrees, counter-clockwise).  Homobilayer: the smallest commensurate
        cell within ``angle_tol`` is used (closest angle among equal sizes); the actual angle
        is in ``info["angle"]``.  Hetero-bilayer: the smallest coincidence cell within
        ``angle_tol`` and ``max_strain`` (``angle=0`` allowed: aligned layers).
    m, n : int, optional
        Commensurate indices instead of ``angle``: supercell vector m a1 + n a2 of the bottom
        layer (homobilayer: coprime, twist > 0 for n > m; hetero: also pass ``top_mn``).
    top : ase.Atoms or str, optional
        Top monolayer; default a copy of ``bottom``.
    top_mn : (int, int), optional
        Hetero-bilayer only: the top-layer vector p a1 + q a2 matched to m a1 + n a2.
    distance : float, optional
        Vertical distance between the layers' mean planes (Angstrom); default from ``MATERIALS``.
    vacuum : float
        Vacuum (Angstrom); c = vacuum + slab thickness.
    center : {"atom", "hexagon"} or (float, float)
        Rotation axis position, fractional in the bottom primitive cell.
    stacking : {"AA", "AB", "BA", "AA'"}
        Stacking of the untwisted bilayer the rotation starts from.
    max_strain : float
        Hetero-bilayer: largest accepted |strain| of the top layer (fraction).
    angle_tol : float
        Largest accepted |actual - requested| angle (degrees).
    max_atoms : int
        Largest cell considered when searching by angle.

    Returns
    -------
    ase.Atoms
        Bottom atoms first; ``arrays["layer"]`` 0/1; slab centred at z = 0.  ``info``:
        ``angle`` (degrees), ``m``, ``n``, ``m_top``, ``n_top`` (matched top vector),
        ``strain`` (top layer, relative; 0 for homobilayers), ``stacking``, ``center`` (2,),
        ``distance``, ``material``/``top_material`` when known.

    Raises
    ------
    ValueError
        Inconsistent arguments, no commensurate cell within the tolerances, strain above
        ``max_strain``, non-hexagonal or non-primitive layers, interpenetrating layers.
    """
    bot = as_layer(bottom, "bottom")
    topl = bot.copy() if top is None else as_layer(top, "top")
    a_b, vec_b, frac_b = primitive_hexagonal(bot, "bottom")
    a_t, _, frac_t = primitive_hexagonal(topl, "top")
    check_primitive(frac_b, bot.numbers, "bottom")
    check_primitive(frac_t, topl.numbers, "top")
    if stacking not in STACKINGS:
        raise ValueError(f"stacking must be one of {STACKINGS}, got {stacking!r}")
    if (m is None) != (n is None):
        raise ValueError("pass both m and n")
    if (angle is None) == (m is None):
        raise ValueError("pass either angle or (m, n)")
    f_c = _center(center)
    homo = abs(a_t / a_b - 1.0) <= CELL_RTOL
    n_basis = (len(bot), len(topl))

    if homo:
        if top_mn is not None:
            raise ValueError("top_mn is only for hetero-bilayers (different lattice constants)")
        if m is None:
            m, n = closest_pair(angle, max_atoms, angle_tol, sum(n_basis))
        mat_b, mat_t = supercell_matrices(m, n)
        theta, strain = twist_angle(m, n), 0.0
        m_top, n_top = n, m
    else:
        if m is None:
            match = match_lattices(
                a_b, a_t, float(angle), n_basis=n_basis, max_strain=max_strain,
                angle_tol=angle_tol, max_atoms=max_atoms,
            )
            (m, n), (m_top, n_top) = match.bottom, match.top
        else:
            if top_mn is None:
                raise ValueError("hetero-bilayer with explicit (m, n) needs top_mn=(p, q)")
            m_top, n_top = (int(x) for x in top_mn)
        theta, strain = vector_match((m, n), (m_top, n_top), a_b, a_t)
        if not abs(strain) <= max_strain:
            raise ValueError(
                f"top layer strain {100 * strain:+.4f} % exceeds max_strain={100 * max_strain:.4f} % "
                f"(a_bottom={a_b:.4f}, a_top={a_t:.4f} Angstrom)"
            )
        mat_b, mat_t = hexagonal_supercell(m, n), hexagonal_supercell(m_top, n_top)

    cell2 = mat_b @ vec_b  # (2, 2) moire cell rows, exact lattice vectors of the bottom layer
    vec_t = np.linalg.solve(mat_t.astype(float), cell2)  # top primitive vectors, rotated (+ strained)
    measured, measured_strain = _rotation_and_strain(vec_b[0] * (a_t / a_b), vec_t[0])
    if abs(measured - theta) > 1e-6 or abs(measured_strain - strain) > 1e-9:
        raise RuntimeError(f"internal: moire cell inconsistent ({measured} vs {theta} deg)")

    # top basis in its own (final) primitive vectors: the point f_c of both lattices coincides
    center_cart = f_c @ vec_b
    f_top = stacked_basis(frac_t, stacking) - f_c + np.linalg.solve(vec_t.T, center_cart)
    fr_b, ib = lattice_points_in_supercell(mat_b, frac_b)
    fr_t, it = lattice_points_in_supercell(mat_t, f_top)

    z_b, z_t, distance = vertical_placement(bot, topl, distance)
    pos = np.empty((len(ib) + len(it), 3))
    pos[:, :2] = np.concatenate([fr_b, fr_t]) @ cell2
    pos[:, 2] = np.concatenate([z_b[ib], z_t[it]])
    pos = centre_slab(pos)
    atoms = Atoms(
        numbers=np.concatenate([bot.numbers[ib], topl.numbers[it]]),
        positions=pos,
        cell=slab_cell(cell2, pos, vacuum),
        pbc=(True, True, False),
    )
    atoms.arrays["layer"] = np.repeat([0, 1], [len(ib), len(it)])
    atoms.info.update(
        angle=float(theta),
        m=int(m),
        n=int(n),
        m_top=int(m_top),
        n_top=int(n_top),
        strain=float(strain),
        stacking=stacking,
        center=f_c,
        distance=distance,
    )
    for key, layer in (("material", bot), ("top_material", topl)):
        if "material" in layer.info:
            atoms.info[key] = layer.info["material"]
    return atoms
