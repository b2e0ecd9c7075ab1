"""Per-category losses of predicted Hamiltonian blocks (eV).

The training loop calls :func:`category_losses` on padded blocks ``(P, M, M)`` with the mask of real
orbital entries and the category code of every pair. Each category's MSE and MAE are averages over
its real matrix elements, so categories with many pairs do not drown the rare ones; the training
loss is ``sum_c weight_c * MSE_c`` over the categories present. With ``magnitude_scale`` h0 (eV)
the loss's MSE of a category weighs every element's squared error by ``1 + |H_ref| / h0`` (a weighted
mean), so the large elements that set the bands near E_F (nearest-neighbour and vertical interlayer
hoppings) count more than the many small long-range ones; the reported MSE / MAE stay unweighted.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from wander.nn.hamiltonian.categories import CATEGORIES

__all__ = ["category_losses"]


def category_losses(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, category: torch.Tensor,
                    weights: Mapping[str, float] | None = None, names: Sequence[str] = CATEGORIES,
                    magnitude_scale: float | None = None) -> dict[str, torch.Tensor]:
    """Weighted loss and per-category metrics.

    Parameters
    ----------
    pred, target : (P, M, M) eV
    mask : (P, M, M) bool, entries that exist (orbital counts of the two atoms)
    category : (P,) int64 group of every pair (index into ``names``)
    weights : ``{name: weight}``; missing names weigh 1
    names : group names, default the pair categories (onsite, intra_near, intra_long, inter)
    magnitude_scale : h0 (eV) of the loss weights ``1 + |target| / h0``; None: every element weighs 1

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
    if magnitude_scale is not None and not magnitude_scale > 0:
        raise ValueError(f"magnitude_scale must be > 0 eV or None, got {magnitude_scale}")
    diff = (pred - target.to(pred.dtype)) * mask
    n_el = mask.flatten(1).sum(1).to(pred.dtype)                       # (P,)
    sq, ab = (diff * diff).flatten(1).sum(1), diff.abs().flatten(1).sum(1)
    if magnitude_scale is not None:
        w = (1.0 + target.to(pred.dtype).abs() / magnitude_scale) * mask
        w_sq, w_sum = (w * diff * diff).flatten(1).sum(1), w.flatten(1).sum(1)
    out: dict[str, torch.Tensor] = {}
    loss = pred.new_zeros(())
    for code, name in enumerate(names):
        sel = category == code
        count = n_el[sel].sum()
        if not bool(count > 0):
            continue
        mse = sq[sel].sum() / count
        out[f"mse/{name}"], out[f"mae/{name}"], out[f"count/{name}"] = mse, ab[sel].sum() / count, count
        term = mse if magnitude_scale is None else w_sq[sel].sum() / w_sum[sel].sum()
        loss = loss + float(weights.get(name, 1.0)) * term
    out["loss"] = loss
    return out
