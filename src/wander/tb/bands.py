"""Band structures along k-paths: dense ``eigh`` for small cells, shift-invert for large ones."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
from ase.dft.kpoints import BandPath
from ase.spectrum.band_structure import BandStructure
from tqdm import tqdm

from wander.tb.eigen import DENSE_MAX, ShiftInvert, eigsh_near, eigvalsh_dense
from wander.tb.fermi import fermi_level as _fermi_level
from wander.tb.hamiltonian import TBHamiltonian
from wander.tb.kpath import bandpath_2d

__all__ = ["band_structure", "band_windows", "BandWindows"]

METHODS = ("auto", "dense", "sparse")


@dataclass(frozen=True)
class BandWindows:
    """Eigenvalues at a list of k-points, possibly a window of the spectrum.

    Attributes
    ----------
    kpts : (nk, 3) fractional
    energies : (nk, nb) eV, ascending at every k (NaN: band not resolved at that k)
    band_offset : (nk,) int or None
        Global index of ``energies[k, 0]`` (None if unknown).
    method : str
        ``"dense"`` or ``"sparse"``.
    seconds : float
        Wall time of the eigensolver loop.
    densities : (nk, nb, n_orbitals) float32 or None
        ``|psi_nk(i)|^2`` of every band of the window per orbital (original orbital order; each
        row sums to 1; zero where the band was not resolved), if asked for.
    """

    kpts: np.ndarray
    energies: np.ndarray
    band_offset: np.ndarray | None
    method: str
    seconds: float
    densities: np.ndarray | None = None


def _resolve_path(ham: TBHamiltonian, path, npoints: int) -> BandPath:
    if isinstance(path, BandPath):
        if not np.allclose(np.asarray(path.cell), ham.cell, atol=1e-6):
            raise ValueError("the BandPath was built for another cell")
        return path
    return bandpath_2d(ham.cell, path, npoints)


def band_windows(
    ham: TBHamiltonian,
    kpts: np.ndarray,
    *,
    n_bands: int | None = None,
    energy: float | None = None,
    first_band: int | None = None,
    method: str = "auto",
    gauge: str = "lattice",
    progress: bool = False,
    workers: int = 1,
    densities: bool = False,
) -> BandWindows:
    """Eigenvalues of a fixed range of bands at arbitrary k-points (engine of :func:`band_structure`).

    Bands are identified by their global index (position in the sorted spectrum at each k),
    so a line in a plot is one band even where the bands move relative to ``energy``.

    Parameters
    ----------
    ham : TBHamiltonian
    kpts : (nk, 3) fractional
    n_bands : int, optional
        Number of bands; default all (dense only).
    energy : float, eV, optional
        Target energy: unless ``first_band`` is given, the bands are the ``n_bands`` nearest
        ``energy`` at the first k-point. Required on the sparse route (shift-invert target).
    first_band : int, optional
        Global index (0-based) of the lowest band wanted, e.g. ``n_occupied - n_bands // 2``.
    method : {"auto", "dense", "sparse"}
        ``"auto"``: dense up to :data:`~wander.tb.eigen.DENSE_MAX` orbitals, else sparse
        shift-invert (band indices from the inertia of each factorisation).
    gauge : {"lattice", "position"}
    progress : bool
        tqdm progress bar over k-points.
    workers : int
        Processes for the sparse route (contiguous chunks of k-points, forked workers; each
        needs the memory of one factorisation).
    densities : bool
        Also return ``|psi|^2`` of the window's bands per orbital (``nk * n_bands * n_orbitals``
        float32 numbers).

    Returns
    -------
    BandWindows
        ``energies`` (nk, n_bands); NaN where a band could not be resolved by shift-invert.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    kpts = np.atleast_2d(np.asarray(kpts, dtype=float))
    n = ham.n_orbitals
    if n_bands is not None and not 1 <= n_bands <= n:
        raise ValueError(f"n_bands must be between 1 and {n}, got {n_bands}")
    if first_band is not None and (n_bands is None or not 0 <= first_band <= n - n_bands):
        raise ValueError(f"first_band must be in 0 .. n_orbitals - n_bands, got {first_band}")
    if method == "auto":
        method = "dense" if n <= DENSE_MAX else "sparse"
    t0 = time.perf_counter()
    if method == "dense":
        bar = tqdm(kpts, desc="bands", unit="k", disable=not progress)
        rows, dens = [], []
        lo = 0 if first_band is None else first_band
        for idx, k in enumerate(bar):
            if densities:
                e, v = np.linalg.eigh(ham.hk(k, gauge).toarray())
            else:
                e = eigvalsh_dense(ham.hk(k, gauge))
            if idx == 0 and first_band is None and n_bands is not None and energy is not None:
                lo = int(np.sort(np.argsort(np.abs(e - energy), kind="stable")[:n_bands])[0])
            hi = len(e) if n_bands is None else lo + n_bands
            rows.append(e[lo:hi])
            if densities:
                dens.append((np.abs(v[:, lo:hi]) ** 2).T.astype(np.float32))
        offsets = np.full(len(kpts), lo)
        return BandWindows(kpts, np.array(rows), offsets, "dense", time.perf_counter() - t0,
                           np.array(dens) if densities else None)
    if n_bands is None or energy is None:
        raise ValueError(
            f"{n} orbitals: the sparse route computes a window of bands; give n_bands and energy"
        )
    bar = tqdm(total=len(kpts), desc="bands", unit="k", disable=not progress)
    asm = ham.assembler(ordered=True, diagonal=True)
    order = ham.fill_reducing_order if densities else None
    if workers > 1 and len(kpts) > 2:
        # the first k-point fixes the band range, then chunks of the path run in parallel
        rows, lo, known, dens = _sparse_rows(asm, kpts[:1], gauge, n_bands, float(energy), first_band, bar, order)
        more, _, known_more, dmore = _sparse_rows_parallel(asm, kpts[1:], gauge, n_bands, float(energy), lo, bar,
                                                           workers, order)
        rows, known = np.vstack([rows, more]), known and known_more
        dens = None if dens is None else np.concatenate([dens, dmore])
    else:
        rows, lo, known, dens = _sparse_rows(asm, kpts, gauge, n_bands, float(energy), first_band, bar, order)
    bar.close()
    offsets = np.full(len(kpts), lo) if known and lo is not None else None
    return BandWindows(kpts, rows, offsets, "sparse", time.perf_counter() - t0, dens)


def _sparse_rows(asm, kpts, gauge, n_bands, energy, lo, bar, order=None):
    """Shift-invert windows at ``kpts`` -> rows (nk, n_bands), band index ``lo``, indices known, and
    ``|psi|^2`` (nk, n_bands, n) in the original orbital order where ``order`` (the assembler's
    fill-reducing order) is given, else None."""
    n = asm.shape[0]
    rows = np.full((len(kpts), n_bands), np.nan)
    dens = None if order is None else np.zeros((len(kpts), n_bands, n), dtype=np.float32)
    v0 = None
    known = True
    for idx, k in enumerate(kpts):
        h = asm.matrix(k, gauge)
        factor = ShiftInvert(h, energy)
        pad = 2
        for _ in range(3):  # widen the window (same factorisation) until it holds the bands
            res = eigsh_near(h, energy, min(n_bands + 2 * pad, n), v0=v0, factor=factor, extra=2)
            if res.n_below is None:
                break
            if lo is None:  # the n_bands nearest the target at the first k-point
                near = np.sort(np.argsort(np.abs(res.eigenvalues - energy), kind="stable")[:n_bands])
                lo = res.n_below + int(near[0])
            if res.n_below <= lo and lo + n_bands <= res.n_below + len(res.eigenvalues):
                break
            pad *= 2
        if res.n_below is None:  # no band indices: fall back to the bands nearest the target
            known = False
            near = np.sort(np.argsort(np.abs(res.eigenvalues - energy), kind="stable")[:n_bands])
            rows[idx] = res.eigenvalues[near]
            slots, cols = np.arange(len(near)), near
        else:
            g = res.n_below + np.arange(len(res.eigenvalues))
            sel = (g >= lo) & (g < lo + n_bands)
            rows[idx, g[sel] - lo] = res.eigenvalues[sel]
            slots, cols = g[sel] - lo, np.flatnonzero(sel)
        if dens is not None:  # ordered basis: row a of the factorised matrix is orbital order[a]
            dens[idx][np.ix_(slots, order)] = (np.abs(res.vectors[:, cols]) ** 2).T
        v0 = res.vectors.sum(axis=1)
        if bar is not None:
            bar.update(1)
    return rows, lo, known, dens


_FORKED: dict = {}  # work shared with forked workers (inherited memory, nothing pickled)


def _chunk_rows(bounds):
    from threadpoolctl import threadpool_limits

    a, b = bounds
    w = _FORKED
    # SuperLU and ARPACK call BLAS: threaded BLAS in every worker oversubscribes the cores (2 workers
    # with 2 OpenBLAS threads each on 2 cores ran 3-10x slower than with one thread each)
    with threadpool_limits(limits=w["blas_threads"], user_api="blas"):
        rows, _, known, dens = _sparse_rows(w["asm"], w["kpts"][a:b], w["gauge"], w["n_bands"], w["energy"],
                                            w["lo"], None, w["order"])
    return rows, known, dens


def _sparse_rows_parallel(asm, kpts, gauge, n_bands, energy, lo, bar, workers, order=None):
    """:func:`_sparse_rows` over contiguous chunks of k-points in forked processes."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    if "fork" not in mp.get_all_start_methods() or lo is None:
        return _sparse_rows(asm, kpts, gauge, n_bands, energy, lo, bar, order)
    # chunks of about 3 neighbouring k-points: the starting vector carries over within a chunk, and
    # the progress bar moves as each chunk finishes (in any order)
    n_chunks = min(len(kpts), max(2 * workers, -(-len(kpts) // 3)))
    edges = np.linspace(0, len(kpts), n_chunks + 1).round().astype(int)
    bounds = list(zip(edges[:-1], edges[1:]))
    blas_threads = max(1, (os.cpu_count() or 1) // workers)
    _FORKED.update(asm=asm, kpts=kpts, gauge=gauge, n_bands=n_bands, energy=energy, lo=lo, order=order,
                   blas_threads=blas_threads)
    try:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
            futures = {pool.submit(_chunk_rows, ab): i for i, ab in enumerate(bounds)}
            parts: list = [None] * len(bounds)
            for fut in as_completed(futures):
                i = futures[fut]
                parts[i] = fut.result()
                if bar is not None:
                    bar.update(int(bounds[i][1] - bounds[i][0]))
    finally:
        _FORKED.clear()
    dens = None if order is None else np.concatenate([p[2] for p in parts])
    return np.vstack([p[0] for p in parts]), lo, all(p[1] for p in parts), dens


def band_structure(
    ham: TBHamiltonian,
    path: str | BandPath | None = None,
    npoints: int = 100,
    *,
    n_bands: int | None = None,
    energy: float | None = None,
    method: str = "auto",
    fermi_level: float | None = None,
    n_electrons: float | None = None,
    spin_degeneracy: int = 2,
    gauge: str = "lattice",
    progress: bool = False,
    workers: int = 1,
) -> BandStructure:
    """Band structure along a 2D high-symmetry path.

    Parameters
    ----------
    ham : TBHamiltonian
    path : str or ase BandPath, optional
        Special-point letters (default ``GMKG`` for hexagonal cells, see
        :func:`~wander.tb.kpath.bandpath_2d`) or a ready BandPath for ``ham.cell``.
    npoints : int
        k-points along the path.
    n_bands : int, optional
        Number of bands (all if omitted; required for large cells). With ``n_electrons`` they
        are centred on the Fermi level by band index (``n_bands // 2`` occupied ones); otherwise
        they are the ``n_bands`` nearest ``energy`` at the first k-point, followed by index.
    energy : float, eV, optional
        Target energy of the window and shift-invert shift (defaults to ``fermi_level``).
    method : {"auto", "dense", "sparse"}
    fermi_level : float, eV, optional
        Reference energy stored in the result (``BandStructure.reference``).
    n_electrons : float, optional
        If given (and ``fermi_level`` is not), the reference is the Fermi level of the path's
        k-points for this electron count per cell (see :func:`~wander.tb.fermi.fermi_level`;
        band windows are placed with the inertia count).
    spin_degeneracy : int
    gauge : {"lattice", "position"}
    progress : bool
    workers : int
        Processes for the sparse route.

    Returns
    -------
    ase.spectrum.band_structure.BandStructure
        ``energies`` of shape (1, nk, nb), eV (absolute), ``reference`` the Fermi level or 0.
    """
    bp = _resolve_path(ham, path, npoints)
    if energy is None:
        energy = fermi_level
    first_band = None
    if n_electrons is not None and n_bands is not None:
        n_occ = int(np.ceil(float(n_electrons) / spin_degeneracy - 1e-9))
        first_band = int(np.clip(n_occ - n_bands // 2, 0, ham.n_orbitals - n_bands))
    win = band_windows(
        ham, bp.kpts, n_bands=n_bands, energy=energy, first_band=first_band, method=method, gauge=gauge,
        progress=progress, workers=workers,
    )
    ref = 0.0 if fermi_level is None else float(fermi_level)
    if fermi_level is None and n_electrons is not None:
        if win.band_offset is None or not np.all(np.isfinite(win.energies)):
            raise ValueError("band windows incomplete (no inertia count): cannot place the Fermi level")
        # fermi_level raises "... windows do not contain the Fermi level ..." if they miss it
        ref = _fermi_level(win.energies, n_electrons, spin_degeneracy=spin_degeneracy, band_offset=win.band_offset)
    return BandStructure(bp, win.energies[None, :, :], reference=ref)
