"""Refit the interlayer term of a trained force field to what its network leaves on the scan frames.

Training fits the Kolmogorov-Crespi term first (``model.interlayer.fit_configs``) and the network
then learns the rest of every frame. The network is not blind to the other layer, so after training
the *total* model no longer reproduces the registry scan exactly: it shifts the binding minimum and
the stacking energies by a few meV per cell, which is what a twisted-bilayer relaxation is most
sensitive to. :func:`refit_interlayer` freezes the network and refits the eight parameters of the
term to ``E_DFT - E_network`` on the scan frames (energies; with ``force_weight`` their forces too,
and the fit report's force RMSE covers all three components), then re-centres (mean per-atom
residual, each frame weighted alike) the per-type energy bias of the network on all given frames.

The energy zero of the fit is the binding energy. With a free offset (the scan frames' intralayer
energy) the scan fixes only how the energy varies with registry and distance, not how deep the
binding well is: on the bilayer-graphene data that left the model bound by about 10 meV/atom
against 19 meV/atom in DFT. ``anchor="isolated"`` takes the offset from the frames
in which the term has no pairs (isolated layers: monolayers of the same data): the network's
residual per atom type on them is the energy the network owes every frame, so the term is fitted
to the absolute ``E_DFT - E_network - offset`` of the scan frames and carries the whole interlayer
binding. With a 6 A taper the eight Kolmogorov-Crespi parameters cannot carry both that depth and
the registry landscape of the DFT scan (anchored: binding 21 meV/atom, but the scan RMSE rises from
0.35 to 3.1 meV per cell and E(AA) - E(AB) at 3.25 A from 34.4 to 40.9 meV against 35.3 in DFT);
tapered at 9-10 A (``taper`` of :func:`refit_checkpoint`) the anchored fit keeps the landscape
(0.9 meV per frame). With scan frames out to where the binding fades (the bilayer-graphene tail at
4-7 A) the free offset finds the same depth from the data, so it stays the default.

Nothing else changes: the descriptor, hence any Hamiltonian heads built on it, is untouched.

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


def _type_counts(model, frames: Sequence[Atoms]) -> np.ndarray:
    from wander.data.graph import species_indices

    return np.stack([np.bincount(species_indices(a.get_chemical_symbols(), model.type_map),
                                 minlength=len(model.type_map)) for a in frames])


def _bias_per_atom(model, frames: Sequence[Atoms]) -> np.ndarray:
    """Per-type energies (eV) that minimise the squared *per-atom* residual ``(E_DFT - E_model) / n``
    over ``frames``: every frame counts alike, whatever its size (a least-squares fit of total
    energies would weight an 18-atom frame 81 times a 2-atom one)."""
    from wander.nn.fitting import energy_bias_from_data

    counts = _type_counts(model, frames).astype(float)
    n = counts.sum(1)
    return energy_bias_from_data(counts / n[:, None], _residuals(model, frames) / n)


def _residuals(model, frames: Sequence[Atoms]) -> np.ndarray:
    """``E_DFT - E_model`` per frame (eV)."""
    from wander.data.datasets import frame_labels
    from wander.data.graph import collate

    de = []
    for chunk in range(0, len(frames), 16):
        part = frames[chunk:chunk + 16]
        b = collate(_graphs(model, part))
        e = model(b, compute_forces=False, compute_virial=False)["energy"].detach()
        de += [float(frame_labels(a)["energy"]) - float(ek) for a, ek in zip(part, e.numpy())]
    return np.asarray(de)


def _isolated(model, frames: Sequence[Atoms]) -> list[Atoms]:
    """Frames in which the interlayer term has no pair (energy and forces exactly zero)."""
    from wander.data.graph import collate

    out = []
    for a in frames:
        e, f = model.interlayer.energy_forces(collate(_graphs(model, [a])))
        if float(e.detach().abs().sum()) == 0.0 and float(f.detach().abs().sum()) == 0.0:
            out.append(a)
    return out


def refit_interlayer(model, frames: Sequence[Atoms], fit_configs: str = "blgscan_*", steps: int = 1500,
                     lr: float = 0.02, anchor: str | None = None, force_weight: float = 0.0) -> dict[str, Any]:
    """Refit ``model.interlayer`` with the network frozen, in place; returns a report.

    Parameters
    ----------
    model
        A :class:`wander.nn.model.ForceField` with an interlayer term.
    frames
        Labelled training frames (energy and forces). The term is fitted to those whose
        ``info["config"]`` matches ``fit_configs`` (e.g. the registry scan; frames of different sizes
        share per-atom offsets); the energy bias is re-centred on all frames with an energy label.
    steps, lr
        Adam steps and learning rate of :func:`wander.nn.interlayer.fit_interlayer`.
    anchor
        ``None`` (default): a free offset. ``"isolated"``: the energy zero of the fit from the frames
        without interlayer pairs (module docstring); if there are none, the fit falls back to a free
        offset (reported as ``anchor_frames: 0``).
    force_weight
        Weight (A^2 per atom) of the fitted frames' force residuals, all three components, against
        their energy residuals per atom; 0 (default) fits energies only. The out-of-plane forces of
        the scan frames are the slope of the binding curve at each registry, which energies on a
        few distances pin only loosely.

    Returns
    -------
    dict
        ``scan_rmse_meV_before`` / ``_after`` (total model on the fitted frames, mean offset removed),
        the fit report of the term, the bias shift per type (eV), the frame counts, ``anchor_frames``
        and ``binding_meV_per_atom`` (mean over the fitted frames of the term's energy per atom,
        before and after).
    """
    from wander.data.datasets import frame_labels
    from wander.data.graph import collate
    from wander.nn.interlayer import fit_interlayer

    term = getattr(model, "interlayer", None)
    if term is None:
        raise ValueError("refit_interlayer: the model has no interlayer term")
    scan = [a for a in frames if fnmatch.fnmatch(str(a.info.get("config", "")), fit_configs)]
    if not scan:
        raise ValueError(f"refit_interlayer: fit_configs {fit_configs!r} matches no frame (info['config'])")
    if anchor not in ("isolated", None):
        raise ValueError(f"refit_interlayer: anchor must be 'isolated' or None, got {anchor!r}")
    if not (np.isfinite(force_weight) and force_weight >= 0):
        raise ValueError(f"refit_interlayer: force_weight must be a finite number >= 0, got {force_weight!r}")
    labelled = [a for a in frames if "energy" in frame_labels(a)]
    model.eval()
    graphs = _graphs(model, scan)
    batch = collate(graphs)
    before = _scan_rmse(model, batch)
    out = model(batch, compute_virial=False)
    e_term, f_term = term.energy_forces(batch)
    n_scan = float(batch.positions.shape[0]) / len(scan)
    binding_before = float(e_term.detach().mean()) / n_scan
    baseline = ((out["energy"] - e_term).detach(), (out["forces"] - f_term).detach())
    in_scan = {id(a) for a in scan}
    isolated = _isolated(model, [a for a in labelled if id(a) not in in_scan]) if anchor else []
    if isolated:  # the energy the network owes every frame, per type, from the frames without the term
        per_type = _bias_per_atom(model, isolated)
        offset = torch.as_tensor(_type_counts(model, scan) @ per_type, dtype=baseline[0].dtype)
        baseline = (baseline[0] + offset, baseline[1])
    fit = fit_interlayer(term, graphs, force_weight=float(force_weight), in_plane_forces=False, steps=steps,
                         lr=lr, baseline=baseline, free_offset=not isolated)
    after = _scan_rmse(model, batch)
    binding_after = float(term.energy_forces(batch)[0].detach().mean()) / n_scan
    # absolute energies: the new term carries a different constant; give it back to the bias
    shift = _bias_per_atom(model, labelled)
    with torch.no_grad():
        model.fitting.bias_atom_e += torch.as_tensor(shift, dtype=model.fitting.bias_atom_e.dtype)
    return {"fit_configs": fit_configs, "frames_fitted": len(scan), "frames_bias": len(labelled),
            "anchor": anchor, "anchor_frames": len(isolated), "force_weight": float(force_weight),
            "binding_meV_per_atom_before": 1e3 * binding_before, "binding_meV_per_atom_after": 1e3 * binding_after,
            "scan_rmse_meV_before": before, "scan_rmse_meV_after": after,
            "bias_shift_eV": {t: float(s) for t, s in zip(model.type_map, shift)}, **fit}


def refit_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, frames: Sequence[Atoms],
                     fit_configs: str = "blgscan_*", steps: int = 1500,
                     anchor: str | None = None, taper: tuple[float, float] | None = None,
                     force_weight: float = 0.0) -> dict[str, Any]:
    """:func:`refit_interlayer` on the force field of checkpoint ``src``, written to ``dst``.

    ``taper``: new ``(r_on, r_off)`` of the term (Angstrom) before the refit. A longer range lets the
    ``-A (z0/r)^6`` attraction carry the dispersion of the far pairs (a fifth of it lies beyond 6 A
    at 3.4 A spacing), which the anchored fit needs (docs/model.md); the model's neighbour-list cutoff
    becomes the larger of ``descriptor.rcut`` and ``r_off``; the network sees what it saw before.
    Hamiltonian heads, config and the rest of the metadata are kept; the report is stored in
    ``metadata["interlayer_refit"]``. Optimizer and RNG states are dropped (the result is a model,
    not a resumable run).
    """
    from wander.io.atomic import atomic_path
    from wander.train.checkpoint import _plain, forcefield_from_payload, load_checkpoint

    payload = load_checkpoint(src)
    if taper is not None:
        il = payload["config"]["model"].get("interlayer")
        if not il:
            raise ValueError(f"{src}: the model has no interlayer term")
        r_on, r_off = map(float, taper)
        if not 0 < r_on < r_off:
            raise ValueError(f"taper: need 0 < r_on < r_off, got {r_on}, {r_off}")
        il["r_on"], il["r_off"] = r_on, r_off
    model = forcefield_from_payload(payload)       # its config check covers the new taper too
    report = refit_interlayer(model, frames, fit_configs=fit_configs, steps=steps, anchor=anchor,
                              force_weight=force_weight)
    if taper is not None:
        report["taper"] = [r_on, r_off]
    payload["state_dict"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    payload.pop("optimizer", None)
    payload.pop("rng", None)
    payload["metadata"] = _plain({**payload.get("metadata", {}), "interlayer_refit": report})
    with atomic_path(dst) as tmp:
        torch.save(payload, tmp)
    return report
