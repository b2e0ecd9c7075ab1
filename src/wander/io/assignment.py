"""Host atom and orbital label of every Wannier function of a ``.win`` file."""

from __future__ import annotations

import numpy as np
from ase.geometry import find_mic

from .errors import FormatError
from .win import WinData

__all__ = ["SITE_TOLERANCE", "orbital_assignment"]

#: Largest distance (Angstrom) between an ``f=``/``c=`` projection site and the atom it is assigned to.
SITE_TOLERANCE = 0.05


def _site_atom(win: WinData, site: str, line: int) -> int:
    """Index of the atom sitting on an ``f=``/``c=`` projection site."""
    xyz = np.array([float(v) for v in site[2:].split(",")])
    position = xyz @ win.atoms.cell.array if site.startswith("f=") else xyz
    _, dist = find_mic(win.atoms.positions - position, win.atoms.cell, win.atoms.pbc)
    near = np.flatnonzero(dist <= SITE_TOLERANCE)
    if near.size != 1:
        raise ValueError(
            f"{win.path}:{line}: projection site {site} is not on an atom (nearest at "
            f"{dist.min():.3f} Angstrom, tolerance {SITE_TOLERANCE}); its orbitals have no host atom"
        )
    return int(near[0])


def orbital_assignment(
    win: WinData, centres: np.ndarray | None = None, tol: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Host atom and orbital label of each Wannier function, in Wannier90 order.

    Wannier90 numbers the functions by looping over the projection lines; for
    each line over the matching atoms in atoms-block order; for each atom over
    the line's orbitals sorted by (l, mr) (``s``; ``pz, px, py``;
    ``dz2, dxz, dyz, dx2-y2, dxy``).

    Parameters
    ----------
    win : WinData
        From :func:`wander.io.read_win`.
    centres : numpy.ndarray, optional
        (num_wann, 3) Wannier centres in Angstrom (e.g. from
        :func:`wander.io.read_centres_xyz`).  When given, each centre must lie
        within ``tol`` of its host atom, minimum image over the cell.
    tol : float
        Largest allowed centre - atom distance, Angstrom.

    Returns
    -------
    orbital_atoms : numpy.ndarray
        (num_wann,) int64 index of the host atom in ``win.atoms``.
    orbital_labels : numpy.ndarray
        (num_wann,) str Wannier90 orbital names, e.g. ``"pz"``, ``"dxy"``.

    Raises
    ------
    FormatError
        No projections, or projections that do not expand to ``num_wann`` functions.
    ValueError
        A ``f=``/``c=`` site with no atom on it, ``centres`` of the wrong shape,
        or a centre farther than ``tol`` from its host atom (the message names
        the Wannier function).
    """
    lines = win.projection_lines or (0,) * len(win.projections)
    if not win.projections:
        raise FormatError(win.path, 0, "no projections: cannot assign Wannier functions to atoms")
    labels_lower = np.char.lower(
        np.asarray(win.atoms.arrays.get("w90_label", win.atoms.get_chemical_symbols())).astype(str)
    )
    atom_parts: list[np.ndarray] = []
    label_parts: list[np.ndarray] = []
    for (site, orbitals), line in zip(win.projections, lines):
        if site[:2] in ("f=", "c="):
            hosts = np.array([_site_atom(win, site, line)])
        else:
            hosts = np.flatnonzero(labels_lower == site.lower())
            if hosts.size == 0:
                raise FormatError(win.path, line, f"projection site {site!r} matches no atom")
        atom_parts.append(np.repeat(hosts, len(orbitals)))
        label_parts.append(np.tile(np.array(orbitals), hosts.size))
    orbital_atoms = np.concatenate(atom_parts).astype(np.int64)
    orbital_labels = np.concatenate(label_parts)
    if orbital_atoms.size != win.num_wann:
        raise FormatError(
            win.path,
            lines[0] if lines else 0,
            f"projections expand to {orbital_atoms.size} Wannier functions but num_wann = {win.num_wann}",
        )
    if centres is not None:
        centres = np.asarray(centres, dtype=np.float64)
        if centres.shape != (win.num_wann, 3):
            raise ValueError(f"centres must have shape ({win.num_wann}, 3), got {centres.shape}")
        _, dist = find_mic(centres - win.atoms.positions[orbital_atoms], win.atoms.cell, win.atoms.pbc)
        far = np.flatnonzero(~(dist <= tol))
        if far.size:
            w = int(far[0])
            a = int(orbital_atoms[w])
            raise ValueError(
                f"Wannier function {w + 1} ({orbital_labels[w]} on atom {a}, "
                f"{win.atoms.get_chemical_symbols()[a]}) has its centre {dist[w]:.3f} Angstrom from the "
                f"atom (tolerance {tol}); {far.size} function(s) out of tolerance"
            )
    return orbital_atoms, orbital_labels
