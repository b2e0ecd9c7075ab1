"""``wander dos``: tight-binding density of states, exact (small cells) or KPM (large cells).

Examples::

    wander dos --structure graphene.extxyz --tb-model graphene-nn --kgrid 60 60 1 -o dos.png
    wander dos --structure tbg.extxyz --tb-model moon-koshino --method kpm --moments 4000 -o dos.png
"""

from __future__ import annotations

import argparse

from wander.cli.bands import add_input_arguments, limit_blas_threads


#: Largest cell whose Fermi level is found from sparse factorisations (inertia counts) for KPM.
INERTIA_MAX = 60_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
    parser.add_argument("-o", "--output", default="dos.png", help="figure file (default dos.png)")
    parser.add_argument("--data", help="also write 'energy(eV) E-E_F(eV) dos(states/eV/cell)' as text")
    parser.add_argument("--method", choices=("exact", "kpm", "auto"), default="auto",
                        help="exact: Gaussian-broadened eigenvalues; kpm: kernel polynomial method "
                        "(default: exact for small cells, kpm for large ones)")
    parser.add_argument("--kgrid", type=int, nargs=3, metavar=("N1", "N2", "N3"),
                        help="Gamma-centred k-grid (default: about 40 A / |a_i| points, 1 for large cells)")
    parser.add_argument("--width", type=float, default=0.01,
                        help="Gaussian width (exact) or KPM resolution, eV (default 0.01)")
    parser.add_argument("--moments", type=int, help="KPM moments (overrides --width)")
    parser.add_argument("--vectors", type=int, default=10, help="KPM random vectors per k-point (default 10)")
    parser.add_argument("--npts", type=int, default=2000, help="energy grid points (default 2000)")
    parser.add_argument("--emin", type=float, help="lower energy, eV relative to E_F")
    parser.add_argument("--emax", type=float, help="upper energy, eV relative to E_F")
    parser.add_argument("--seed", type=int, default=0, help="KPM random seed")
    parser.add_argument("--title", help="plot title")


def run(args: argparse.Namespace) -> int:
    limit_blas_threads()
    import time

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from wander.tb.dos import auto_kgrid, density_of_states, gaussian_dos, grid_eigenvalues
    from wander.tb.eigen import DENSE_MAX
    from wander.tb.fermi import fermi_level, fermi_level_at_k, fermi_level_from_dos
    from wander.tb.files import atomic_path
    from wander.tb.loading import load_hamiltonian

    t0 = time.perf_counter()
    src = load_hamiltonian(
        hr=args.hr, win=args.win, centres=args.centres, wsvec=args.wsvec, structure=args.structure,
        tb_model=args.tb_model, ham=args.ham, n_electrons=args.n_electrons,
    )
    ham = src.ham
    print(src.description)
    method = args.method
    if method == "auto":
        method = "exact" if ham.n_orbitals <= DENSE_MAX else "kpm"
    kgrid = tuple(args.kgrid) if args.kgrid else auto_kgrid(ham)
    n_el = src.n_electrons
    if method == "exact":
        eig, w = grid_eigenvalues(ham, kgrid)
        ef = 0.0 if n_el is None else fermi_level(eig, n_el, w)
        lo = eig.min() - 5 * args.width if args.emin is None else ef + args.emin
        hi = eig.max() + 5 * args.width if args.emax is None else ef + args.emax
        energies = np.linspace(lo, hi, args.npts)
        dos_values = gaussian_dos(eig, w, energies, args.width)
        label = f"exact, {kgrid[0]}x{kgrid[1]}x{kgrid[2]} k, width {args.width:g} eV"
    else:
        inertia = n_el is not None and ham.n_orbitals <= INERTIA_MAX
        ef = 0.0
        if inertia:  # exact count at Gamma (a stochastic integrated DOS is off by ~sqrt(N / vectors) states)
            ef = fermi_level_at_k(ham.assembler(ordered=True, diagonal=True).matrix(np.zeros(3)), n_el)
        window = inertia or n_el is None
        dos = density_of_states(
            ham, kgrid, method="kpm", width=args.width, npts=args.npts, moments=args.moments,
            vectors=args.vectors, seed=args.seed, progress=True,
            emin=None if args.emin is None or not window else ef + args.emin,
            emax=None if args.emax is None or not window else ef + args.emax,
        )
        energies, dos_values = np.asarray(dos.get_energies()), np.asarray(dos.get_weights())
        if not window:  # E_F from the integrated DOS over the whole spectrum, then cut the window
            ef = fermi_level_from_dos(energies, dos_values, n_el)
            sel = np.ones(len(energies), dtype=bool)
            if args.emin is not None:
                sel &= energies >= ef + args.emin
            if args.emax is not None:
                sel &= energies <= ef + args.emax
            energies, dos_values = energies[sel], dos_values[sel]
        label = (f"KPM, {dos.info['moments']} moments, {args.vectors} vectors, "
                 f"{kgrid[0]}x{kgrid[1]}x{kgrid[2]} k, resolution {dos.info['resolution']} eV")
    if n_el is None:
        where = "no electron count"
    elif method == "exact":
        where = "k-grid eigenvalues"
    elif ham.n_orbitals <= INERTIA_MAX:
        where = "Gamma point, inertia counts"
    else:
        where = "integrated KPM DOS: stochastic, use more --vectors for precision"
    print(f"{label}: {time.perf_counter() - t0:.1f} s")
    print(f"E_F = {ef:.6f} eV ({where})")
    if args.data:
        with atomic_path(args.data) as tmp:
            np.savetxt(tmp, np.c_[energies, energies - ef, dos_values],
                       header=f"{src.description}\n{label}\nE_F = {ef:.8f} eV\nenergy(eV) E-E_F(eV) dos(states/eV/cell/spin)")
        print(f"wrote {args.data}")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(energies - ef, dos_values, color="C1", lw=1.2)
    ax.fill_between(energies - ef, 0, dos_values, color="C1", alpha=0.3)
    ax.axvline(0.0, color="0.3", lw=0.8, ls="--")
    ax.set_xlabel("E - E_F (eV)")
    ax.set_ylabel("DOS (states/eV/cell/spin)")
    ax.set_xlim(energies[0] - ef, energies[-1] - ef)
    ax.set_ylim(bottom=0)
    ax.set_title(args.title or src.description.split(",")[0], fontsize=10)
    ax.text(0.01, 0.98, label, transform=ax.transAxes, va="top", fontsize=7, color="0.3")
    fig.tight_layout()
    with atomic_path(args.output) as tmp:
        fig.savefig(tmp, dpi=150)
    print(f"wrote {args.output}")
    return 0
