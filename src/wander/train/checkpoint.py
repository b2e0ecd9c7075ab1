"""Checkpoints: config + state_dict + optimizer + step + RNG states + metadata (never a pickled module).

A checkpoint is a ``torch.save`` of a dict of plain containers and tensors, loadable with
``torch.load(..., weights_only=True)``::

    format      "wander.forcefield"
    version     1
    config      the resolved training config (plain dict, DeePMD names)
    state_dict  model parameters and buffers (statistics, energy bias)
    optimizer   optimizer state (absent in exported models)
    step        number of completed training steps
    rng         {"torch": global torch RNG state, "sampler": batch-sampler state}
    metadata    {"type_map", "wander_version", "torch_version", "created", ...}
    hamiltonian (models with Hamiltonian heads only)
                {"heads_config": HeadsConfig.to_dict(), "state_dict": heads parameters,
                 "n_electrons": {element: electrons per atom} or None,
                 "energy_zero": "fermi" (energies relative to E_F) or "absolute"}

``state_dict`` always holds the force field alone, so :func:`load_model` reads the force field of
any checkpoint; :func:`load_dual_model` rebuilds force field + heads.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from wander.io.atomic import atomic_path
from wander.nn.model import ForceField
from wander.train.config import Config, parse_config

if TYPE_CHECKING:
    from wander.nn.dual import DualModel

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "save_checkpoint", "load_checkpoint", "load_model",
           "load_dual_model", "export_model", "forcefield_fingerprint"]

CHECKPOINT_FORMAT = "wander.forcefield"
CHECKPOINT_VERSION = 1


def save_checkpoint(
    path: str | os.PathLike,
    config: Config,
    model: "ForceField | DualModel",
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    rng: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint atomically (temporary file in the same folder, then ``os.replace``).

    ``model`` is a ForceField or a :class:`~wander.nn.dual.DualModel` (force field + heads).
    """
    from wander import __version__

    heads = getattr(model, "heads", None)
    ff = model.forcefield if heads is not None else model
    if (heads is not None) != config.has_hamiltonian:
        raise ValueError("the config's model.hamiltonian section and the model disagree on Hamiltonian heads")
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": config.to_dict(),
        "state_dict": {k: v.detach().clone() for k, v in ff.state_dict().items()},
        "step": int(step),
        "metadata": {
            "type_map": list(ff.type_map),
            "wander_version": __version__,
            "torch_version": str(torch.__version__),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **(metadata or {}),
        },
    }
    if heads is not None:
        payload["hamiltonian"] = {
            "heads_config": heads.config.to_dict(),
            "state_dict": {k: v.detach().clone() for k, v in heads.state_dict().items()},
            "n_electrons": dict(model.n_electrons) if model.n_electrons else None,
            "energy_zero": model.energy_zero,
        }
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    if rng is not None:
        payload["rng"] = rng
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a checkpoint dict (tensors on CPU)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such checkpoint")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for foreign / corrupt files
        raise ValueError(f"{p}: not a readable checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{p}: not a wander force-field checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{p}: checkpoint version {payload.get('version')} is not supported "
                         f"(expected {CHECKPOINT_VERSION})")
    return payload


def _plain(obj: Any) -> Any:
    """``obj`` with numpy scalars / arrays turned into Python numbers / lists, so that the checkpoint
    loads with ``torch.load(weights_only=True)``."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def export_model(src: str | os.PathLike, dst: str | os.PathLike, metadata: dict[str, Any] | None = None) -> None:
    """Copy checkpoint ``src`` to ``dst`` without the optimizer and RNG states (a model to ship or share).

    ``metadata`` entries are merged into the checkpoint's metadata (e.g. validation errors, the
    dataset it was trained on). The result loads with :func:`load_model` / :func:`load_dual_model`
    and gives identical outputs; it can still initialise a new training run (``training.init_model``)
    but not be resumed.
    """
    payload = load_checkpoint(src)
    payload.pop("optimizer", None)
    payload.pop("rng", None)
    payload["metadata"] = _plain({**payload.get("metadata", {}), **(metadata or {})})
    with atomic_path(dst) as tmp:
        torch.save(payload, tmp)


def forcefield_from_payload(payload: dict[str, Any]) -> ForceField:
    """The force field of a loaded checkpoint ``payload``, rebuilt from its (validated) config and
    state_dict, in eval mode."""
    cfg = parse_config(payload["config"])
    model = ForceField.from_config(cfg.to_dict()["model"])
    model.load_state_dict(payload["state_dict"])
    return model.eval()


def load_model(path: str | os.PathLike, device: torch.device | str | None = None) -> ForceField:
    """Rebuild the model of a checkpoint from its config and state_dict; returned in eval mode."""
    model = forcefield_from_payload(load_checkpoint(path))
    if device is not None:
        model = model.to(device)
    return model.eval()


def load_dual_model(path: str | os.PathLike, device: torch.device | str | None = None) -> "DualModel":
    """Force field + Hamiltonian heads of a checkpoint (eval mode).

    Raises ``ValueError`` for a checkpoint without heads (a force field only).
    """
    from wander.nn.dual import DualModel
    from wander.nn.hamiltonian import HamiltonianHeads, HeadsConfig

    payload = load_checkpoint(path)
    entry = payload.get("hamiltonian")
    if not isinstance(entry, dict) or "heads_config" not in entry or "state_dict" not in entry:
        raise ValueError(f"{path}: this checkpoint holds a force field only (no Hamiltonian heads)")
    ff = forcefield_from_payload(payload)
    heads = HamiltonianHeads(HeadsConfig.from_dict(entry["heads_config"]), dtype=ff.dtype)
    heads.load_state_dict(entry["state_dict"])
    model = DualModel(ff, heads, entry.get("n_electrons"), entry.get("energy_zero", "absolute"))
    if device is not None:
        model = model.to(device)
    return model.eval()


def forcefield_fingerprint(path: str | os.PathLike) -> str:
    """First 16 hex digits of a SHA-256 over what the force field of checkpoint ``path`` computes
    with: its model config without the Hamiltonian heads and its ``state_dict`` (names, dtypes,
    shapes, values). Two checkpoints that differ only in their heads, metadata, step or optimizer
    state share it, so a relaxed structure cached under it stays valid when only the heads change."""
    import hashlib
    import json

    payload = load_checkpoint(path)
    model_cfg = {k: v for k, v in payload["config"].get("model", {}).items() if k != "hamiltonian"}
    h = hashlib.sha256(json.dumps(_plain(model_cfg), sort_keys=True).encode())
    for name in sorted(payload["state_dict"]):
        t = payload["state_dict"][name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]
