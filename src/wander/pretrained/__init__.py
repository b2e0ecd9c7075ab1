"""Models shipped inside the package: ``load_pretrained(name)``.

A pretrained model is a checkpoint file (``wander.train.checkpoint`` format: config + state_dict +
metadata, never a pickled module) stored next to this module as ``<file>``. The table below lists the
names the package knows; a name whose file is not present in this installation raises
``FileNotFoundError`` naming the missing file. No file is shipped until a model has been trained and
validated on DFT data: an untrained network is never offered as "pretrained".
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["PRETRAINED", "load_pretrained", "pretrained_path", "resolve_model"]

#: name -> file inside this package and a one-line description
PRETRAINED: dict[str, dict[str, str]] = {
    "blg": {
        "file": "blg.pt",
        "description": "bilayer graphene (C, pz Wannier orbitals): force field + Hamiltonian heads, PBE+D3",
    },
}


def pretrained_path(name: str = "blg") -> Path:
    """Path of the checkpoint file of pretrained model ``name``.

    Raises
    ------
    ValueError
        ``name`` is not a known pretrained model.
    FileNotFoundError
        The model is known but its file is not part of this installation.
    """
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; known: {sorted(PRETRAINED)}")
    entry = PRETRAINED[name]
    path = Path(str(resources.files(__name__).joinpath(entry["file"])))
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained model {name!r} ({entry['description']}) is not shipped with this installation: "
            f"missing file {path}. Train a model with `wander train` and pass its checkpoint with --model PATH."
        )
    return path


def load_pretrained(name: str = "blg", device: Any = "cpu") -> Any:
    """The :class:`wander.nn.model.ForceField` of pretrained model ``name`` (eval mode)."""
    from wander.train.checkpoint import load_model

    return load_model(pretrained_path(name), device=device)


def resolve_model(spec: str | None) -> Path:
    """Checkpoint path of a ``--model`` argument: ``"pretrained"`` / ``"pretrained:NAME"`` or a file path.

    ``None`` means ``"pretrained"``. Raises ``FileNotFoundError`` for a missing file.
    """
    spec = "pretrained" if spec is None else str(spec)
    if spec == "pretrained" or spec.startswith("pretrained:"):
        name = spec.partition(":")[2] or "blg"
        return pretrained_path(name)
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model checkpoint")
    return path
