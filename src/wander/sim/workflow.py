"""End-to-end twisted-bilayer workflow: relax -> Hamiltonian -> flat bands, DOS, moire maps, summary.

:func:`run_workflow` is what ``wander run`` executes. Outputs in ``out_dir``:

==========================  ==============================================================
``structure_rigid.extxyz``  the input structure
``structure_relaxed.extxyz`` relaxed structure (when a calculator is given)
``relax.traj``              relaxation trajectory (every 10th step and the last)
``hamiltonian.npz``         the predicted Hamiltonian (:meth:`wander.tb.TBHamiltonian.save`)
``bands.json``, ``bands.png`` bands near E_F along the moire path (ASE BandStructure) + DOS panel
``bands_rigid_vs_relaxed.png`` rigid and relaxed bands on one axis (``compare_rigid``)
``structure_rigid_reference.extxyz`` the rigid structure of that comparison (``compare_rigid``)
``dos.png``                 DOS near E_F
``interlayer_distance.png`` local interlayer distance map
``displacement.png``        in-plane displacement field of the top layer (relaxed vs rigid)
``registry.png``            local stacking registry (AA / AB / BA / SP)
``ldos.png``                flat-band density (LDOS integrated over the flat bands, path k-points)
``summary.json``            flat-band width, gaps, Fermi level, timings, memory (see :func:`run_workflow`)
==========================  ==============================================================
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from wander.sim.memory import check_memory, estimate_memory, peak_rss

__all__ = ["FLAT_POSITIONS", "FlatBands", "flat_bands", "run_workflow"]


@dataclass(frozen=True)
class FlatBands:
    """The ``n_flat`` flat bands and their neighbours, along the sampled k-points (eV).

    ``width`` = max - min of the flat bands; ``gap_above`` = lowest remote band above minus the top of
    the flat bands, ``gap_below`` = bottom of the flat bands minus the highest remote band below
    (negative: overlap); ``centre`` = mean flat-band energy; ``fermi_level`` at the electron count.
    """

    fermi_level: float
    centre: float
    width: float
    gap_above: float | None
    gap_below: float | None
    first_band: int
    n_flat: int
    position: str = "neutrality"


FLAT_POSITIONS = ("neutrality", "valence", "conduction")


def flat_bands(energies: np.ndarray, band_offset: np.ndarray, n_electrons: float, n_flat: int = 4,
               spin_degeneracy: int = 2, position: str = "neutrality") -> FlatBands:
    """Locate the flat bands in windows of bands.

    Parameters
    ----------
    energies : (nk, nb) eV, ascending per k-point
    band_offset : (nk,) global index of ``energies[k, 0]``
    n_electrons : electrons per cell
    n_flat : number of (spinless) flat bands (4 for twisted bilayer graphene)
    position : where the flat bands are: ``"neutrality"`` (centred on charge neutrality, as the four
        bands of twisted bilayer graphene; ``n_flat`` even), ``"valence"`` (the ``n_flat`` highest
        filled bands, as the flat valence bands of twisted MoS2 or hBN) or ``"conduction"`` (the
        ``n_flat`` lowest empty bands)
    """
    from wander.tb.fermi import fermi_level

    e = np.asarray(energies, dtype=float)
    off = np.asarray(band_offset, dtype=np.int64)
    n_occ = float(n_electrons) / spin_degeneracy
    if position not in FLAT_POSITIONS:
        raise ValueError(f"position must be one of {FLAT_POSITIONS}, got {position!r}")
    if abs(n_occ - round(n_occ)) > 1e-9 or n_flat < 1 or (position == "neutrality" and n_flat % 2):
        raise ValueError(f"need an integer number of filled bands and n_flat >= 1 (even around charge "
                         f"neutrality), got {n_occ} filled bands, n_flat {n_flat}")
    first = int(round(n_occ)) - {"neutrality": n_flat // 2, "valence": n_flat, "conduction": 0}[position]
    local = first - off                                            # (nk,) window index of the first flat band
    nb = e.shape[1]
    if (local < 0).any() or (local + n_flat > nb).any():
        raise ValueError(f"the band window ({nb} bands) does not contain the {n_flat} flat bands ({position}) "
                         "at every k-point; increase n_bands")
    rows = np.arange(len(e))[:, None]
    flat = e[rows, local[:, None] + np.arange(n_flat)[None, :]]
    below = e[np.arange(len(e)), local - 1] if (local >= 1).all() else None
    above = e[np.arange(len(e)), local + n_flat] if (local + n_flat < nb).all() else None
    ef = fermi_level(e, n_electrons, spin_degeneracy=spin_degeneracy, band_offset=off)
    return FlatBands(
        fermi_level=float(ef), centre=float(flat.mean()), width=float(flat.max() - flat.min()),
        gap_above=None if above is None else float(above.min() - flat.max()),
        gap_below=None if below is None else float(flat.min() - below.max()),
        first_band=first, n_flat=int(n_flat), position=position,
    )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
        fh.write("\n")
    os.replace(tmp, path)


def _write_atoms(path: Path, atoms: Atoms) -> None:
    from ase.io import write

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".extxyz")
    os.close(fd)
    write(tmp, atoms, format="extxyz")
    os.replace(tmp, path)


def _initial_energy(ham: Any, n_electrons: float) -> float:
    """Fermi-level guess at Gamma (dense below DENSE_MAX orbitals, else inertia counts)."""
    from wander.tb.eigen import DENSE_MAX, eigvalsh_dense
    from wander.tb.fermi import fermi_level, fermi_level_at_k

    if ham.n_orbitals <= DENSE_MAX:
        return float(fermi_level(eigvalsh_dense(ham.hk(np.zeros(3)))[None, :], n_electrons))
    h = ham.assembler(ordered=True, diagonal=True).matrix(np.zeros(3))
    return float(fermi_level_at_k(h, n_electrons))


def _path_bands(ham: Any, n_electrons: float, npoints: int, n_bands: int, n_flat: int, progress: bool,
                path: Any = None, workers: int = 1, position: str = "neutrality"):
    """Bands near charge neutrality along the moire path (or along ``path``, same fractional k-points):
    ``(BandStructure, BandWindows, FlatBands)``; the windows carry ``|psi|^2`` of their bands."""
    from ase.spectrum.band_structure import BandStructure

    from wander.tb import band_windows, bandpath_2d

    guess = _initial_energy(ham, n_electrons)
    path = bandpath_2d(ham.cell, None, npoints) if path is None else path
    win = band_windows(ham, path.kpts, n_bands=min(n_bands, ham.n_orbitals), energy=guess, progress=progress,
                       workers=workers, densities=True)
    if win.band_offset is None:
        raise RuntimeError("band indices are unknown (no inertia count): cannot locate the flat bands")
    fb = flat_bands(win.energies, win.band_offset, n_electrons, n_flat=n_flat, position=position)
    return BandStructure(path, win.energies[None], reference=fb.fermi_level), win, fb


def _flat_density(win: Any, fb: FlatBands, ham: Any, atoms: Atoms) -> Any:
    """Relative per-atom density of the flat bands over the path's k-points (a MoireMap)."""
    from wander.moire.ldos import state_density_map

    local = fb.first_band - np.asarray(win.band_offset, dtype=np.int64)     # (nk,) window index
    dens = win.densities[np.arange(len(local))[:, None], local[:, None] + np.arange(fb.n_flat)[None, :]]
    return state_density_map(dens, ham.orbital_atoms, atoms,
                             name=f"{fb.n_flat} flat bands, {len(win.kpts)} path k-points")


def _density_by_registry(dmap: Any, reg: Any) -> dict[str, float]:
    labels, sampled = reg.extra["label"], reg.extra["atoms"]
    return {k: float(dmap.values[sampled[labels == k]].mean()) for k in ("AA", "AB", "BA", "SP") if (labels == k).any()}


def _angle_label(angle: float | None) -> str:
    return "" if angle is None else f"{angle:.2f}°"


def _flat_summary(fb: FlatBands) -> dict[str, Any]:
    return {
        "fermi_level_eV": fb.fermi_level, "centre_eV": fb.centre, "width_meV": 1e3 * fb.width,
        "gap_above_meV": None if fb.gap_above is None else 1e3 * fb.gap_above,
        "gap_below_meV": None if fb.gap_below is None else 1e3 * fb.gap_below,
        "first_band": fb.first_band, "n_flat": fb.n_flat, "position": fb.position,
    }


def _registry_counts(reg: Any) -> dict[str, int]:
    """Sampled sites per local stacking (AA, AB, BA, SP) of a :func:`stacking_registry` map."""
    return {k: int((reg.extra["label"] == k).sum()) for k in ("AA", "AB", "BA", "SP")}


def _mean_distance(atoms: Atoms) -> float:
    """Mean z of layer 1 minus mean z of layer 0, Angstrom."""
    z, layer = atoms.positions[:, 2], atoms.arrays["layer"]
    return float(z[layer == 1].mean() - z[layer == 0].mean())


def _rigid_reference(atoms: Atoms, relaxed: Atoms, rigid_distance: str) -> Atoms:
    """The rigid structure of the rigid-vs-relaxed comparison (see ``run_workflow``)."""
    if rigid_distance == "input":
        return atoms
    if rigid_distance != "relaxed":
        raise ValueError(f"rigid_distance must be 'relaxed' or 'input', got {rigid_distance!r}")
    layer = atoms.arrays.get("layer")
    if layer is None or set(np.unique(layer)) != {0, 1}:
        raise ValueError("rigid_distance='relaxed' needs a bilayer with layer tags 0 and 1; use 'input'")
    rigid = atoms.copy()
    rigid.positions[layer == 1, 2] += _mean_distance(relaxed) - _mean_distance(atoms)
    rigid.info["rigid_reference"] = "input structure at the relaxed mean interlayer distance"
    return rigid


def _plot_rigid_vs_relaxed(bs_rigid, fb_rigid: FlatBands, bs, fb: FlatBands, summary: dict[str, Any]):
    """Rigid (grey) and relaxed (colour) bands on one axis, each relative to its own E_F."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from wander.tb.plotting import plot_band_structure

    half = max(fb.width, fb_rigid.width, 0.02) * 2.5
    fig, ax = plt.subplots(figsize=(5.5, 5), layout="constrained")
    plot_band_structure(bs_rigid, emin=-half, emax=half, ax=ax, color="0.6")
    plot_band_structure(bs, emin=-half, emax=half, ax=ax, color="C3")
    ax.legend([Line2D([], [], color="0.6"), Line2D([], [], color="C3")],
              [f"rigid: flat width {1e3 * fb_rigid.width:.1f} meV",
               f"relaxed: flat width {1e3 * fb.width:.1f} meV"], loc="upper right", fontsize=8)
    ax.set_title(f"{summary['formula']} {_angle_label(summary['angle_deg'])}: rigid vs relaxed")
    return fig


def run_workflow(
    atoms: Atoms,
    predictor: Callable[[Atoms], Any],
    out_dir: str | os.PathLike,
    calculator: Calculator | None = None,
    *,
    n_electrons: float | None = None,
    relax_options: dict[str, Any] | None = None,
    n_flat: int = 4,
    flat_position: str = "neutrality",
    n_bands: int = 12,
    npoints: int = 60,
    dos_kgrid: tuple[int, int, int] = (6, 6, 1),
    dos_width: float = 0.005,
    memory_options: dict[str, Any] | None = None,
    available_memory: int | None = None,
    compare_rigid: bool = False,
    rigid_distance: str = "relaxed",
    workers: int = 1,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Relax (if ``calculator``), predict the Hamiltonian, and compute flat bands, DOS and maps.

    Parameters
    ----------
    atoms
        Twisted bilayer (pbc ``(T, T, F)``, ``arrays["layer"]``).
    predictor
        ``atoms -> TBHamiltonian`` (e.g. :class:`wander.sim.predictors.HamiltonianPredictor`); if it
        has an ``electrons(atoms, ham)`` method it supplies the electron count.
    out_dir
        Output folder (created).
    calculator
        Force field for the relaxation; ``None`` skips it (rigid structure).
    n_electrons
        Electrons per cell (default: from the predictor, e.g. one per pz orbital).
    relax_options
        Keyword arguments of :func:`wander.sim.relax.relax` (``fmax``, ``steps``, ``cell``, ``optimizer``).
    n_flat, n_bands, npoints
        Flat bands, bands computed per k-point, k-points on the path.
    flat_position
        Where the flat bands are (:func:`flat_bands`): ``"neutrality"`` (twisted bilayer graphene),
        ``"valence"`` / ``"conduction"`` (band edges of semiconducting bilayers such as MoS2).
    dos_kgrid, dos_width
        k-grid (Gamma-centred) and broadening (eV) of the DOS.
    memory_options
        Keyword arguments of :func:`wander.sim.memory.estimate_memory`.
    available_memory
        Bytes to check the estimate against (default ``MemAvailable``).
    compare_rigid
        Also predict the Hamiltonian of the rigid structure and compute its bands on the same path
        (``bands_rigid.json``, ``bands_rigid_vs_relaxed.png``, ``summary["rigid"]``); only with a relaxation.
    rigid_distance
        Interlayer distance of that rigid reference: ``"relaxed"`` (default) moves the rigid layers
        apart to the mean distance of the relaxed structure, so that the comparison isolates the
        in-plane and corrugation relaxation (the interlayer coupling, and with it the magic angle,
        depends strongly on the mean distance); ``"input"`` keeps the input structure as built.
    workers
        Processes for the sparse band solves (k-points of the path in parallel; each holds one
        factorisation, which the memory estimate counts).

    Returns
    -------
    dict
        The content of ``summary.json``: ``flat_bands`` (meV widths / gaps, eV energies), ``timings_s``,
        ``memory`` (estimate and measured ``peak_rss_bytes``), ``relax`` and map statistics.
    """
    from wander.moire.maps import displacement_field, interlayer_distance_map, stacking_registry
    from wander.moire.plots import plot_displacement, plot_map, plot_registry, save_figure
    from wander.sim.relax import relax
    from wander.tb import density_of_states
    from wander.tb.eigen import DENSE_MAX
    from wander.tb.plotting import plot_band_structure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    summary: dict[str, Any] = {
        "n_atoms": len(atoms), "formula": atoms.get_chemical_formula(),
        "angle_deg": atoms.info.get("angle"), "material": atoms.info.get("material"),
    }
    if compare_rigid and calculator is not None:
        _rigid_reference(atoms, atoms, rigid_distance)  # bad choices fail here, not after the relaxation
    n_paths = 2 if compare_rigid and calculator is not None else 1
    est = estimate_memory(atoms, relax=calculator is not None, **{"workers": workers, "n_bands": n_bands,
                                                                  "band_kpoints": n_paths * npoints,
                                                                  **(memory_options or {})})
    log(est.report())
    check_memory(est, available=available_memory)
    summary["memory"] = {"estimate": est.to_dict()}
    _write_atoms(out / "structure_rigid.extxyz", atoms)

    relaxed = atoms
    if calculator is not None:
        t0 = time.perf_counter()
        opts = {"fmax": 0.01, "steps": 1000, "cell": "in-plane", "optimizer": "LBFGS", **(relax_options or {})}
        relaxed = relax(atoms, calculator, trajectory=out / "relax.traj", traj_interval=10, progress=progress,
                        **opts)
        timings["relax"] = time.perf_counter() - t0
        _write_atoms(out / "structure_relaxed.extxyz", relaxed)
        summary["relax"] = {k: relaxed.info[k] for k in ("relax_converged", "relax_steps", "relax_fmax")}
        summary["relax"].update(energy_initial_eV=relaxed.info["relax_energy_initial"],
                                energy_final_eV=float(relaxed.get_potential_energy()), **opts)
        log(f"relaxed: {relaxed.info['relax_steps']} steps, fmax {relaxed.info['relax_fmax']:.4g} eV/A, "
            f"converged={relaxed.info['relax_converged']}")

    t0 = time.perf_counter()
    ham = predictor(relaxed)
    timings["hamiltonian"] = time.perf_counter() - t0
    ham.save(out / "hamiltonian.npz")
    if n_electrons is None and hasattr(predictor, "electrons"):
        n_electrons = predictor.electrons(relaxed, ham)
    if n_electrons is None:
        raise ValueError("the electron count is unknown for this Hamiltonian; pass n_electrons")
    summary.update(n_orbitals=ham.n_orbitals, n_hoppings=ham.n_hoppings, n_electrons=n_electrons)

    t0 = time.perf_counter()
    bs, win, fb = _path_bands(ham, n_electrons, npoints, n_bands, n_flat, progress, workers=workers,
                              position=flat_position)
    timings["bands"] = time.perf_counter() - t0
    bs.write(str(out / "bands.json"))
    if compare_rigid and relaxed is not atoms:
        t0 = time.perf_counter()
        rigid = _rigid_reference(atoms, relaxed, rigid_distance)
        ham_rigid = predictor(rigid)
        bs_rigid, win_rigid, fb_rigid = _path_bands(ham_rigid, n_electrons, npoints, n_bands, n_flat, progress,
                                                    path=bs.path, workers=workers, position=flat_position)
        timings["rigid_bands"] = time.perf_counter() - t0
        bs_rigid.write(str(out / "bands_rigid.json"))
        summary["rigid"] = {"flat_bands": _flat_summary(fb_rigid), "interlayer_distance": rigid_distance,
                            "mean_interlayer_distance_A": _mean_distance(rigid)}
        _write_atoms(out / "structure_rigid_reference.extxyz", rigid)
        save_figure(_plot_rigid_vs_relaxed(bs_rigid, fb_rigid, bs, fb, summary), str(out / "bands_rigid_vs_relaxed.png"))

    t0 = time.perf_counter()
    method = "exact" if ham.n_orbitals <= DENSE_MAX else "kpm"
    span = max(4 * fb.width, 0.3)
    dos = density_of_states(ham, dos_kgrid if method == "exact" else (1, 1, 1), method=method, width=dos_width,
                            emin=fb.fermi_level - span, emax=fb.fermi_level + span, npts=600)
    timings["dos"] = time.perf_counter() - t0
    lo = min(-2 * fb.width, -0.1) if fb.gap_below is None else -(fb.fermi_level - fb.centre + fb.width) - 0.1
    save_figure(plot_band_structure(bs, dos=dos, emin=lo, emax=-lo,
                                    title=f"{summary['formula']} {_angle_label(summary['angle_deg'])}"), str(out / "bands.png"))
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(dos.get_energies() - fb.fermi_level, dos.get_weights(), lw=1.0)
    ax.set_xlabel("E - E_F (eV)")
    ax.set_ylabel("DOS (states / eV / cell / spin)")
    save_figure(fig, str(out / "dos.png"))

    t0 = time.perf_counter()
    dist = interlayer_distance_map(relaxed)
    save_figure(plot_map(dist, cmap="coolwarm"), str(out / "interlayer_distance.png"))
    reg = stacking_registry(relaxed)
    save_figure(plot_registry(reg), str(out / "registry.png"))
    maps: dict[str, Any] = {"interlayer_distance_A": dist.summary(), "registry_counts": _registry_counts(reg)}
    if "rigid" in summary:  # the rigid reference has the input's in-plane positions, hence its registry
        reg_rigid = stacking_registry(rigid)
        summary["rigid"]["registry_counts"] = _registry_counts(reg_rigid)
    if relaxed is not atoms:
        disp = displacement_field(atoms, relaxed)
        save_figure(plot_displacement(disp, layer=relaxed.arrays["layer"], which=1), str(out / "displacement.png"))
        maps["max_inplane_displacement_A"] = float(np.linalg.norm(disp.values[:, :2], axis=1).max())
    # the flat bands' |psi|^2 at the path's k-points (from the band solves): the LDOS integrated over the
    # flat-band energies, without further solves; a single k-point (Gamma) is a poor sample of the manifold
    lmap = _flat_density(win, fb, ham, relaxed)
    save_figure(plot_map(lmap, cmap="inferno", title=f"flat-band density ({lmap.name})"), str(out / "ldos.png"))
    maps["flat_band_density_by_registry"] = _density_by_registry(lmap, reg)
    if "rigid" in summary:
        summary["rigid"]["flat_band_density_by_registry"] = _density_by_registry(
            _flat_density(win_rigid, fb_rigid, ham_rigid, rigid), reg_rigid)
    timings["maps"] = time.perf_counter() - t0

    summary["flat_bands"] = _flat_summary(fb) | {"n_kpoints": len(bs.path.kpts), "path": bs.path.path,
                                                 "solver": win.method}
    summary["maps"] = maps
    summary["timings_s"] = timings
    summary["memory"]["peak_rss_bytes"] = peak_rss()
    _write_json(out / "summary.json", summary)
    return summary
