"""Wannier90 input file ``seedname.win``: cell, atoms, projections, keywords.

Syntax accepted (Wannier90 3.1): one ``key = value``, ``key : value`` or
``key value`` per line; comments start with ``!`` or ``#``; keywords and block
names are case-insensitive; blocks run from ``begin name`` to ``end name``.
``unit_cell_cart`` and ``atoms_cart`` may start with a ``bohr`` / ``ang`` line
(default Angstrom); ``projections`` may too, for ``c=`` sites.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from .errors import FormatError
from .orbitals import parse_angular

__all__ = ["BOHR_ANGSTROM", "WinData", "read_win"]

#: Bohr radius in Angstrom as used by Wannier90 3.1 (CODATA 2006, its default).
BOHR_ANGSTROM = 0.52917720859

_KEYVAL = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(?:[=:]\s*|\s+)(.*)$")
_TRUE = {"true", ".true.", "t", ".t."}
_FALSE = {"false", ".false.", "f", ".f."}
_PROJ_FIELDS = ("z", "x", "r", "zona")
_NUMBERED = ("num_wann", "num_bands", "mp_grid")


@dataclass(frozen=True)
class WinData:
    """Content of a ``seedname.win`` file that wander uses.

    Attributes
    ----------
    cell : numpy.ndarray
        (3, 3) cell vectors as rows, Angstrom.
    atoms : ase.Atoms
        Atoms from ``atoms_frac`` or ``atoms_cart`` with this cell, ``pbc=True``
        (Wannier90 calculations are 3D periodic).  ``atoms.arrays["w90_label"]``
        keeps the labels as written (e.g. ``"C1"``), which projections refer to.
    projections : list of (str, list of str)
        One item per projection line: the site (an atom label, or
        ``"f=x,y,z"`` fractional / ``"c=x,y,z"`` Cartesian Angstrom) and its
        orbital labels in Wannier90 order, e.g. ``("Mo", ["dz2", "dxz", "dyz", "dx2-y2", "dxy"])``.
    num_wann : int
        Number of Wannier functions.
    num_bands : int or None
        ``num_bands`` if given.
    mp_grid : tuple of int or None
        ``mp_grid`` if given.
    keywords : dict of str to str
        Every other ``key = value`` (keys lower-case, values as written).
    path : str
        File the data was read from (used in error messages).
    projection_lines : tuple of int
        1-based line of each projection entry.
    """

    cell: np.ndarray
    atoms: Atoms
    projections: list[tuple[str, list[str]]]
    num_wann: int
    num_bands: int | None
    mp_grid: tuple[int, int, int] | None
    keywords: dict[str, str]
    path: str = "<win>"
    projection_lines: tuple[int, ...] = field(default=(), compare=False)


@dataclass
class _Block:
    line: int  # line of "begin"
    lines: list[tuple[int, str]]  # (line number, content) without comments


def _strip_comment(line: str) -> str:
    cut = min((i for i in (line.find("!"), line.find("#")) if i >= 0), default=len(line))
    return line[:cut].strip()


def _scan(path: str | os.PathLike, text: str) -> tuple[dict[str, tuple[int, str]], dict[str, _Block]]:
    """Split the file into keywords {key: (line, value)} and blocks {name: _Block}."""
    keywords: dict[str, tuple[int, str]] = {}
    blocks: dict[str, _Block] = {}
    current: tuple[str, _Block] | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw)
        if not line:
            continue
        words = line.split()
        head = words[0].lower()
        if head in ("begin", "end"):
            if len(words) != 2:
                raise FormatError(path, lineno, f"expected '{head} <block name>', got {line!r}")
            name = words[1].lower()
            if head == "begin":
                if current is not None:
                    raise FormatError(
                        path, lineno, f"block '{current[0]}' opened on line {current[1].line} is not closed"
                    )
                if name in blocks:
                    raise FormatError(path, lineno, f"block '{name}' given twice (first on line {blocks[name].line})")
                current = (name, _Block(lineno, []))
            else:
                if current is None or current[0] != name:
                    open_name = "none" if current is None else f"'{current[0]}'"
                    raise FormatError(path, lineno, f"'end {name}' does not close the open block ({open_name})")
                blocks[name] = current[1]
                current = None
            continue
        if current is not None:
            current[1].lines.append((lineno, line))
            continue
        match = _KEYVAL.match(line)
        if match is None or not match.group(2).strip():
            raise FormatError(path, lineno, f"expected 'key = value', got {line!r}")
        key = match.group(1).lower()
        if key in keywords:
            raise FormatError(path, lineno, f"keyword '{key}' given twice (first on line {keywords[key][0]})")
        keywords[key] = (lineno, match.group(2).strip())
    if current is not None:
        raise FormatError(path, current[1].line, f"block '{current[0]}' is not closed")
    return keywords, blocks


def _floats(path: str | os.PathLike, lineno: int, words: list[str], n: int, what: str) -> list[float]:
    if len(words) != n:
        raise FormatError(path, lineno, f"expected {n} numbers ({what}), got {' '.join(words)!r}")
    try:
        values = [float(w.lower().replace("d", "e")) for w in words]
    except ValueError:
        raise FormatError(path, lineno, f"non-numeric value in {' '.join(words)!r} ({what})") from None
    if not np.all(np.isfinite(values)):
        raise FormatError(path, lineno, f"non-finite value ({what})")
    return values


def _unit_scale(block: _Block) -> tuple[float, list[tuple[int, str]]]:
    """Leading 'bohr'/'ang' line of a block -> (scale to Angstrom, remaining lines)."""
    lines = block.lines
    if lines and lines[0][1].lower() in ("bohr", "ang"):
        return (BOHR_ANGSTROM if lines[0][1].lower() == "bohr" else 1.0), lines[1:]
    return 1.0, lines


def _read_cell(path: str | os.PathLike, blocks: dict[str, _Block]) -> np.ndarray:
    if "unit_cell_cart" not in blocks:
        raise FormatError(path, 0, "missing block 'unit_cell_cart'")
    block = blocks["unit_cell_cart"]
    scale, lines = _unit_scale(block)
    if len(lines) != 3:
        where = lines[3][0] if len(lines) > 3 else block.line
        raise FormatError(path, where, f"unit_cell_cart needs 3 lines of 3 numbers, found {len(lines)} lines")
    cell = np.array([_floats(path, n, line.split(), 3, "cell vector") for n, line in lines]) * scale
    if abs(np.linalg.det(cell)) < 1e-8:
        raise FormatError(path, block.line, "unit_cell_cart vectors are linearly dependent")
    return cell


def _symbol_of_label(path: str | os.PathLike, lineno: int, label: str) -> str:
    """Chemical symbol of a Wannier90 atom label ('C1' -> 'C', 'mo' -> 'Mo')."""
    match = re.match(r"[A-Za-z]{1,2}", label)
    if match is not None:
        letters = match.group(0)
        for cand in (letters[:2], letters[:1]):
            symbol = cand[:1].upper() + cand[1:].lower()
            if symbol in atomic_numbers and symbol != "X":
                return symbol
    raise FormatError(path, lineno, f"atom label {label!r} does not start with a chemical symbol")


def _read_atoms(path: str | os.PathLike, blocks: dict[str, _Block], cell: np.ndarray) -> Atoms:
    have = [b for b in ("atoms_frac", "atoms_cart") if b in blocks]
    if not have:
        raise FormatError(path, 0, "missing block 'atoms_frac' or 'atoms_cart'")
    if len(have) == 2:
        raise FormatError(path, blocks["atoms_cart"].line, "give either atoms_frac or atoms_cart, not both")
    name = have[0]
    block = blocks[name]
    scale, lines = _unit_scale(block) if name == "atoms_cart" else (1.0, block.lines)
    if not lines:
        raise FormatError(path, block.line, f"block '{name}' lists no atoms")
    labels, symbols, coords = [], [], []
    for lineno, line in lines:
        words = line.split()
        if len(words) != 4:
            raise FormatError(path, lineno, f"expected 'label x y z' in {name}, got {line!r}")
        labels.append(words[0])
        symbols.append(_symbol_of_label(path, lineno, words[0]))
        coords.append(_floats(path, lineno, words[1:], 3, "atom position"))
    xyz = np.array(coords)
    if name == "atoms_frac":
        atoms = Atoms(symbols=symbols, scaled_positions=xyz, cell=cell, pbc=True)
    else:
        atoms = Atoms(symbols=symbols, positions=xyz * scale, cell=cell, pbc=True)
    atoms.arrays["w90_label"] = np.array(labels)
    return atoms


def _parse_axis(path: str | os.PathLike, lineno: int, text: str, default: tuple[float, float, float]) -> None:
    vec = np.array(_floats(path, lineno, text.split(","), 3, "local axis"))
    norm = np.linalg.norm(vec)
    if norm == 0 or not np.allclose(vec / norm, default, atol=1e-6):
        raise FormatError(
            path,
            lineno,
            f"local axes other than z=0,0,1 x=1,0,0 are not supported (orbital labels would not be "
            f"Cartesian), got {text!r}",
        )


def _parse_site(path: str | os.PathLike, lineno: int, site: str, scale: float, labels: set[str]) -> str:
    low = site.lower().replace(" ", "")
    if low.startswith(("f=", "c=")):
        xyz = _floats(path, lineno, low[2:].split(","), 3, "projection site")
        if low.startswith("c="):
            xyz = [v * scale for v in xyz]
        return f"{low[0]}={xyz[0]!r},{xyz[1]!r},{xyz[2]!r}"
    if site.lower() not in labels:
        raise FormatError(path, lineno, f"projection site {site!r} is not an atom label of the atoms block")
    return site


def _read_projections(
    path: str | os.PathLike, block: _Block, atoms: Atoms
) -> tuple[list[tuple[str, list[str]]], list[int], int]:
    """Projection entries, their line numbers and the number of orbitals they expand to."""
    scale, lines = _unit_scale(block)
    labels_lower = np.char.lower(atoms.arrays["w90_label"].astype(str))
    known = set(labels_lower.tolist())
    entries: list[tuple[str, list[str]]] = []
    line_numbers: list[int] = []
    total = 0
    for lineno, line in lines:
        if line.lower() == "random":
            raise FormatError(path, lineno, "random projections are not supported: give site:orbital projections")
        parts = [p.strip() for p in line.split(":")]
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise FormatError(path, lineno, f"expected 'site:orbitals[:z=..][:x=..][:r=..][:zona=..]', got {line!r}")
        site = _parse_site(path, lineno, parts[0], scale, known)
        try:
            orbitals = parse_angular(parts[1])
        except ValueError as exc:
            raise FormatError(path, lineno, str(exc)) from None
        for extra in parts[2:]:
            key, _, value = extra.partition("=")
            key = key.strip().lower()
            if key not in _PROJ_FIELDS or not value.strip():
                raise FormatError(path, lineno, f"unknown projection field {extra!r}")
            if key == "z":
                _parse_axis(path, lineno, value, (0.0, 0.0, 1.0))
            elif key == "x":
                _parse_axis(path, lineno, value, (1.0, 0.0, 0.0))
            elif key == "r" and value.strip() not in ("1", "2", "3"):
                raise FormatError(path, lineno, f"radial function r must be 1, 2 or 3, got {value.strip()!r}")
            elif key == "zona":
                _floats(path, lineno, [value.strip()], 1, "zona")
        n_sites = 1 if site[:2] in ("f=", "c=") else int(np.count_nonzero(labels_lower == site.lower()))
        total += n_sites * len(orbitals)
        entries.append((site, orbitals))
        line_numbers.append(lineno)
    if not entries:
        raise FormatError(path, block.line, "projections block is empty")
    return entries, line_numbers, total


def _int_keyword(path: str | os.PathLike, item: tuple[int, str], key: str, n: int = 1) -> list[int]:
    lineno, value = item
    words = value.replace(",", " ").split()
    try:
        numbers = [int(w) for w in words]
    except ValueError:
        numbers = []
    if len(numbers) != n or any(v < 1 for v in numbers):
        raise FormatError(path, lineno, f"{key} needs {n} positive integer(s), got {value!r}")
    return numbers


def _is_true(path: str | os.PathLike, item: tuple[int, str], key: str) -> bool:
    value = item[1].lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise FormatError(path, item[0], f"{key} must be true or false, got {item[1]!r}")


def read_win(path: str | os.PathLike) -> WinData:
    """Read the cell, atoms, projections and keywords of a Wannier90 ``.win`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    WinData
        Cell and positions in Angstrom (Bohr converted with :data:`BOHR_ANGSTROM`).

    Raises
    ------
    FormatError
        Missing ``num_wann``, ``unit_cell_cart`` or atoms block, missing
        ``projections`` (unless ``auto_projections = true``), malformed or
        unclosed blocks, repeated keywords, unknown projection sites or
        orbitals, ``random`` projections, non-Cartesian local axes, spinors, or
        projections that do not expand to ``num_wann`` functions.
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    keywords, blocks = _scan(path, text)
    if "num_wann" not in keywords:
        raise FormatError(path, 0, "missing keyword 'num_wann'")
    num_wann = _int_keyword(path, keywords["num_wann"], "num_wann")[0]
    num_bands = _int_keyword(path, keywords["num_bands"], "num_bands")[0] if "num_bands" in keywords else None
    mp_grid = tuple(_int_keyword(path, keywords["mp_grid"], "mp_grid", 3)) if "mp_grid" in keywords else None
    if num_bands is not None and num_bands < num_wann:
        raise FormatError(path, keywords["num_bands"][0], f"num_bands={num_bands} is smaller than num_wann={num_wann}")
    if "spinors" in keywords and _is_true(path, keywords["spinors"], "spinors"):
        raise FormatError(path, keywords["spinors"][0], "spinors = true is not supported")
    if "select_projections" in keywords:
        raise FormatError(path, keywords["select_projections"][0], "select_projections is not supported")

    cell = _read_cell(path, blocks)
    atoms = _read_atoms(path, blocks, cell)
    projections: list[tuple[str, list[str]]] = []
    line_numbers: list[int] = []
    if "projections" in blocks:
        projections, line_numbers, total = _read_projections(path, blocks["projections"], atoms)
        if total != num_wann:
            raise FormatError(
                path,
                blocks["projections"].line,
                f"projections expand to {total} Wannier functions but num_wann = {num_wann} "
                f"(line {keywords['num_wann'][0]})",
            )
    elif not ("auto_projections" in keywords and _is_true(path, keywords["auto_projections"], "auto_projections")):
        raise FormatError(path, 0, "missing block 'projections'")

    others = {k: v for k, (_, v) in keywords.items() if k not in _NUMBERED}
    return WinData(
        cell=cell,
        atoms=atoms,
        projections=projections,
        num_wann=num_wann,
        num_bands=num_bands,
        mp_grid=mp_grid,  # type: ignore[arg-type]
        keywords=others,
        path=path,
        projection_lines=tuple(line_numbers),
    )
