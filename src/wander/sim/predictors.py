"""Hamiltonian predictors: ``atoms -> TBHamiltonian`` from a trained checkpoint or a two-centre pz model.

A predictor is a callable returning the tight-binding Hamiltonian of any structure together with the
electron count per cell when it is known (half filling for pz models). Sources:

- a two-centre pz model of :data:`wander.tb.PZ_MODELS` (``"moon-koshino"``, ``"graphene-nn"``): a
  stand-in until the learned Hamiltonian heads are trained;
- a checkpoint holding Hamiltonian heads next to the force field: the payload of
  :func:`wander.train.checkpoint.load_checkpoint` with an extra entry ``"hamiltonian"`` =
  ``{"heads_config": HeadsConfig.to_dict(), "state_dict": heads state_dict, "n_electrons":
  {element: electrons per atom} (optional)}``. A force-field-only checkpoint is refused with a message
  that says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

from ase import Atoms

__all__ = ["HamiltonianPredictor", "checkpoint_predictor", "has_hamiltonian_heads", "pz_predictor", "predictor"]


@dataclass(frozen=True)
class HamiltonianPredictor:
    """``predict(atoms) -> TBHamiltonian`` with a description and an electron-count rule.

    Attributes
    ----------
    predict : callable, Atoms -> TBHamiltonian
    electrons : callable, (Atoms, TBHamiltonian) -> float or None (electrons per cell)
    description : str
    """

    predict: Callable[[Atoms], Any]
    electrons: Callable[[Atoms, Any], float | None]
    description: str

    def __call__(self, atoms: Atoms) -> Any:
        return self.predict(atoms)


def pz_predictor(name: str = "moon-koshino") -> HamiltonianPredictor:
    """Two-centre pz model ``name`` (one pz orbital and one electron per carbon atom)."""
    from wander.tb.slater_koster import PZ_MODELS, pz_model

    if name not in PZ_MODELS:
        raise ValueError(f"unknown tight-binding model {name!r}; choose from {sorted(PZ_MODELS)}")
    return HamiltonianPredictor(lambda atoms: pz_model(atoms, name), lambda atoms, ham: float(ham.n_orbitals),
                                f"{name} two-centre pz model")


def has_hamiltonian_heads(payload: dict[str, Any]) -> bool:
    """Whether a checkpoint payload carries Hamiltonian heads (see the module docstring)."""
    entry = payload.get("hamiltonian")
    return isinstance(entry, dict) and "heads_config" in entry and "state_dict" in entry


def checkpoint_predictor(path: str | os.PathLike, chunk_atoms: int = 8192,
                         progress: bool = False, hopping_cutoff: float | None = None) -> HamiltonianPredictor:
    """Hamiltonian heads of a checkpoint, fed by its force-field descriptor (``progress``: a bar over
    the chunks of pairs of large structures). ``hopping_cutoff`` (A): predict only the pairs within
    it, at most the heads' ``r_cut`` (a truncation for cells too large for the full range).

    Raises
    ------
    ValueError
        The checkpoint has no Hamiltonian heads (a force field only).
    """
    import torch

    from wander.nn.hamiltonian import HamiltonianHeads, HeadsConfig
    from wander.nn.hamiltonian.assemble import predict_hamiltonian
    from wander.sim.evaluation import build_neighbor_list, compute_descriptors
    from wander.train.checkpoint import load_checkpoint, load_model

    payload = load_checkpoint(path)
    if not has_hamiltonian_heads(payload):
        raise ValueError(
            f"{path}: this checkpoint holds a force field only (no Hamiltonian heads). Use "
            "--tb-model moon-koshino for the two-centre pz model of carbon bilayers, or a checkpoint "
            "trained with Hamiltonian heads."
        )
    entry = payload["hamiltonian"]
    ff = load_model(path)
    heads = HamiltonianHeads(HeadsConfig.from_dict(entry["heads_config"]), dtype=ff.dtype)
    heads.load_state_dict(entry["state_dict"])
    heads.eval()
    from wander.nn.hamiltonian.assemble import hopping_cutoff as _checked_cutoff

    r_cut = None if hopping_cutoff is None else _checked_cutoff(heads, float(hopping_cutoff))
    per_element = entry.get("n_electrons")

    def predict(atoms: Atoms) -> Any:
        nl = build_neighbor_list(atoms, ff.rcut)
        desc = compute_descriptors(ff, atoms, nl, chunk_atoms=chunk_atoms, progress=progress)
        with torch.no_grad():
            return predict_hamiltonian(heads, atoms, desc, progress=progress, r_cut=r_cut)

    def electrons(atoms: Atoms, ham: Any) -> float | None:
        if not per_element:
            return None
        missing = sorted(set(atoms.get_chemical_symbols()) - set(per_element))
        if missing:
            raise ValueError(f"{path}: no electron count for {missing}")
        return float(sum(per_element[s] for s in atoms.get_chemical_symbols()))

    cut = "" if r_cut is None or r_cut == heads.config.r_cut else \
        f" (pairs cut at {r_cut:g} A of the heads' {heads.config.r_cut:g} A)"
    return HamiltonianPredictor(predict, electrons, f"Hamiltonian heads of {os.fspath(path)}{cut}")


def predictor(model: str | os.PathLike | None = None, tb_model: str | None = None,
              hopping_cutoff: float | None = None, progress: bool = False) -> HamiltonianPredictor:
    """Exactly one of a checkpoint path (``model``) or a pz model name (``tb_model``);
    ``hopping_cutoff`` and ``progress`` only with a checkpoint (see :func:`checkpoint_predictor`)."""
    if (model is None) == (tb_model is None):
        raise ValueError("give exactly one Hamiltonian source: a model checkpoint or a tight-binding model name")
    if tb_model is not None and hopping_cutoff is not None:
        raise ValueError("a hopping cutoff applies to a model checkpoint's heads, not to a two-centre pz model")
    if tb_model is not None:
        return pz_predictor(tb_model)
    return checkpoint_predictor(model, progress=progress, hopping_cutoff=hopping_cutoff)
