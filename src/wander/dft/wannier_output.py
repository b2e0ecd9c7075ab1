"""Readers for the Wannier90 3.x files the DFT pipeline consumes.

* ``seed_hr.dat``: ``H_mn(R)`` in eV (``R`` integer lattice vectors, Wannier90
  sign/phase convention ``H_mn(R) = <w_m,0|H|w_n,R>``).
* ``seed_wsvec.dat`` (``use_ws_distance = true``): extra lattice shifts that put
  each hopping on its minimal-image vector.
* ``seed.wout``: final centres (Angstrom, Cartesian) and spreads (Angstrom^2).
* ``seed_band.dat`` / ``seed_band.kpt``: interpolated bands along a path.

Errors name the file and the 1-based line number.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Hr", "read_hr", "read_wsvec", "physical_hoppings", "WannierRun", "read_wout",
           "read_nnkp_projections", "assign_orbitals", "read_amn_eig",
           "read_band_kpt", "read_band_dat", "W90FormatError"]


class W90FormatError(ValueError):
    """A Wannier90 file is malformed (message names file and line)."""


def _err(path: str, lineno: int, msg: str) -> W90FormatError:
    return W90FormatError(f"{path}:{lineno}: {msg}")


@dataclass
class Hr:
    """Content of ``seed_hr.dat``.

    Attributes:
        num_wann: number of Wannier functions.
        R: (nrpts, 3) int lattice vectors.
        ndegen: (nrpts,) Wigner-Seitz degeneracies.
        H: (nrpts, num_wann, num_wann) complex eV, as written (not divided by ndegen).
    """

    num_wann: int
    R: np.ndarray
    ndegen: np.ndarray
    H: np.ndarray


def read_hr(path: str | os.PathLike) -> Hr:
    """Read ``seed_hr.dat``."""
    path = str(path)
    lines = Path(path).read_text().splitlines()
    try:
        num_wann = int(lines[1])
        nrpts = int(lines[2])
    except (IndexError, ValueError):
        raise _err(path, 2, "expected num_wann and nrpts on lines 2-3") from None
    ndeg_lines = (nrpts + 14) // 15
    deg = " ".join(lines[3:3 + ndeg_lines]).split()
    if len(deg) != nrpts:
        raise _err(path, 4, f"expected {nrpts} degeneracies, found {len(deg)}")
    ndegen = np.array(deg, dtype=int)
    start = 3 + ndeg_lines
    body = lines[start:start + nrpts * num_wann**2]
    if len(body) != nrpts * num_wann**2:
        raise _err(path, len(lines), f"expected {nrpts * num_wann**2} matrix lines, found {len(body)}")
    try:
        data = np.array(" ".join(body).split(), dtype=float).reshape(-1, 7)
    except ValueError:
        raise _err(path, start + 1, "matrix lines must have 7 columns") from None
    data = data.reshape(nrpts, num_wann * num_wann, 7)
    R = data[:, 0, :3].astype(int)
    # file order: m fastest, then n
    m = data[0, :, 3].astype(int) - 1
    n = data[0, :, 4].astype(int) - 1
    H = np.zeros((nrpts, num_wann, num_wann), dtype=complex)
    H[:, m, n] = data[:, :, 5] + 1j * data[:, :, 6]
    return Hr(num_wann, R, ndegen, H)


def read_wsvec(path: str | os.PathLike) -> dict[tuple[int, int, int, int, int], np.ndarray]:
    """Read ``seed_wsvec.dat``.

    Returns:
        ``{(R1, R2, R3, m, n): shifts}`` with 0-based ``m, n`` and ``shifts`` an
        (ndeg, 3) int array of extra lattice vectors ``T`` (hop vector ``R + T``).
    """
    path = str(path)
    lines = Path(path).read_text().splitlines()
    out: dict[tuple[int, int, int, int, int], np.ndarray] = {}
    i = 1
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        try:
            r1, r2, r3, m, n = (int(x) for x in lines[i].split())
            nd = int(lines[i + 1])
            shifts = np.array([lines[i + 2 + k].split() for k in range(nd)], dtype=int).reshape(nd, 3)
        except (ValueError, IndexError):
            raise _err(path, i + 1, "malformed wsvec block") from None
        out[(r1, r2, r3, m - 1, n - 1)] = shifts
        i += 2 + nd
    return out


def physical_hoppings(hr: Hr, wsvec: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Expand ``hr`` into physical hoppings, summing duplicates.

    Each ``H_mn(R) / ndegen(R)`` is split equally over its minimal-image shifts
    ``R + T`` (from ``wsvec``; no shift when ``wsvec`` is None).

    Returns:
        R (nh, 3) int, m (nh,) int, n (nh,) int, t (nh,) complex eV, sorted by (R, m, n).
    """
    nr, nw, _ = hr.H.shape
    mm, nn = np.meshgrid(np.arange(nw), np.arange(nw), indexing="ij")
    R = np.repeat(hr.R, nw * nw, axis=0)  # entries in (R, m, n) order
    m = np.tile(mm.ravel(), nr)
    n = np.tile(nn.ravel(), nr)
    t = (hr.H / hr.ndegen[:, None, None]).reshape(-1)
    if wsvec:
        # match every entry to its wsvec block through an integer code of (R, m, n)
        wkeys = np.array(list(wsvec.keys()), dtype=np.int64).reshape(-1, 5)
        counts = np.array([len(v) for v in wsvec.values()], dtype=np.int64)
        shifts = np.concatenate([np.asarray(v, dtype=np.int64).reshape(-1, 3) for v in wsvec.values()])
        span = int(max(np.abs(hr.R).max(), np.abs(wkeys[:, :3]).max())) + 1
        base = 2 * span + 1

        def code(r, a, b):
            c = (r[:, 0] + span) * base + (r[:, 1] + span)
            c = (c * base + (r[:, 2] + span)) * nw + a
            return c * nw + b

        wcode = code(wkeys[:, :3], wkeys[:, 3], wkeys[:, 4])
        order = np.argsort(wcode)
        ecode = code(R.astype(np.int64), m, n)
        pos = np.clip(np.searchsorted(wcode[order], ecode), 0, len(order) - 1)
        found = wcode[order][pos] == ecode
        widx = np.where(found, order[pos], -1)
        k = np.where(found, counts[np.maximum(widx, 0)], 1)
        k = np.maximum(k, 1)
        start = np.r_[0, np.cumsum(counts)[:-1]]
        rep = np.repeat(np.arange(len(ecode)), k)
        within = np.arange(len(rep)) - np.repeat(np.cumsum(k) - k, k)
        has = found[rep] & (counts[np.maximum(widx, 0)][rep] > 0)
        extra = np.zeros((len(rep), 3), dtype=np.int64)
        extra[has] = shifts[start[widx[rep][has]] + within[has]]
        R = R[rep] + extra
        m, n = m[rep], n[rep]
        t = t[rep] / k[rep]
    key = np.c_[R, m, n]
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    tsum = np.zeros(len(uniq), dtype=complex)
    np.add.at(tsum, inv.ravel(), t)
    return uniq[:, :3], uniq[:, 3], uniq[:, 4], tsum


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


def read_band_kpt(path: str | os.PathLike) -> np.ndarray:
    """Read ``seed_band.kpt``: (nk, 3) fractional k-points."""
    path = str(path)
    lines = Path(path).read_text().splitlines()
    try:
        nk = int(lines[0].split()[0])
        k = np.array([ln.split()[:3] for ln in lines[1:1 + nk]], dtype=float)
    except (IndexError, ValueError):
        raise _err(path, 1, "malformed band.kpt") from None
    if k.shape != (nk, 3):
        raise _err(path, len(lines), f"expected {nk} k-points, found {len(k)}")
    return k


def read_band_dat(path: str | os.PathLike, nk: int) -> tuple[np.ndarray, np.ndarray]:
    """Read ``seed_band.dat``.

    Returns:
        x (nk,) path coordinate (1/Angstrom as written by Wannier90) and
        energies (nk, num_wann) eV.
    """
    path = str(path)
    data = np.loadtxt(path)
    if data.ndim != 2 or data.shape[1] < 2 or len(data) % nk:
        raise _err(path, 1, f"expected blocks of {nk} lines with 2 columns")
    nb = len(data) // nk
    x = data[:nk, 0]
    e = data[:, 1].reshape(nb, nk).T
    return x, e


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
