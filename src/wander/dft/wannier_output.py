"""Readers for the Wannier90 3.x files the DFT pipeline consumes beyond :mod:`wander.io`.

``seed_hr.dat``, ``seed_wsvec.dat``, ``seed_band.dat`` and ``seed_band.kpt`` are
read with :mod:`wander.io` (``read_hr``, ``read_wsvec``, ``apply_wsvec``,
``read_band_dat``, ``read_band_kpt``); this module adds

* ``seed_wsvec.dat`` that may list no entry (:func:`load_wsvec`),
* ``seed.wout``: final centres (Angstrom, Cartesian) and spreads (Angstrom^2),
* ``seed.nnkp``: projection centres and orbital labels,
* ``seed.amn`` / ``seed.eig``: band projectabilities and energies.

Errors are :class:`W90FormatError` (a :class:`wander.io.FormatError`) naming the
file and the 1-based line number.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wander.io import FormatError, WsvecData, read_wsvec

__all__ = ["load_wsvec", "WannierRun", "read_wout", "read_nnkp_projections", "assign_orbitals",
           "read_amn_eig", "W90FormatError"]


class W90FormatError(FormatError):
    """A Wannier90 file is malformed (message names file and line)."""


def _err(path: str, lineno: int, msg: str) -> W90FormatError:
    return W90FormatError(path, lineno, msg)


def load_wsvec(path: str | os.PathLike) -> WsvecData | None:
    """Read ``seed_wsvec.dat`` with :func:`wander.io.read_wsvec`.

    Returns:
        The shifts, or None when the file lists no entry after its header (no
        minimal-image shifts: every hopping stays at its ``R``), ready for
        :func:`wander.io.apply_wsvec`.
    """
    with open(path, "rb") as fh:
        fh.readline()
        if not any(line.strip() for line in fh):
            return None
    return read_wsvec(path)


@dataclass
class WannierRun:
    """Summary of ``seed.wout``.

    Attributes:
        centres: (num_wann, 3) final centres, Cartesian Angstrom.
        spreads: (num_wann,) final spreads, Angstrom^2.
        omega_i, omega_d, omega_od, omega_total: spread decomposition, Angstrom^2.
        finished: the run printed its total execution time.
    """

    centres: np.ndarray
    spreads: np.ndarray
    omega_i: float
    omega_d: float
    omega_od: float
    omega_total: float
    finished: bool


def read_wout(path: str | os.PathLike) -> WannierRun:
    """Read the final centres and spreads of ``seed.wout``."""
    path = str(path)
    lines = Path(path).read_text(errors="replace").splitlines()
    start = None
    for i, ln in enumerate(lines):
        if ln.strip() == "Final State":
            start = i
    if start is None:
        raise _err(path, len(lines), "no 'Final State' block (Wannier90 did not finish)")
    centres, spreads = [], []
    omegas: dict[str, float] = {}
    pat = re.compile(r"WF centre and spread\s+\d+\s+\(\s*(\S+),\s*(\S+),\s*(\S+)\s*\)\s+(\S+)")
    for ln in lines[start + 1:]:
        m = pat.search(ln)
        if m:
            centres.append([float(m.group(k)) for k in (1, 2, 3)])
            spreads.append(float(m.group(4)))
            continue
        m = re.search(r"Omega (I|D|OD|Total)\s+=\s+(\S+)", ln)
        if m:
            omegas[m.group(1)] = float(m.group(2))
        if "Omega Total" in ln:
            break
    if not centres:
        raise _err(path, start + 1, "no WF centres after 'Final State'")
    return WannierRun(np.array(centres), np.array(spreads), omegas.get("I", np.nan),
                      omegas.get("D", np.nan), omegas.get("OD", np.nan),
                      omegas.get("Total", np.nan),
                      any("Total Execution Time" in ln for ln in lines[-40:]))


_LABELS = {(0, 1): "s", (1, 1): "pz", (1, 2): "px", (1, 3): "py", (2, 1): "dz2", (2, 2): "dxz",
           (2, 3): "dyz", (2, 4): "dx2-y2", (2, 5): "dxy"}


def read_nnkp_projections(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Projection centres and labels from ``seed.nnkp``.

    Returns:
        centres (num_wann, 3) fractional (as Wannier90 stores them) and labels such
        as ``"pz"`` or ``"dxy"`` (Wannier90 ``l, mr`` names, default axes).
    """
    path = str(path)
    lines = Path(path).read_text().splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == "begin projections")
        nproj = int(lines[start + 1])
    except (StopIteration, IndexError, ValueError):
        raise _err(path, 1, "no 'begin projections' block") from None
    centres, labels = [], []
    for p in range(nproj):
        i = start + 2 + 2 * p
        try:
            parts = lines[i].split()
            centres.append([float(x) for x in parts[:3]])
            key = (int(parts[3]), int(parts[4]))
        except (IndexError, ValueError):
            raise _err(path, i + 1, "malformed projection line") from None
        if key not in _LABELS:
            raise _err(path, i + 1, f"unsupported projection l={key[0]} mr={key[1]}")
        labels.append(_LABELS[key])
    return np.array(centres), labels


def assign_orbitals(proj_frac: np.ndarray, atoms_frac: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """Host atom of each projection: the atom at the same fractional position (mod in-plane lattice).

    Args:
        proj_frac: (nw, 3) projection centres; atoms_frac: (nat, 3) atom positions (fractional).

    Raises:
        ValueError: a projection has no atom within ``tol`` (fractional units).
    """
    d = np.asarray(proj_frac)[:, None, :] - np.asarray(atoms_frac)[None, :, :]
    d -= np.round(d)
    dist = np.linalg.norm(d, axis=2)
    host = np.argmin(dist, axis=1)
    if np.any(dist[np.arange(len(host)), host] > tol):
        raise ValueError("a Wannier projection centre is not on any atom")
    return host


def read_amn_eig(amn_path: str | os.PathLike, eig_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Band projectabilities and energies from ``seed.amn`` and ``seed.eig``.

    Returns:
        p (nk, nb): sum over projections of |A_mn(k)|^2 (unnormalised projectability of band m);
        e (nk, nb): band energies in eV.
    """
    amn_path, eig_path = str(amn_path), str(eig_path)
    with open(amn_path) as fh:
        fh.readline()
        try:
            nb, nk, nw = (int(x) for x in fh.readline().split())
        except ValueError:
            raise _err(amn_path, 2, "expected num_bands num_kpts num_wann") from None
        data = np.loadtxt(fh)
    if data.shape != (nb * nk * nw, 5):
        raise _err(amn_path, 3, f"expected {nb * nk * nw} rows of 5 columns, got {data.shape}")
    m = data[:, 0].astype(int) - 1
    k = data[:, 2].astype(int) - 1
    p = np.zeros((nk, nb))
    np.add.at(p, (k, m), data[:, 3] ** 2 + data[:, 4] ** 2)
    eig = np.loadtxt(eig_path)
    if eig.shape != (nb * nk, 3):
        raise _err(eig_path, 1, f"expected {nb * nk} rows of 3 columns, got {eig.shape}")
    e = np.zeros((nk, nb))
    e[eig[:, 1].astype(int) - 1, eig[:, 0].astype(int) - 1] = eig[:, 2]
    return p, e
