"""``wander bands``: tight-binding band structure plot (and JSON) along a 2D path.

Examples::

    wander bands --hr blg_hr.dat --win blg.win --n-electrons 4 -o bands.png
    wander bands --structure tbg.extxyz --tb-model moon-koshino --n-bands 8 --npoints 30 -o bands.png

Small cells (up to a few thousand orbitals) are diagonalised densely; larger ones use sparse
shift-invert for the ``--n-bands`` bands nearest ``E_F + --energy``.
"""

from __future__ import annotations

import argparse


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """Options selecting the Hamiltonian (shared with ``wander dos``)."""
    g = parser.add_argument_group("Hamiltonian (one of --hr, --structure, --ham)")
    g.add_argument("--hr", help="Wannier90 seedname_hr.dat")
    g.add_argument("--win", help="Wannier90 seedname.win (cell, projections; needed with --hr)")
    g.add_argument("--centres", help="Wannier90 seedname_centres.xyz (orbital positions)")
    g.add_argument("--wsvec", help="Wannier90 seedname_wsvec.dat (minimal-distance replicas)")
    g.add_argument("--structure", help="structure file readable by ASE (e.g. extxyz)")
    g.add_argument("--tb-model", choices=("moon-koshino", "graphene-nn"), help="pz model for --structure")
    g.add_argument("--ham", help="TBHamiltonian .npz written by TBHamiltonian.save")
    g.add_argument(
        "--n-electrons",
        type=float,
        help="electrons per cell for E_F (default: one per pz orbital for --tb-model; none otherwise)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
    parser.add_argument("-o", "--output", default="bands.png", help="figure file (default bands.png)")
    parser.add_argument("--json", help="also write the band structure as ASE JSON")
    parser.add_argument("--path", default=None, help="special points, e.g. GMKG (default from the 2D lattice)")
    parser.add_argument("--npoints", type=int, default=100, help="k-points along the path (default 100)")
    parser.add_argument("--n-bands", type=int, help="bands nearest the target energy (default: all; 8 for large cells)")
    parser.add_argument("--energy", type=float, default=0.0, help="target energy relative to E_F, eV (default 0)")
    parser.add_argument("--method", choices=("auto", "dense", "sparse"), default="auto")
    parser.add_argument("--emin", type=float, help="lower plot limit, eV relative to E_F")
    parser.add_argument("--emax", type=float, help="upper plot limit, eV relative to E_F")
    parser.add_argument("--workers", type=int, default=0,
                        help="processes for the sparse route (k-points in parallel; default: 2 if the "
                        "machine has 2 or more cores, else 1)")
    parser.add_argument("--title", help="plot title")


def _fermi_dense(ham, n_electrons):
    from wander.tb.dos import auto_kgrid, grid_eigenvalues
    from wander.tb.fermi import fermi_level

    kgrid = auto_kgrid(ham)
    eig, w = grid_eigenvalues(ham, kgrid)
    return fermi_level(eig, n_electrons, w), f"{kgrid[0]}x{kgrid[1]}x{kgrid[2]} k-grid"


def limit_blas_threads() -> None:
    """Single-threaded BLAS unless the user chose otherwise (set before numpy is imported).

    SuperLU's small supernodes gain nothing from threaded BLAS, and on a busy machine threaded
    BLAS was measured to double the time of the sparse band route; k-points run in parallel
    processes instead (``--workers``).
    """
    import os

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def run(args: argparse.Namespace) -> int:
    limit_blas_threads()
    import os
    import time

    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from wander.tb.bands import band_structure
    from wander.tb.eigen import DENSE_MAX
    from wander.tb.fermi import fermi_level_at_k
    from wander.tb.files import atomic_path
    from wander.tb.loading import load_hamiltonian
    from wander.tb.plotting import plot_band_structure

    t0 = time.perf_counter()
    src = load_hamiltonian(
        hr=args.hr,
        win=args.win,
        centres=args.centres,
        wsvec=args.wsvec,
        structure=args.structure,
        tb_model=args.tb_model,
        ham=args.ham,
        n_electrons=args.n_electrons,
    )
    ham = src.ham
    print(f"{src.description} ({time.perf_counter() - t0:.1f} s)")
    sparse = args.method == "sparse" or (args.method == "auto" and ham.n_orbitals > DENSE_MAX)
    n_el = src.n_electrons
    centred = args.energy == 0.0  # bands centred on E_F by index; otherwise nearest E_F + energy
    if not sparse:
        ef, where = (0.0, "no electron count") if n_el is None else _fermi_dense(ham, n_el)
        energy = None if args.n_bands is None else ef + args.energy
        bs = band_structure(
            ham, args.path, args.npoints, n_bands=args.n_bands, energy=energy, method="dense", fermi_level=ef,
            n_electrons=n_el if centred else None,
        )
    else:
        n_bands = 8 if args.n_bands is None else args.n_bands
        if n_el is None:
            e0, where = 0.0, "no electron count: energies relative to 0 eV"
        else:
            t1 = time.perf_counter()
            asm = ham.assembler(ordered=True, diagonal=True)
            e0 = fermi_level_at_k(asm.matrix(np.zeros(3)), n_el)
            where = "Gamma point"
            print(f"E_F at Gamma from inertia counts: {e0:.6f} eV ({time.perf_counter() - t1:.1f} s)")
        t1 = time.perf_counter()
        kw = dict(n_bands=n_bands, energy=e0 + args.energy, method="sparse", progress=True,
                  workers=args.workers or min(2, os.cpu_count() or 1))
        if n_el is not None and centred:
            try:
                bs = band_structure(ham, args.path, args.npoints, n_electrons=n_el, **kw)
                where = "band-path k-points"
            except ValueError as exc:
                if "window" not in str(exc):
                    raise
                bs = None
                print(f"note: {exc}; using the Gamma-point E_F")
        else:
            bs = None
        if bs is None:
            bs = band_structure(ham, args.path, args.npoints, fermi_level=e0, **kw)
        ef = bs.reference
        nk = len(bs.path.kpts)
        print(f"{nk} k-points, {n_bands} bands by shift-invert: {time.perf_counter() - t1:.1f} s")
    print(f"E_F = {ef:.6f} eV ({where})")
    if args.json:
        with atomic_path(args.json) as tmp:
            bs.write(tmp)
        print(f"wrote {args.json}")
    fig = plot_band_structure(bs, emin=args.emin, emax=args.emax, title=args.title or src.description.split(",")[0])
    with atomic_path(args.output) as tmp:
        fig.savefig(tmp, dpi=150)
    print(f"wrote {args.output} ({time.perf_counter() - t0:.1f} s total)")
    return 0
