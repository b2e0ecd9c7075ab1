"""Per-category losses of predicted Hamiltonian blocks (eV).

The training loop calls :func:`category_losses` on padded blocks ``(P, M, M)`` with the mask of real
orbital entries and the category code of every pair. Each category's MSE and MAE are averages over
its real matrix elements, so categories with many pairs do not drown the rare ones; the training
loss is ``sum_c weight_c * MSE_c`` over the categories present.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from wander.nn.hamiltonian.categories import CATEGORIES

__all__ = ["category_losses"]


def category_losses(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, category: torch.Tensor,
                    weights: Mapping[str, float] | None = None, names: Sequence[str] = CATEGORIES
                    ) -> dict[str, torch.Tensor]:
    """Weighted loss and per-category metrics.

    Parameters
    ----------
    pred, target : (P, M, M) eV
    mask : (P, M, M) bool, entries that exist (orbital counts of the two atoms)
    category : (P,) int64 group of every pair (index into ``names``)
    weights : ``{name: weight}``; missing names weigh 1
    names : group names, default the pair categories (onsite, intra_near, intra_long, inter)

    Returns
    -------
    dict with ``"loss"`` (scalar, differentiable) and, for every group present,
    ``"mse/<name>"`` (eV^2), ``"mae/<name>"`` (eV) and ``"count/<name>"`` (matrix elements).
    """
    if pred.shape != target.shape or pred.shape != mask.shape or pred.ndim != 3:
        raise ValueError(f"pred, target and mask must share a (P, M, M) shape, got "
                         f"{tuple(pred.shape)}, {tuple(target.shape)}, {tuple(mask.shape)}")
    if category.shape != pred.shape[:1]:
        raise ValueError(f"category must be ({pred.shape[0]},), got {tuple(category.shape)}")
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"loss weights for unknown groups {unknown}; groups: {list(names)}")
    diff = (pred - target.to(pred.dtype)) * mask
    n_el = mask.flatten(1).sum(1).to(pred.dtype)                       # (P,)
    sq, ab = (diff * diff).flatten(1).sum(1), diff.abs().flatten(1).sum(1)
    out: dict[str, torch.Tensor] = {}
    loss = pred.new_zeros(())
    for code, name in enumerate(names):
        sel = category == code
        count = n_el[sel].sum()
        if not bool(count > 0):
            continue
        mse = sq[sel].sum() / count
        out[f"mse/{name}"], out[f"mae/{name}"], out[f"count/{name}"] = mse, ab[sel].sum() / count, count
        loss = loss + float(weights.get(name, 1.0)) * mse
    out["loss"] = loss
    return out
