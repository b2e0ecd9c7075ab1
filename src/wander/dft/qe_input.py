"""Quantum ESPRESSO ``pw.x`` input files.

Structures are ``ase.Atoms`` (Angstrom, cell rows).  Inputs use ``ibrav = 0`` with
``CELL_PARAMETERS angstrom`` and ``ATOMIC_POSITIONS angstrom`` so that strained and
rattled cells need no special handling.  k-points are fractional coordinates of the
reciprocal basis (``K_POINTS crystal``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers

__all__ = [
    "PWSettings",
    "write_pw_input",
    "format_pw_input",
    "kgrid_full",
    "atomic_write_text",
]


@dataclass
class PWSettings:
    """Plane-wave DFT settings shared by every step of one configuration.

    Attributes:
        pseudopotentials: element symbol -> UPF file name inside ``pseudo_dir``.
        pseudo_dir: folder holding the UPF files.
        ecutwfc, ecutrho: plane-wave cutoffs (Ry, QE's unit; kept as given to pw.x).
        vdw_corr: ``pw.x`` ``vdw_corr`` value (``"dft-d3"``, ``"dft-d"`` or ``None``).
        smearing, degauss: occupation smearing (``degauss`` in Ry).
        conv_thr: SCF convergence threshold (Ry) for the SCF step.
        bands_conv_thr: threshold for ``nscf``/``bands`` steps (tight values make
            QE 6.7 stop with "too many bands are not converged").
        mixing_beta: SCF mixing factor.
        kgrid: SCF Monkhorst-Pack grid (n1, n2, n3), Gamma-centred.
        electron_maxstep: maximum number of SCF iterations.
    """

    pseudopotentials: dict[str, str]
    pseudo_dir: str
    ecutwfc: float = 40.0
    ecutrho: float = 320.0
    vdw_corr: str | None = "dft-d3"
    smearing: str = "mv"
    degauss: float = 0.01
    conv_thr: float = 1e-9
    bands_conv_thr: float = 1e-6
    mixing_beta: float = 0.5
    kgrid: tuple[int, int, int] = (9, 9, 1)
    electron_maxstep: int = 200
    extra_system: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "pseudopotentials": dict(self.pseudopotentials),
            "pseudo_dir": self.pseudo_dir,
            "ecutwfc_Ry": self.ecutwfc,
            "ecutrho_Ry": self.ecutrho,
            "vdw_corr": self.vdw_corr,
            "smearing": self.smearing,
            "degauss_Ry": self.degauss,
            "conv_thr_Ry": self.conv_thr,
            "bands_conv_thr_Ry": self.bands_conv_thr,
            "mixing_beta": self.mixing_beta,
            "kgrid": list(self.kgrid),
            "electron_maxstep": self.electron_maxstep,
            "extra_system": dict(self.extra_system),
        }


def kgrid_full(n1: int, n2: int, n3: int = 1) -> np.ndarray:
    """Full Gamma-centred grid, shape (n1*n2*n3, 3), fractional, in [0, 1).

    Order is Wannier90's ``kmesh.pl`` order (first index slowest), which the
    ``nscf`` input and the ``.win`` file must share.
    """
    if min(n1, n2, n3) < 1:
        raise ValueError(f"k-grid dimensions must be positive, got {(n1, n2, n3)}")
    i, j, k = np.meshgrid(np.arange(n1), np.arange(n2), np.arange(n3), indexing="ij")
    return np.stack([i.ravel() / n1, j.ravel() / n2, k.ravel() / n3], axis=1)


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return ".true." if value else ".false."
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, float):
        return repr(value).replace("e", "d") if "e" in repr(value) else repr(value)
    return str(value)


def _namelist(name: str, entries: dict[str, object]) -> str:
    lines = [f"&{name.upper()}"]
    lines += [f"  {k} = {_fmt(v)}" for k, v in entries.items() if v is not None]
    lines.append("/")
    return "\n".join(lines)


def format_pw_input(
    atoms: Atoms,
    settings: PWSettings,
    calculation: str,
    *,
    prefix: str = "pwscf",
    outdir: str = "./tmp",
    kpoints: np.ndarray | None = None,
    nbnd: int | None = None,
) -> str:
    """Text of a ``pw.x`` input.

    Args:
        atoms: structure (Angstrom, cell rows, pbc (T, T, F) for slabs; z is periodic
            in the plane-wave code and carries the vacuum).
        calculation: ``"scf"``, ``"nscf"`` or ``"bands"``.
        kpoints: (nk, 3) fractional k-points for ``nscf``/``bands`` (weights equal);
            ``None`` gives the automatic ``settings.kgrid``.
        nbnd: number of bands, ``None`` for pw.x's default.
    """
    if calculation not in ("scf", "nscf", "bands"):
        raise ValueError(f"calculation must be scf, nscf or bands, got {calculation!r}")
    if len(atoms) == 0:
        raise ValueError("empty structure")
    cell = np.asarray(atoms.cell[:], dtype=float)
    if abs(np.linalg.det(cell)) < 1e-6:
        raise ValueError("cell is singular; a 3D cell with vacuum along z is required")
    symbols = atoms.get_chemical_symbols()
    species = list(dict.fromkeys(symbols))
    missing = [s for s in species if s not in settings.pseudopotentials]
    if missing:
        raise ValueError(f"no pseudopotential given for {missing}")
    scf = calculation == "scf"
    control = {
        "calculation": calculation,
        "prefix": prefix,
        "outdir": outdir,
        "pseudo_dir": settings.pseudo_dir,
        "verbosity": "high",
        "tprnfor": True if scf else None,
        "tstress": True if scf else None,
        "disk_io": "low" if scf else None,
    }
    system: dict[str, object] = {
        "ibrav": 0,
        "nat": len(atoms),
        "ntyp": len(species),
        "ecutwfc": float(settings.ecutwfc),
        "ecutrho": float(settings.ecutrho),
        "occupations": "smearing",
        "smearing": settings.smearing,
        "degauss": float(settings.degauss),
        "vdw_corr": settings.vdw_corr,
        "nbnd": nbnd,
        "nosym": True if not scf else None,
    }
    system.update(settings.extra_system)
    electrons = {
        "conv_thr": float(settings.conv_thr if scf else settings.bands_conv_thr),
        "mixing_beta": float(settings.mixing_beta),
        "electron_maxstep": int(settings.electron_maxstep),
        "diago_full_acc": True if not scf else None,
    }
    parts = [
        _namelist("control", control),
        _namelist("system", system),
        _namelist("electrons", electrons),
        "ATOMIC_SPECIES",
    ]
    for s in species:
        parts.append(f"  {s} {atomic_masses[atomic_numbers[s]]:.4f} {settings.pseudopotentials[s]}")
    parts.append("CELL_PARAMETERS angstrom")
    parts += ["  " + " ".join(f"{x:16.10f}" for x in row) for row in cell]
    parts.append("ATOMIC_POSITIONS angstrom")
    for s, p in zip(symbols, atoms.positions):
        parts.append(f"  {s} " + " ".join(f"{x:16.10f}" for x in p))
    if kpoints is None:
        n1, n2, n3 = settings.kgrid
        parts.append("K_POINTS automatic")
        parts.append(f"  {n1} {n2} {n3} 0 0 0")
    else:
        k = np.asarray(kpoints, dtype=float)
        if k.ndim != 2 or k.shape[1] != 3 or len(k) == 0:
            raise ValueError(f"kpoints must have shape (nk, 3), got {k.shape}")
        parts.append("K_POINTS crystal")
        parts.append(f"  {len(k)}")
        w = 1.0 / len(k)
        parts += [f"  {a:14.10f} {b:14.10f} {c:14.10f} {w:.10f}" for a, b, c in k]
    return "\n".join(parts) + "\n"


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_pw_input(path: str | os.PathLike, atoms: Atoms, settings: PWSettings,
                   calculation: str, **kwargs) -> None:
    """Write :func:`format_pw_input` to ``path`` atomically."""
    atomic_write_text(path, format_pw_input(atoms, settings, calculation, **kwargs))
