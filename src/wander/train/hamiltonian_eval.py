"""Hamiltonian errors of a trained model against DFT Wannier references (``wander test``).

For every frame with a reference Hamiltonian:

- **block errors** per category (onsite, intra_near, intra_long, inter) on the heads' pair list
  (pairs within ``r_cut``), over the real matrix elements, in meV;
- **band errors**: eigenvalues of the predicted and of the *full* reference Hamiltonian (all stored
  hoppings, also those beyond ``r_cut``) on a Gamma-centred ``kgrid x kgrid`` grid, compared band
  by band (sorted); only reference levels within ``+-window`` eV of the Fermi level enter. The
  Fermi level is the dataset's DFT value when present, otherwise the filling of the reference
  bands with the model's ``n_electrons`` (half filling, one electron per orbital, without them).
  Models predict the targets' energy zero (``energy_zero``: the frame's E_F, its mean onsite energy,
  or pw.x's zero); the frame's recorded ``energy_shift`` is undone before the comparison.
- **aligned band errors**: the same comparison with each spectrum measured from its *own* Fermi
  level from band filling (the model's ``n_electrons``, one electron per orbital without them), so
  a uniform offset of the predicted spectrum does not count. That is the error of everything a
  prediction is used for when its Fermi level comes from filling (``energy_zero: onsite_mean``,
  ``wander run``); a model that predicts ``H - E_F`` is judged by the unaligned numbers.
- **layer offset** of frames with two layers: mean onsite energy of layer 0 minus that of layer 1,
  reference and predicted, in meV. In the homobilayer frames it should be small; a large reference
  value with random sign marks a layer-polarised SCF density (docs/dft.md, ``wander dft rewannier``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from wander.train.data import FrameSet, make_batch

__all__ = ["hamiltonian_errors", "reference_hamiltonian"]


def reference_hamiltonian(frames: FrameSet, f: int, basis: Any, r_near: float) -> Any:
    """Full reference ``TBHamiltonian`` of frame ``f`` (every hopping the dataset stores)."""
    from wander.nn.hamiltonian.assemble import tb_from_blocks
    from wander.nn.hamiltonian.targets import dataset_targets

    ham, h = frames.reference[f]
    atoms = frames.atoms[f]
    p0, p1 = ham["pair_offset"][h:h + 2]
    pi, pj, pR = ham["pair_i"][p0:p1], ham["pair_j"][p0:p1], ham["pair_R"][p0:p1].astype(float)
    pos, cell = atoms.positions, np.asarray(atoms.cell, dtype=float)
    reach = float(np.linalg.norm(pos[pj] + pR @ cell - pos[pi], axis=1).max()) if p1 > p0 else 0.0
    r_cut = max(reach + 0.01, r_near)
    tgt = dataset_targets(ham, h, atoms, basis, r_cut, min(r_near, r_cut), layered="layer" in atoms.arrays)
    if tgt.n_outside:
        raise ValueError(f"frame {f}: {tgt.n_outside} reference blocks were not recovered")
    p = tgt.pairs
    return tb_from_blocks(atoms, basis, p.i, p.j, p.R, tgt.blocks)


def _filling(frames: FrameSet, f: int, eig: np.ndarray, n_orb: int, n_electrons: dict | None) -> float:
    """Fermi level of ``eig`` from band filling of frame ``f``'s electrons."""
    from wander.tb.fermi import fermi_level

    symbols = frames.atoms[f].get_chemical_symbols()
    n = float(sum(n_electrons[s] for s in symbols)) if n_electrons else float(n_orb)
    return fermi_level(eig, n)


def _fermi(frames: FrameSet, f: int, eig: np.ndarray, n_orb: int, n_electrons: dict | None) -> float:
    if np.isfinite(frames.fermi[f]):
        return float(frames.fermi[f])
    return _filling(frames, f, eig, n_orb, n_electrons)


def _layer_offsets(atoms: Any, tgt: Any, blocks: list[np.ndarray]) -> tuple[float, ...] | None:
    """Mean onsite energy of layer 0 minus layer 1 (meV) of each of ``blocks``; None unless the
    frame has exactly two layers with onsite energies."""
    from wander.dft.layer_offset import layer_offset
    from wander.nn.hamiltonian.categories import ONSITE

    layer = atoms.arrays.get("layer")
    if layer is None or len(np.unique(layer)) != 2:
        return None
    on = np.flatnonzero(tgt.pairs.category == ONSITE)
    keep = np.diagonal(tgt.mask[on], axis1=1, axis2=2)
    lay = np.broadcast_to(np.asarray(layer)[tgt.pairs.i[on]][:, None], keep.shape)[keep]
    out = [layer_offset(np.diagonal(b[on], axis1=1, axis2=2)[keep], lay) for b in blocks]
    return None if out[0] is None else tuple(out)


@torch.no_grad()
def hamiltonian_errors(model: Any, frames: FrameSet, kgrid: int = 6, window: float = 1.0) -> dict[str, Any]:
    """Block MAE / RMSE per category (meV) and band RMSE within ``+-window`` eV of E_F (meV).

    ``model`` is a :class:`~wander.nn.dual.DualModel`. Returns ``{"frames", "mae_meV", "rmse_meV",
    "count", "band_rmse_meV", "band_max_meV", "band_count", "band_rmse_aligned_meV",
    "band_max_aligned_meV", "band_count_aligned", "kgrid", "window_eV", "per_frame"}``; categories
    without pairs and empty band windows are absent / NaN. ``per_frame`` maps a frame index of
    ``frames`` to that frame's ``mae_meV`` per category, ``band_rmse_meV`` /
    ``band_rmse_aligned_meV`` (NaN without a reference Hamiltonian or levels in the window) and
    ``layer_offset_meV`` = (reference, predicted) for frames with exactly two layers.
    """
    from wander.nn.hamiltonian.assemble import tb_from_blocks
    from wander.nn.hamiltonian.categories import CATEGORIES
    from wander.tb.dos import grid_eigenvalues

    model.eval()
    basis, r_near = model.heads.basis, model.heads.config.r_near
    abs_sum = np.zeros(len(CATEGORIES))
    sq_sum = np.zeros(len(CATEGORIES))
    count = np.zeros(len(CATEGORIES), dtype=np.int64)
    band_sq, band_max, band_n, n_frames = 0.0, 0.0, 0, 0
    al_sq, al_max, al_n = 0.0, 0.0, 0
    per_frame: dict[int, dict[str, Any]] = {}
    for f in range(len(frames)):
        tgt = frames.targets[f]
        if tgt is None:
            continue
        n_frames += 1
        batch = make_batch(frames, [f])
        pred = model.hamiltonian_blocks(batch.graph, batch.pair_index, batch.pair_R, batch.layer).numpy()
        diff = np.where(tgt.mask, pred - tgt.blocks, 0.0)
        n_el = tgt.mask.reshape(len(diff), -1).sum(1)
        cat = tgt.pairs.category
        f_abs = np.bincount(cat, np.abs(diff).reshape(len(diff), -1).sum(1), minlength=len(CATEGORIES))
        f_n = np.bincount(cat, n_el, minlength=len(CATEGORIES)).astype(np.int64)
        abs_sum += f_abs
        sq_sum += np.bincount(cat, (diff ** 2).reshape(len(diff), -1).sum(1), minlength=len(CATEGORIES))
        count += f_n
        row = per_frame[f] = {"mae_meV": {c: float(1e3 * f_abs[k] / f_n[k]) for k, c in enumerate(CATEGORIES)
                                          if f_n[k] > 0},
                              "band_rmse_meV": float("nan"), "band_rmse_aligned_meV": float("nan")}
        offsets = _layer_offsets(frames.atoms[f], tgt, [tgt.blocks, pred])
        if offsets is not None:
            row["layer_offset_meV"] = offsets
        if frames.reference[f] is None:
            continue
        atoms = frames.atoms[f]
        p = tgt.pairs
        h_pred = tb_from_blocks(atoms, basis, p.i, p.j, p.R, pred)
        h_ref = reference_hamiltonian(frames, f, basis, r_near)
        grid = tuple(int(kgrid) if per else 1 for per in atoms.pbc)
        e_ref, _ = grid_eigenvalues(h_ref, grid)
        e_pred, _ = grid_eigenvalues(h_pred, grid)
        ef = _fermi(frames, f, e_ref, h_ref.n_orbitals, model.n_electrons)
        ef_ref = _filling(frames, f, e_ref, h_ref.n_orbitals, model.n_electrons)
        ef_pred = _filling(frames, f, e_pred, h_pred.n_orbitals, model.n_electrons)
        al_sel = np.abs(e_ref - ef_ref) <= window
        d_al = ((e_pred - ef_pred) - (e_ref - ef_ref))[al_sel]
        if d_al.size:
            al_sq += float((d_al ** 2).sum())
            al_max = max(al_max, float(np.abs(d_al).max()))
            al_n += int(d_al.size)
            row["band_rmse_aligned_meV"] = float(1e3 * np.sqrt(np.mean(d_al ** 2)))
        e_ref = e_ref - ef                              # both relative to the reference E_F ...
        e_pred = e_pred - frames.energy_shift[f] - ef     # ... the model predicts targets shifted by energy_shift
        sel = np.abs(e_ref) <= window
        d = (e_pred - e_ref)[sel]
        if d.size:
            band_sq += float((d ** 2).sum())
            band_max = max(band_max, float(np.abs(d).max()))
            band_n += int(d.size)
            row["band_rmse_meV"] = float(1e3 * np.sqrt(np.mean(d ** 2)))
    have = count > 0
    return {
        "frames": n_frames,
        "mae_meV": {c: float(1e3 * abs_sum[k] / count[k]) for k, c in enumerate(CATEGORIES) if have[k]},
        "rmse_meV": {c: float(1e3 * np.sqrt(sq_sum[k] / count[k])) for k, c in enumerate(CATEGORIES) if have[k]},
        "count": {c: int(count[k]) for k, c in enumerate(CATEGORIES) if have[k]},
        "band_rmse_meV": float(1e3 * np.sqrt(band_sq / band_n)) if band_n else float("nan"),
        "band_max_meV": 1e3 * band_max if band_n else float("nan"),
        "band_count": band_n,
        "band_rmse_aligned_meV": float(1e3 * np.sqrt(al_sq / al_n)) if al_n else float("nan"),
        "band_max_aligned_meV": 1e3 * al_max if al_n else float("nan"),
        "band_count_aligned": al_n,
        "kgrid": int(kgrid),
        "window_eV": float(window),
        "per_frame": per_frame,
    }
