"""Wannier90 ``seedname_centres.xyz``: Wannier centres and atoms in xyz format.

Layout (``write_xyz = true``)::

    line 1     total number of entries (num_wann + number of atoms)
    line 2     comment
    then       "X  x y z" for each Wannier centre, followed by "Symbol  x y z" for each atom

Coordinates are Cartesian Angstrom.
"""

from __future__ import annotations

import os

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from .errors import FormatError
from .numeric_text import decode, parse_count, read_bytes

__all__ = ["read_centres_xyz"]


def read_centres_xyz(path: str | os.PathLike) -> tuple[np.ndarray, Atoms]:
    """Read a Wannier90 ``seedname_centres.xyz`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    centres : numpy.ndarray
        (num_wann, 3) float64 Wannier centres, Cartesian Angstrom, in Wannier order.
    atoms : ase.Atoms
        The atoms listed after the centres (no cell: the xyz file carries none).

    Raises
    ------
    FormatError
        Wrong entry count, lines without a symbol and three numbers, an unknown
        chemical symbol, an ``X`` entry after the first atom, or no ``X`` entry.
    """
    lines = read_bytes(path).split(b"\n")
    n_entries = parse_count(path, lines[0], "entries")
    body = lines[2 : 2 + n_entries]
    if len(body) < n_entries or (body and not body[-1].strip()):
        n_found = sum(1 for b in body if b.strip())
        raise FormatError(
            path, 3 + n_found, f"file truncated: line 1 announces {n_entries} entries, found {n_found}"
        )
    extra = [k for k, b in enumerate(lines[2 + n_entries :]) if b.strip()]
    if extra:
        raise FormatError(path, 3 + n_entries + extra[0], f"unexpected data after the {n_entries} entries")

    symbols: list[str] = []
    coords = np.empty((n_entries, 3), dtype=np.float64)
    for k, line in enumerate(body):
        fields = line.split()
        if len(fields) != 4:
            raise FormatError(path, k + 3, f"expected 'symbol x y z', got {decode(line)!r}")
        try:
            coords[k] = [float(f) for f in fields[1:]]
        except ValueError:
            raise FormatError(path, k + 3, f"non-numeric coordinate in {decode(line)!r}") from None
        symbols.append(fields[0].decode("ascii", "replace"))
    if not np.all(np.isfinite(coords)):
        k = int(np.flatnonzero(~np.all(np.isfinite(coords), axis=1))[0])
        raise FormatError(path, k + 3, "non-finite coordinate")

    is_centre = np.array([s.upper() == "X" for s in symbols])
    num_wann = int(np.argmin(is_centre)) if not is_centre.all() else n_entries
    if num_wann == 0:
        raise FormatError(path, 3, "no Wannier centre ('X' entry) before the atoms")
    late = np.flatnonzero(is_centre[num_wann:])
    if late.size:
        raise FormatError(path, 3 + num_wann + int(late[0]), "'X' entry after the atoms")
    atom_symbols = [s[:1].upper() + s[1:].lower() for s in symbols[num_wann:]]
    for k, s in enumerate(atom_symbols):
        if s not in atomic_numbers:
            raise FormatError(path, 3 + num_wann + k, f"unknown chemical symbol {symbols[num_wann + k]!r}")
    atoms = Atoms(symbols=atom_symbols, positions=coords[num_wann:])
    return coords[:num_wann].copy(), atoms
