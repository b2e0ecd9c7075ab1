"""Geometry relaxation with ASE optimizers, optionally relaxing the in-plane cell of a 2D system.

``cell`` modes:

- ``"fixed"``    atoms only;
- ``"in-plane"`` atoms and the in-plane strain ``xx, yy, xy`` through :class:`ase.filters.FrechetCellFilter`
  with the Voigt mask ``(1, 1, 0, 0, 0, 1)``: the out-of-plane cell vector ``c`` (vacuum) and the z
  components of the in-plane vectors stay exactly as they are;
- ``"full"``     atoms and all six strain components (3D-periodic systems).

Convergence: the largest atomic force and, for cell modes, the largest row of ``virial / N`` (eV per
atom, the criterion of ASE's default cell filter) below ``fmax``.

Cell coordinates are scaled for the optimizer. ASE's default ``exp_cell_factor = N`` makes the
strain mode about N times softer than an atom in the optimizer's coordinates (curvature
``K / N`` with ``K`` the elastic energy per atom per unit strain squared), so LBFGS moves the cell
by ``~1e-8`` strain per step at 1e5 atoms and the in-plane stress of a large moire cell barely
relaxes. With ``exp_cell_factor = sqrt(N)`` the strain mode's curvature is ``K``, the size of an
atom's (graphene: ``K`` about 55 eV, atoms about 30-70 eV/A^2), at every cell size; only the
coordinates change, not the minimum or the convergence criterion above.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator

__all__ = ["BFGS_MAX_ATOMS", "CELL_MODES", "OPTIMIZERS", "relax"]

#: Voigt masks (xx, yy, zz, yz, xz, xy) of the cell modes; None = positions only.
CELL_MODES: dict[str, tuple[int, ...] | None] = {
    "fixed": None,
    "in-plane": (1, 1, 0, 0, 0, 1),
    "full": (1, 1, 1, 1, 1, 1),
}
OPTIMIZERS = ("FIRE", "BFGS", "LBFGS")

#: BFGS keeps a dense (3N + 3)^2 Hessian and diagonalises it every step: refused above this size.
BFGS_MAX_ATOMS = 2000


def _optimizer_class(name: str) -> type:
    from ase.optimize import BFGS, FIRE, LBFGS

    table = {"FIRE": FIRE, "BFGS": BFGS, "LBFGS": LBFGS}
    key = name.upper()
    if key not in table:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    return table[key]


def relax(
    atoms: Atoms,
    calculator: Calculator,
    fmax: float = 0.01,
    steps: int = 1000,
    cell: str = "fixed",
    optimizer: str = "LBFGS",
    trajectory: str | os.PathLike | None = None,
    traj_interval: int = 1,
    progress: bool = True,
    logfile: str | None = None,
) -> Atoms:
    """Relax a copy of ``atoms`` and return it; ``atoms`` itself is not modified.

    Parameters
    ----------
    atoms
        Starting structure.
    calculator
        ASE calculator (e.g. :class:`wander.calculator.WanderCalculator`); needs ``stress`` for cell modes.
    fmax
        Force convergence threshold, eV/Angstrom (> 0).
    steps
        Maximum number of optimizer steps (>= 0).
    cell
        ``"fixed"``, ``"in-plane"`` (2D systems, pbc ``(T, T, F)``) or ``"full"`` (pbc all True).
    optimizer
        ``"LBFGS"`` (default; on a 3,268-atom twisted bilayer it converged to fmax 0.02 in 69 steps where
        FIRE had not converged after 800), ``"FIRE"`` or ``"BFGS"`` (dense Hessian: refused above
        :data:`BFGS_MAX_ATOMS` atoms).
    trajectory
        ASE ``.traj`` file receiving every ``traj_interval``-th step (atoms with cell, energy, forces,
        stress); the last step is always written.
    traj_interval
        Steps between trajectory frames (>= 1).
    progress
        Show a tqdm progress bar with the current fmax.
    logfile
        Optimizer log (``"-"`` for stdout); default none.

    Returns
    -------
    Atoms
        Relaxed copy carrying a :class:`SinglePointCalculator` with the final energy and forces (and
        stress for cell modes) and ``info`` keys ``relax_converged`` (bool), ``relax_steps`` (int),
        ``relax_fmax`` (float, eV/Angstrom), ``relax_energy_initial`` (eV).
        A run that stops at ``steps`` without converging emits a ``RuntimeWarning``.
    """
    if cell not in CELL_MODES:
        raise ValueError(f"cell must be one of {tuple(CELL_MODES)}, got {cell!r}")
    if not np.isfinite(fmax) or fmax <= 0:
        raise ValueError(f"fmax must be a positive number, got {fmax!r}")
    if int(steps) < 0:
        raise ValueError(f"steps must be >= 0, got {steps!r}")
    if int(traj_interval) < 1:
        raise ValueError(f"traj_interval must be >= 1, got {traj_interval!r}")
    opt_cls = _optimizer_class(optimizer)
    pbc = tuple(bool(p) for p in atoms.pbc)
    if cell == "in-plane":
        c = np.array(atoms.cell)
        if pbc != (True, True, False):
            raise ValueError(f"cell='in-plane' needs a 2D system with pbc (True, True, False), got {pbc}")
        if abs(c[0, 2]) > 1e-8 or abs(c[1, 2]) > 1e-8 or np.abs(c[2, :2]).max() > 1e-8 or c[2, 2] <= 0:
            raise ValueError("cell='in-plane' needs in-plane vectors a1, a2 in the xy plane and c along +z")
    if cell == "full" and not all(pbc):
        raise ValueError(f"cell='full' needs pbc (True, True, True), got {pbc}; use 'in-plane' for 2D systems")
    if len(atoms) == 0:
        raise ValueError("cannot relax a structure without atoms")
    if opt_cls.__name__ == "BFGS" and len(atoms) > BFGS_MAX_ATOMS:
        raise ValueError(f"BFGS stores and diagonalises a dense Hessian of {3 * len(atoms)}^2 entries every step; "
                         f"above {BFGS_MAX_ATOMS} atoms use LBFGS (or FIRE)")

    work = atoms.copy()
    work.calc = calculator
    mask = CELL_MODES[cell]
    n_atoms = len(work)
    cell_factor = float(np.sqrt(n_atoms))
    if mask is None:
        target: Any = work
    else:
        from ase.filters import FrechetCellFilter

        target = FrechetCellFilter(work, mask=list(mask), exp_cell_factor=cell_factor)
    e0 = float(work.get_potential_energy())
    opt = opt_cls(target, logfile=logfile)

    def fmax_of_gradient(g: np.ndarray) -> float:
        """Largest atomic force and (cell modes) largest row of virial / N, eV/A."""
        g = np.asarray(g, dtype=float).reshape(-1, 3)
        if mask is not None:
            g = np.vstack([g[:n_atoms], g[n_atoms:] * (cell_factor / n_atoms)])
        return float(np.sqrt((g * g).sum(1).max())) if g.size else 0.0

    # the optimizer steps in the scaled coordinates but stops on the physical criterion
    opt.gradient_converged = lambda g: fmax_of_gradient(g) < opt.fmax
    traj = None
    if trajectory is not None:
        from ase.io.trajectory import Trajectory

        traj = Trajectory(os.fspath(trajectory), "w", work, properties=["energy", "forces"]
                          + (["stress"] if mask is not None else []))
        opt.attach(traj.write, interval=int(traj_interval))

    def current_fmax() -> float:
        return fmax_of_gradient(opt.optimizable.get_gradient())

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(steps), desc=f"relax ({cell}, {opt_cls.__name__})", unit="step", leave=False)
    converged = False
    fm = float("nan")
    try:
        with warnings.catch_warnings():
            # FrechetCellFilter takes scipy's logm of a near-identity deformation at every step; its
            # "may be inaccurate" estimate (~1e-12) is harmless and would otherwise flood the output.
            warnings.filterwarnings("ignore", message="logm result may be inaccurate", category=RuntimeWarning)
            for n_done, converged in enumerate(opt.irun(fmax=fmax, steps=int(steps))):
                fm = current_fmax()
                if bar is not None:
                    if n_done:
                        bar.update(1)
                    bar.set_postfix(fmax=f"{fm:.4f}", energy=f"{work.get_potential_energy():.6f}")
    finally:
        if bar is not None:
            bar.close()
        if traj is not None:
            if opt.nsteps % int(traj_interval):
                traj.write()                     # the final structure is always in the file
            traj.close()

    results = {"energy": float(work.get_potential_energy()), "forces": work.get_forces().copy()}
    results["free_energy"] = results["energy"]
    try:
        results["stress"] = work.get_stress().copy()
    except Exception:  # calculators without stress, or cells without volume
        if mask is not None:
            raise
    out = work.copy()
    out.calc = SinglePointCalculator(out, **results)
    out.info.update(relax_converged=bool(converged), relax_steps=int(opt.nsteps), relax_fmax=fm,
                    relax_energy_initial=e0)
    if not converged:
        warnings.warn(f"relaxation stopped after {opt.nsteps} steps at fmax = {fm:.4g} eV/A > {fmax}",
                      RuntimeWarning, stacklevel=2)
    return out
