"""Refit the interlayer term of a trained force field to what its network leaves on the scan frames.

Training fits the Kolmogorov-Crespi term first (``model.interlayer.fit_configs``) and the network
then learns the rest of every frame. The network is not blind to the other layer, so after training
the *total* model no longer reproduces the registry scan exactly: it shifts the binding minimum and
the stacking energies by a few meV per cell, which is what a twisted-bilayer relaxation is most
sensitive to. :func:`refit_interlayer` freezes the network and refits the eight parameters of the
term to ``E_DFT - E_network`` on the scan frames (energies only; one free offset), then re-centres
the per-type energy bias of the network on all given frames so that absolute energies are not moved
by the offset of the new term. Nothing else changes: the descriptor, hence any Hamiltonian heads
built on it, is untouched.

:func:`refit_checkpoint` applies it to a checkpoint file (``wander refit-interlayer``).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ase import Atoms

__all__ = ["refit_interlayer", "refit_checkpoint"]


def _graphs(model, frames: Sequence[Atoms]):
    from wander.data.datasets import frame_labels
    from wander.data.graph import AtomGraph

    return [AtomGraph.from_atoms(a, model.type_map, model.rcut, dtype=model.dtype, labels=frame_labels(a))
            for a in frames]


def _scan_rmse(model, batch) -> float:
    """RMSE (meV per frame) of model against labels over ``batch`` after removing the mean offset."""
    e = model(batch, compute_forces=False, compute_virial=False)["energy"]
    d = (batch.labels["energy"].to(e.dtype) - e).detach()
    return float((d - d.mean()).pow(2).mean().sqrt()) * 1e3


def refit_interlayer(model, frames: Sequence[Atoms], fit_configs: str = "blgscan_*", steps: int = 1500,
                     lr: float = 0.02) -> dict[str, Any]:
    """Refit ``model.interlayer`` with the network frozen, in place; returns a report.

    Parameters
    ----------
    model
        A :class:`wander.nn.model.ForceField` with an interlayer term.
    frames
        Labelled training frames (energy and forces). The term is fitted to those whose
        ``info["config"]`` matches ``fit_configs`` (one composition, e.g. the registry scan); the
        energy bias is re-centred on all frames with an energy label.
    steps, lr
        Adam steps and learning rate of :func:`wander.nn.interlayer.fit_interlayer`.

    Returns
    -------
    dict
        ``scan_rmse_meV_before`` / ``_after`` (total model on the fitted frames, mean offset removed),
        the fit report of the term, the bias shift per type (eV) and the frame counts.
    """
    from wander.data.datasets import frame_labels
    from wander.data.graph import collate, species_indices
    from wander.nn.fitting import energy_bias_from_data
    from wander.nn.interlayer import fit_interlayer

    term = getattr(model, "interlayer", None)
    if term is None:
        raise ValueError("refit_interlayer: the model has no interlayer term")
    scan = [a for a in frames if fnmatch.fnmatch(str(a.info.get("config", "")), fit_configs)]
    if not scan:
        raise ValueError(f"refit_interlayer: fit_configs {fit_configs!r} matches no frame (info['config'])")
    labelled = [a for a in frames if "energy" in frame_labels(a)]
    model.eval()
    graphs = _graphs(model, scan)
    batch = collate(graphs)
    before = _scan_rmse(model, batch)
    out = model(batch, compute_virial=False)
    e_term, f_term = term.energy_forces(batch)
    baseline = ((out["energy"] - e_term).detach(), (out["forces"] - f_term).detach())
    fit = fit_interlayer(term, graphs, force_weight=0.0, steps=steps, lr=lr,
                         baseline=baseline)
    after = _scan_rmse(model, batch)
    # absolute energies: the new term carries a different constant; give it back to the bias
    counts, de = [], []
    ntypes = len(model.type_map)
    for chunk in range(0, len(labelled), 16):
        part = labelled[chunk:chunk + 16]
        b = collate(_graphs(model, part))
        e = model(b, compute_forces=False, compute_virial=False)["energy"].detach().numpy()
        for a, ek in zip(part, e):
            counts.append(np.bincount(species_indices(a.get_chemical_symbols(), model.type_map), minlength=ntypes))
            de.append(float(frame_labels(a)["energy"]) - float(ek))
    shift = energy_bias_from_data(np.stack(counts), np.asarray(de))
    with torch.no_grad():
        model.fitting.bias_atom_e += torch.as_tensor(shift, dtype=model.fitting.bias_atom_e.dtype)
    return {"fit_configs": fit_configs, "frames_fitted": len(scan), "frames_bias": len(labelled),
            "scan_rmse_meV_before": before, "scan_rmse_meV_after": after,
            "bias_shift_eV": {t: float(s) for t, s in zip(model.type_map, shift)}, **fit}


def refit_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, frames: Sequence[Atoms],
                     fit_configs: str = "blgscan_*", steps: int = 1500) -> dict[str, Any]:
    """:func:`refit_interlayer` on the force field of checkpoint ``src``, written to ``dst``.

    Hamiltonian heads, config and the rest of the metadata are kept; the report is stored in
    ``metadata["interlayer_refit"]``. Optimizer and RNG states are dropped (the result is a model,
    not a resumable run).
    """
    from wander.io.atomic import atomic_path
    from wander.train.checkpoint import _plain, load_checkpoint, load_model

    payload = load_checkpoint(src)
    model = load_model(src)
    report = refit_interlayer(model, frames, fit_configs=fit_configs, steps=steps)
    payload["state_dict"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    payload.pop("optimizer", None)
    payload.pop("rng", None)
    payload["metadata"] = _plain({**payload.get("metadata", {}), "interlayer_refit": report})
    with atomic_path(dst) as tmp:
        torch.save(payload, tmp)
    return report
