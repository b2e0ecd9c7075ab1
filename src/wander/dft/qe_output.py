"""Parser of ``pw.x`` text output (Quantum ESPRESSO 6.x/7.x).

Everything returned is in wander units: eV, Angstrom, eV/Angstrom and
eV/Angstrom^3 with ASE's stress sign (positive = tensile; QE prints the opposite).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import units

__all__ = ["PWOutput", "read_pw_output", "PWOutputError"]

RY = units.Ry  # eV
BOHR = units.Bohr  # Angstrom
_FLOAT = re.compile(r"-?\d+\.\d+(?:[eEdD][-+]?\d+)?")


class PWOutputError(ValueError):
    """A ``pw.x`` output is unreadable or incomplete (names file and line)."""


@dataclass
class PWOutput:
    """Parsed ``pw.x`` run.

    Attributes:
        path: file parsed.
        version: QE version string, e.g. ``"6.7MaX"``.
        calculation: ``"scf"`` or ``"nscf"`` (any non-self-consistent run, nscf or bands).
        job_done: the run printed ``JOB DONE``.
        converged: SCF converged (always True for nscf/bands runs that finished).
        n_scf_iterations: SCF iterations (0 for non-SCF runs).
        energy: total (free) energy ``!`` line, eV; ``None`` for non-SCF runs.
        fermi_energy: E_F in eV (smearing) or the highest occupied level; ``None`` if absent.
        forces: (nat, 3) eV/Angstrom or ``None``.
        stress: (3, 3) eV/Angstrom^3, ASE sign, or ``None``.
        alat: lattice parameter in Angstrom.
        nat: number of atoms; nelec: number of electrons; nbnd: Kohn-Sham states.
        kpoints_frac: (nk, 3) fractional k-points of the eigenvalue blocks (``None``
            when the header list was not printed).
        eigenvalues: (nk, nbnd) eV of the final eigenvalue listing, ``None`` if absent.
        unconverged_eigenvalue_warnings: count of "eigenvalues not converged" warnings.
    """

    path: str
    version: str = ""
    calculation: str = "scf"
    job_done: bool = False
    converged: bool = False
    n_scf_iterations: int = 0
    energy: float | None = None
    fermi_energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    alat: float | None = None
    nat: int = 0
    nelec: float = 0.0
    nbnd: int = 0
    kpoints_frac: np.ndarray | None = None
    eigenvalues: np.ndarray | None = None
    unconverged_eigenvalue_warnings: int = 0
    wall_time_s: float | None = None
    extra: dict = field(default_factory=dict)


def _err(path: str, lineno: int, msg: str) -> PWOutputError:
    return PWOutputError(f"{path}:{lineno}: {msg}")


def _floats(s: str) -> list[float]:
    return [float(x.replace("d", "e").replace("D", "e")) for x in _FLOAT.findall(s)]


def _parse_time(s: str) -> float | None:
    """QE wall-time like ``1m23.45s`` or ``1h 2m`` or ``12.3s`` -> seconds."""
    total = 0.0
    found = False
    for val, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", s):
        total += float(val) * {"h": 3600.0, "m": 60.0, "s": 1.0}[unit]
        found = True
    return total if found else None


def read_pw_output(path: str | os.PathLike) -> PWOutput:
    """Parse a ``pw.x`` output file.

    Raises:
        FileNotFoundError: missing file.
        PWOutputError: not a pw.x output, or a block is truncated (file and line named).
    """
    path = str(path)
    lines = Path(path).read_text(errors="replace").splitlines()
    out = PWOutput(path=path)
    if not any("Program PWSCF" in ln for ln in lines[:50]):
        raise _err(path, 1, "not a pw.x output (no 'Program PWSCF' header)")
    i = 0
    n = len(lines)
    eig_blocks: list[list[float]] = []
    in_final = False
    while i < n:
        ln = lines[i]
        if "Program PWSCF" in ln:
            m = re.search(r"PWSCF\s+v\.(\S+)", ln)
            out.version = m.group(1) if m else ""
        elif "Band Structure Calculation" in ln:
            out.calculation = "nscf"
        elif "lattice parameter (alat)" in ln:
            out.alat = _floats(ln)[0] * BOHR
        elif "number of atoms/cell" in ln:
            out.nat = int(ln.split("=")[1])
        elif "number of electrons" in ln:
            out.nelec = float(ln.split("=")[1])
        elif "number of Kohn-Sham states" in ln:
            out.nbnd = int(ln.split("=")[1])
        elif re.match(r"\s+number of k points=", ln):
            nk = int(ln.split("=")[1].split()[0])
            j = i + 1
            while j < n and j < i + 2 * nk + 10 and "cryst. coord." not in lines[j]:
                j += 1
            if j < n and "cryst. coord." in lines[j]:
                ks = []
                for jj in range(j + 1, j + 1 + nk):
                    if jj >= n or "k(" not in lines[jj]:
                        raise _err(path, jj + 1, "truncated crystal k-point list")
                    ks.append(_floats(lines[jj].split("=", 1)[1].split(")")[0])[:3])
                out.kpoints_frac = np.array(ks, dtype=float)
        elif "iteration #" in ln and "ecut=" in ln:
            out.n_scf_iterations = int(re.search(r"iteration #\s*(\d+)", ln).group(1))
        elif "convergence has been achieved" in ln:
            out.converged = True
        elif "convergence NOT achieved" in ln:
            out.converged = False
        elif "eigenvalues not converged" in ln:
            out.unconverged_eigenvalue_warnings += 1
        elif "End of self-consistent calculation" in ln or "End of band structure calculation" in ln:
            in_final = True
            eig_blocks = []
            if "band structure" in ln:
                out.converged = True
        elif in_final and re.match(r"\s+k =.*bands \(ev\)", ln):
            vals: list[float] = []
            j = i + 1
            while j < n and (lines[j].strip() == "" and not vals):
                j += 1
            while j < n and lines[j].strip() != "":
                vals += _floats(lines[j])
                j += 1
            eig_blocks.append(vals)
            i = j
            continue
        elif "the Fermi energy is" in ln:
            out.fermi_energy = _floats(ln)[0]
            in_final = False
        elif "highest occupied, lowest unoccupied level" in ln:
            out.fermi_energy = _floats(ln)[0]
            in_final = False
        elif "highest occupied level" in ln:
            out.fermi_energy = _floats(ln)[0]
            in_final = False
        elif ln.startswith("!") and "total energy" in ln:
            out.energy = _floats(ln)[0] * RY
            in_final = False
        elif "Forces acting on atoms" in ln:
            f = []
            j = i + 1
            while j < n and len(f) < out.nat:
                if "force =" in lines[j]:
                    f.append(_floats(lines[j].split("=")[1])[:3])
                elif f and lines[j].strip() == "":
                    break
                j += 1
            if len(f) != out.nat:
                raise _err(path, i + 1, f"expected {out.nat} forces, found {len(f)}")
            out.forces = np.array(f) * RY / BOHR
        elif "total   stress" in ln:
            if i + 3 >= n:
                raise _err(path, i + 1, "truncated stress block")
            s = np.array([_floats(lines[i + k])[:3] for k in (1, 2, 3)])
            out.stress = -s * RY / BOHR**3
        elif "PWSCF        :" in ln and "WALL" in ln:
            out.wall_time_s = _parse_time(ln.split("CPU")[-1])
        elif "JOB DONE" in ln:
            out.job_done = True
        i += 1
    if eig_blocks:
        lengths = {len(b) for b in eig_blocks}
        if len(lengths) != 1:
            raise _err(path, n, f"eigenvalue blocks of unequal length {sorted(lengths)}")
        out.eigenvalues = np.array(eig_blocks, dtype=float)
        if out.kpoints_frac is not None and len(out.kpoints_frac) != len(eig_blocks):
            out.kpoints_frac = None
    return out
