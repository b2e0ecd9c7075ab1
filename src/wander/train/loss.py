"""Energy / force / virial loss with DeePMD-style prefactor schedules, and the exp learning rate.

Loss for a batch of frames f with N_f atoms (only frames that carry a label enter its term):

    L = p_e * mean_f (dE_f^2 / N_f) + p_f * mean_{atoms, xyz} dF^2 + p_v * mean_f (mean_ab dW_f,ab^2 / N_f)

which is DeePMD-kit's ``ener`` loss (its ``atom_norm = 1/N``) generalised to frames of different
size. Each prefactor moves from ``start`` to ``limit`` with the learning rate,
``p = limit + (start - limit) * lr / start_lr``. Reported metrics are RMSEs: energy and virial per
atom (eV/atom), forces (eV/Angstrom).

:class:`HamiltonianLoss` adds ``sum_c p_c MSE_c`` over the Hamiltonian categories c (onsite,
intra_near, intra_long, inter; MSE per real matrix element, eV^2), with one prefactor schedule per
category; its metrics are ``rmse_<category>`` (eV).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from wander.data.graph import AtomGraph
from wander.train.config import HamiltonianLossConfig, LearningRateConfig, LossConfig

__all__ = ["ExpLearningRate", "EnergyLoss", "HamiltonianLoss", "interpolate_prefactor"]


def interpolate_prefactor(start: float, limit: float, lr: float, start_lr: float) -> float:
    """``limit + (start - limit) * lr / start_lr``."""
    return limit + (start - limit) * lr / start_lr


@dataclass(frozen=True)
class ExpLearningRate:
    """DeePMD ``exp`` schedule: ``lr(step) = max(start_lr * rate^(step // decay_steps), stop_lr)``.

    ``rate = (stop_lr / start_lr)^(decay_steps / numb_steps)``. As in DeePMD-kit, a ``decay_steps``
    not smaller than ``numb_steps`` is replaced by 100 (or ``numb_steps // 100 + 1`` for runs of
    at most 1000 steps).
    """

    start_lr: float
    stop_lr: float
    decay_steps: int
    decay_rate: float

    @classmethod
    def from_config(cls, cfg: LearningRateConfig, numb_steps: int) -> "ExpLearningRate":
        decay_steps = cfg.decay_steps
        if decay_steps >= numb_steps:
            decay_steps = 100 if numb_steps // 10 > 100 else numb_steps // 100 + 1
        rate = math.exp(math.log(cfg.stop_lr / cfg.start_lr) / (numb_steps / decay_steps))
        return cls(cfg.start_lr, cfg.stop_lr, decay_steps, rate)

    def __call__(self, step: int) -> float:
        return max(self.start_lr * self.decay_rate ** (step // self.decay_steps), self.stop_lr)


class EnergyLoss:
    """Loss of :class:`~wander.nn.model.ForceField` predictions against graph labels."""

    def __init__(self, cfg: LossConfig, start_lr: float) -> None:
        self.cfg = cfg
        self.start_lr = float(start_lr)

    @property
    def needs_virial(self) -> bool:
        return self.cfg.start_pref_v > 0 or self.cfg.limit_pref_v > 0

    def prefactors(self, lr: float) -> dict[str, float]:
        c = self.cfg
        return {
            "e": interpolate_prefactor(c.start_pref_e, c.limit_pref_e, lr, self.start_lr),
            "f": interpolate_prefactor(c.start_pref_f, c.limit_pref_f, lr, self.start_lr),
            "v": interpolate_prefactor(c.start_pref_v, c.limit_pref_v, lr, self.start_lr),
        }

    def __call__(
        self, pred: dict[str, torch.Tensor], graph: AtomGraph, lr: float, weight: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss (scalar tensor) and metrics ``rmse_e`` / ``rmse_f`` / ``rmse_v`` (floats).

        ``weight`` (n_frames,) multiplies each frame's terms in the loss (not the metrics)."""
        pref = self.prefactors(lr)
        n = graph.n_atoms.to(pred["energy"].dtype)
        w = torch.ones_like(n) if weight is None else weight.to(n.dtype)
        sq = lambda t: float(t.detach().pow(2).mean().sqrt())  # noqa: E731
        loss = pred["energy"].new_zeros(())
        metrics: dict[str, float] = {}
        if "energy" in graph.labels and bool(graph.label_mask["energy"].any()):
            m = graph.label_mask["energy"]
            de = (pred["energy"] - graph.labels["energy"].to(n.dtype))[m]
            loss = loss + pref["e"] * (w[m] * de**2 / n[m]).mean()
            metrics["rmse_e"] = sq(de / n[m])
        if "forces" in graph.labels and "forces" in pred and bool(graph.label_mask["forces"].any()):
            m = graph.label_mask["forces"][graph.batch]
            ref = graph.labels["forces"].to(n.dtype)[m]
            df = pred["forces"][m] - ref
            scaled = df
            if self.cfg.relative_f is not None:  # DeePMD's relative force loss
                scaled = df / (ref.norm(dim=-1, keepdim=True) + self.cfg.relative_f)
            loss = loss + pref["f"] * (w[graph.batch][m][:, None] * scaled**2).mean()
            metrics["rmse_f"] = sq(df)
        if "virial" in graph.labels and "virial" in pred and bool(graph.label_mask["virial"].any()):
            m = graph.label_mask["virial"]
            dv = (pred["virial"] - graph.labels["virial"].to(n.dtype))[m].reshape(-1, 9)
            if self.needs_virial:
                loss = loss + pref["v"] * (w[m] * (dv**2).mean(-1) / n[m]).mean()
            metrics["rmse_v"] = sq(dv / n[m, None])
        metrics["rmse"] = float(loss.detach().clamp(min=0).sqrt())
        return loss, metrics


class HamiltonianLoss:
    """Per-category Hamiltonian block loss with DeePMD-style prefactor schedules."""

    def __init__(self, cfg: HamiltonianLossConfig, start_lr: float) -> None:
        self.cfg = cfg
        self.start_lr = float(start_lr)

    def prefactors(self, lr: float) -> dict[str, float]:
        from wander.nn.hamiltonian.categories import CATEGORIES

        return {c: interpolate_prefactor(getattr(self.cfg, f"start_pref_{c}"), getattr(self.cfg, f"limit_pref_{c}"),
                                         lr, self.start_lr) for c in CATEGORIES}

    def __call__(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, category: torch.Tensor,
                 lr: float) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss (scalar tensor) and ``rmse_<category>`` (eV) for the categories present."""
        from wander.nn.hamiltonian.losses import category_losses

        out = category_losses(pred, target, mask, category, weights=self.prefactors(lr),
                              magnitude_scale=self.cfg.magnitude_scale)
        metrics = {f"rmse_{k[4:]}": float(v.detach().sqrt()) for k, v in out.items() if k.startswith("mse/")}
        return out["loss"], metrics
