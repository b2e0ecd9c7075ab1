"""ASE calculator for the wander force field.

>>> from wander.calculator import WanderCalculator
>>> atoms.calc = WanderCalculator("model.pt")            # or WanderCalculator(force_field_module)
>>> atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()

Properties (ASE names and units): ``energy`` and ``free_energy`` (eV, equal: the model has no
electronic entropy), ``energies`` (N,) eV, ``forces`` (N, 3) eV/Angstrom and ``stress`` (6,) Voigt
``xx, yy, zz, yz, xz, xy`` in eV/Angstrom^3 with the ASE sign (positive = tensile).

Stress is ``-virial / V`` with ``V = |det(cell)|`` the volume of the **whole** cell. For a 2D system
(``pbc=(True, True, False)``) that includes the vacuum along z, exactly as ASE does for slabs, so the
in-plane stress depends on the chosen vacuum; multiply by ``c`` (Angstrom) for a 2D stress in eV/Angstrom^2.
A cell with zero volume has no stress (``PropertyNotImplementedError``).

The neighbour list is rebuilt whenever the atomic numbers, the cell or the periodicity change, and
otherwise when some atom has moved by more than ``skin / 2`` since the last build; with ``skin=0``
(default) it is rebuilt on every call. Pairs in the skin beyond the model cutoff contribute exactly
nothing, so results do not depend on ``skin``. Large structures are evaluated in chunks of
``chunk_atoms`` centre atoms (see :mod:`wander.sim.evaluation`).
"""

from __future__ import annotations

import copy
import os
from typing import Any, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from wander.sim.evaluation import CompactNeighborList, build_neighbor_list, evaluate_forcefield

__all__ = ["WanderCalculator", "full_3x3_to_voigt"]


def full_3x3_to_voigt(t: np.ndarray) -> np.ndarray:
    """(3, 3) symmetric tensor -> Voigt (6,) in ASE order ``xx, yy, zz, yz, xz, xy``."""
    return np.array([t[0, 0], t[1, 1], t[2, 2], t[1, 2], t[0, 2], t[0, 1]])


class WanderCalculator(Calculator):
    """ASE calculator wrapping a :class:`wander.nn.model.ForceField`.

    Parameters
    ----------
    model
        A ForceField module, or the path of a checkpoint written by ``wander train``.
    device
        Torch device the model runs on (``"cpu"``, ``"cuda"``).
    skin
        Extra neighbour-list radius in Angstrom (>= 0) that lets the list be reused while every atom
        stays within ``skin / 2`` of where it was at the last build.
    chunk_atoms
        Centre atoms per chunk of the forward/backward pass (bounds autograd memory).
    precision
        ``None`` (the model's own precision), ``"float32"`` or ``"float64"``: the network runs in a
        copy of the model cast to this precision. Edge vectors, energies, forces and the virial are
        formed and summed in float64 either way; float32 is 2-3x faster on CPUs and changes forces by
        about 1e-6 relative (tested), which is far below the model's own error.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(
        self,
        model: torch.nn.Module | str | os.PathLike,
        device: str | torch.device = "cpu",
        skin: float = 0.0,
        chunk_atoms: int = 8192,
        precision: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(model, (str, os.PathLike)):
            from wander.train.checkpoint import load_model

            model = load_model(model)
        for attr in ("descriptor", "fitting", "type_map", "rcut", "dtype"):
            if not hasattr(model, attr):
                raise TypeError(f"model must be a wander ForceField (missing {attr!r}), got {type(model).__name__}")
        if not np.isfinite(skin) or skin < 0:
            raise ValueError(f"skin must be a finite number >= 0, got {skin!r}")
        if int(chunk_atoms) < 1:
            raise ValueError(f"chunk_atoms must be >= 1, got {chunk_atoms}")
        self.device = torch.device(device)
        if precision is not None:
            from wander.nn.model import PRECISIONS

            if precision not in PRECISIONS:
                raise ValueError(f"precision must be one of {sorted(PRECISIONS)} or None, got {precision!r}")
            if PRECISIONS[precision] != model.dtype:
                model = copy.deepcopy(model).to(PRECISIONS[precision])
        self.model = model.to(self.device).eval()
        self.skin = float(skin)
        self.chunk_atoms = int(chunk_atoms)
        self.n_builds = 0  #: number of neighbour-list builds so far
        self._nlist: CompactNeighborList | None = None
        self._ref: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ neighbour list
    def _neighbor_list(self, atoms: Atoms) -> CompactNeighborList:
        ref = self._ref
        stale = (
            self._nlist is None or ref is None
            or ref[0].shape != atoms.numbers.shape or not np.array_equal(ref[0], atoms.numbers)
            or not np.array_equal(ref[1], atoms.pbc) or not np.array_equal(ref[2], np.array(atoms.cell))
        )
        if not stale and self.skin > 0:
            moved = np.sqrt(((atoms.positions - ref[3]) ** 2).sum(1).max()) if len(atoms) else 0.0
            stale = moved > 0.5 * self.skin
        elif not stale:
            stale = True  # no skin: rebuild on every call
        if stale:
            self._nlist = build_neighbor_list(atoms, self.model.rcut + self.skin)
            self._ref = (atoms.numbers.copy(), np.array(atoms.pbc), np.array(atoms.cell), atoms.positions.copy())
            self.n_builds += 1
        return self._nlist

    # ------------------------------------------------------------------ ASE protocol
    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms  # a copy made by the base class; the caller's atoms are never touched
        volume = abs(float(np.linalg.det(np.array(atoms.cell))))
        want_stress = "stress" in properties
        if want_stress and volume <= 1e-12:
            raise PropertyNotImplementedError("stress needs a cell with non-zero volume")
        res = evaluate_forcefield(
            self.model, atoms, self._neighbor_list(atoms),
            compute_virial=volume > 1e-12, chunk_atoms=self.chunk_atoms, device=self.device,
        )
        self.results = {
            "energy": res.energy,
            "free_energy": res.energy,
            "energies": res.energies,
            "forces": res.forces,
        }
        if res.virial is not None:
            self.results["stress"] = full_3x3_to_voigt(-res.virial / volume)
