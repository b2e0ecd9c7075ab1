"""Error statistics of a trained force field on labelled frames (``wander test``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from wander.data.graph import AtomGraph, collate
from wander.nn.model import ForceField

__all__ = ["Predictions", "predict", "error_table", "frame_errors"]


@dataclass
class Predictions:
    """Per-frame predictions and labels (NumPy, eV / Angstrom units).

    ``energy`` / ``ref_energy`` (n_frames,); ``forces`` / ``ref_forces`` lists of (N_f, 3);
    ``virial`` / ``ref_virial`` (n_frames, 3, 3); ``n_atoms`` (n_frames,). Missing labels are NaN.
    """

    n_atoms: np.ndarray
    energy: np.ndarray
    ref_energy: np.ndarray
    forces: list[np.ndarray] = field(default_factory=list)
    ref_forces: list[np.ndarray] = field(default_factory=list)
    virial: np.ndarray | None = None
    ref_virial: np.ndarray | None = None


def predict(model: ForceField, graphs: Sequence[AtomGraph], batch_size: int = 8) -> Predictions:
    """Evaluate ``model`` on one-frame graphs in batches of ``batch_size`` frames."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    n_atoms, e, e_ref, v, v_ref = [], [], [], [], []
    f, f_ref = [], []
    model.eval()
    for start in range(0, len(graphs), batch_size):
        batch = collate(graphs[start : start + batch_size])
        out = model(batch, compute_forces=True, compute_virial=True, create_graph=False)
        nb = batch.num_frames
        n_atoms.append(batch.n_atoms.numpy())
        e.append(out["energy"].numpy())
        v.append(out["virial"].numpy())
        e_ref.append(_masked(batch, "energy", (nb,)))
        v_ref.append(_masked(batch, "virial", (nb, 3, 3)))
        forces_ref = _masked_forces(batch)
        split = np.cumsum(batch.n_atoms.numpy())[:-1]
        f.extend(np.split(out["forces"].numpy(), split))
        f_ref.extend(np.split(forces_ref, split))
    return Predictions(
        n_atoms=np.concatenate(n_atoms), energy=np.concatenate(e), ref_energy=np.concatenate(e_ref),
        forces=f, ref_forces=f_ref, virial=np.concatenate(v), ref_virial=np.concatenate(v_ref),
    )


def _masked(batch: AtomGraph, key: str, shape: tuple[int, ...]) -> np.ndarray:
    if key not in batch.labels:
        return np.full(shape, np.nan)
    arr = batch.labels[key].detach().numpy().astype(float).copy()
    arr[~batch.label_mask[key].numpy()] = np.nan
    return arr


def _masked_forces(batch: AtomGraph) -> np.ndarray:
    n = batch.positions.shape[0]
    if "forces" not in batch.labels:
        return np.full((n, 3), np.nan)
    arr = batch.labels["forces"].detach().numpy().astype(float).copy()
    arr[~batch.label_mask["forces"][batch.batch].numpy()] = np.nan
    return arr


def _rmse_mae(diff: np.ndarray) -> tuple[float, float, int]:
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        return float("nan"), float("nan"), 0
    return float(np.sqrt(np.mean(diff**2))), float(np.mean(np.abs(diff))), int(diff.size)


def error_table(p: Predictions) -> dict[str, dict[str, float]]:
    """RMSE / MAE of energy per atom (eV/atom), total energy (eV), forces (eV/A), virial per atom (eV/atom)."""
    de = p.energy - p.ref_energy
    df = np.concatenate([a - b for a, b in zip(p.forces, p.ref_forces)]).ravel() if p.forces else np.zeros(0)
    table = {}
    for name, diff in (
        ("energy_per_atom", de / p.n_atoms),
        ("energy", de),
        ("forces", df),
        ("virial_per_atom", ((p.virial - p.ref_virial) / p.n_atoms[:, None, None]).ravel()
         if p.virial is not None else np.zeros(0)),
    ):
        rmse, mae, count = _rmse_mae(diff)
        table[name] = {"rmse": rmse, "mae": mae, "count": count}
    return table


def frame_errors(p: Predictions) -> list[dict[str, float]]:
    """Per-frame errors: energy per atom (eV/atom, signed), force RMSE (eV/A), largest reference |F|
    (eV/A) and virial-per-atom RMSE (eV/atom); NaN where a label is missing."""
    rows = []
    for f in range(len(p.n_atoms)):
        df = (p.forces[f] - p.ref_forces[f]).ravel() if p.forces else np.zeros(0)
        dv = ((p.virial[f] - p.ref_virial[f]) / p.n_atoms[f]).ravel() if p.virial is not None else np.zeros(0)
        fref = p.ref_forces[f] if p.forces else np.zeros((0, 3))
        rows.append({
            "n_atoms": int(p.n_atoms[f]),
            "energy_per_atom": float((p.energy[f] - p.ref_energy[f]) / p.n_atoms[f]),
            "forces_rmse": _rmse_mae(df)[0],
            "forces_max_ref": float(np.abs(fref).max()) if np.isfinite(fref).any() else float("nan"),
            "virial_per_atom_rmse": _rmse_mae(dv)[0],
        })
    return rows
