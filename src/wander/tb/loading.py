"""Build a :class:`TBHamiltonian` from the inputs the command line accepts."""

from __future__ import annotations

import os
from dataclasses import dataclass

from wander.tb.hamiltonian import TBHamiltonian

__all__ = ["HamiltonianSource", "load_hamiltonian"]


@dataclass(frozen=True)
class HamiltonianSource:
    """A Hamiltonian with what is known about its filling.

    Attributes
    ----------
    ham : TBHamiltonian
    n_electrons : float or None
        Electrons per cell if known (half filling, one per pz orbital, for the pz models).
    description : str
        One line for logs and plot titles.
    """

    ham: TBHamiltonian
    n_electrons: float | None
    description: str


def load_hamiltonian(
    *,
    hr: str | os.PathLike | None = None,
    win: str | os.PathLike | None = None,
    centres: str | os.PathLike | None = None,
    wsvec: str | os.PathLike | None = None,
    structure: str | os.PathLike | None = None,
    tb_model: str | None = None,
    ham: str | os.PathLike | None = None,
    n_electrons: float | None = None,
) -> HamiltonianSource:
    """Exactly one source: Wannier90 files (``hr`` + ``win``), a structure plus a pz model, or a
    saved ``.npz`` Hamiltonian.

    Raises
    ------
    ValueError
        No source, several sources, or an incomplete one.
    """
    given = [name for name, v in (("--hr", hr), ("--structure", structure), ("--ham", ham)) if v is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of --hr (with --win), --structure (with --tb-model) or --ham")
    if hr is not None:
        if win is None:
            raise ValueError("--hr needs --win (the cell and projections)")
        h = TBHamiltonian.from_wannier90(hr, win, centres, wsvec)
        return HamiltonianSource(h, n_electrons, f"{os.path.basename(str(hr))}: {h.n_orbitals} Wannier functions")
    if ham is not None:
        h = TBHamiltonian.load(ham)
        return HamiltonianSource(h, n_electrons, f"{os.path.basename(str(ham))}: {h.n_orbitals} orbitals")
    if tb_model is None:
        raise ValueError("--structure needs --tb-model")
    from ase.io import read

    from wander.tb.slater_koster import pz_model, pz_model_summary

    atoms = read(structure)
    h = pz_model(atoms, tb_model)
    n_el = float(h.n_orbitals) if n_electrons is None else n_electrons
    angle = atoms.info.get("angle")
    label = tb_model if angle is None else f"{tb_model} ({float(angle):.2f} deg twist)"
    return HamiltonianSource(h, n_el, f"{label}: {pz_model_summary(atoms, h)}")
