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
"""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from wander.nn.model import ForceField
from wander.train.config import Config, parse_config

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "save_checkpoint", "load_checkpoint", "load_model"]

CHECKPOINT_FORMAT = "wander.forcefield"
CHECKPOINT_VERSION = 1


def save_checkpoint(
    path: str | os.PathLike,
    config: Config,
    model: ForceField,
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    rng: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint atomically (temporary file in the same folder, then ``os.replace``)."""
    from wander import __version__

    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": config.to_dict(),
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "step": int(step),
        "metadata": {
            "type_map": list(model.type_map),
            "wander_version": __version__,
            "torch_version": str(torch.__version__),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **(metadata or {}),
        },
    }
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    if rng is not None:
        payload["rng"] = rng
    p = Path(path)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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


def load_model(path: str | os.PathLike, device: torch.device | str | None = None) -> ForceField:
    """Rebuild the model of a checkpoint from its config and state_dict; returned in eval mode."""
    payload = load_checkpoint(path)
    cfg = parse_config(payload["config"])
    model = ForceField.from_config(cfg.to_dict()["model"])
    model.load_state_dict(payload["state_dict"])
    if device is not None:
        model = model.to(device)
    return model.eval()
