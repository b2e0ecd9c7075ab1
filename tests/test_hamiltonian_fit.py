"""The heads learn a two-centre Slater-Koster pz model (Moon-Koshino form) on rattled bilayers.

The reference is computed here from the analytic formula
``H_ij = V_pppi(d) (1 - n_z^2) + V_ppsigma(d) n_z^2`` with Moon & Koshino's parameters, smoothly
truncated at the model's cutoff by the same C2 envelope (onsite energies zero).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("e3nn")

from fixtures.ff.helpers import one_thread  # noqa: E402, F401  (autouse fixture)
from wander.data.neighbors import neighbor_list  # noqa: E402
from wander.nn.hamiltonian import HamiltonianHeads, HeadsConfig, hamiltonian_pairs  # noqa: E402
from wander.nn.hamiltonian.assemble import hoppings_from_blocks, to_tb_hamiltonian  # noqa: E402
from wander.nn.hamiltonian.categories import ONSITE  # noqa: E402
from wander.nn.hamiltonian.features import cutoff_envelope  # noqa: E402
from wander.nn.hamiltonian.losses import category_losses  # noqa: E402
from wander.structures import bilayer  # noqa: E402

R_CUT, R_NEAR = 4.5, 3.3
STEPS = 250
A_CC, D0, DELTA = 2.46 / np.sqrt(3.0), 3.35, 0.184 * 2.46
V_PI, V_SIGMA = -2.7, 0.48


def slater_koster_pz(vec: np.ndarray) -> np.ndarray:
    """Moon-Koshino pz-pz hopping (eV) of bond vectors (P, 3) Angstrom, times the cutoff envelope."""
    d = np.linalg.norm(vec, axis=1)
    nz2 = (vec[:, 2] / d) ** 2
    t = V_PI * np.exp(-(d - A_CC) / DELTA) * (1 - nz2) + V_SIGMA * np.exp(-(d - D0) / DELTA) * nz2
    return t * cutoff_envelope(torch.as_tensor(d), R_CUT).numpy()


def descriptor(atoms, r: float = 4.0) -> torch.Tensor:
    """Invariant stand-in for the shared descriptor: smooth radial neighbour counts."""
    nl = neighbor_list(atoms, r)
    dist = torch.as_tensor(np.linalg.norm(nl.vectors(atoms.positions, atoms.cell), axis=1))
    f = torch.stack([torch.exp(-(dist / w) ** 2) for w in (1.0, 1.7, 2.5)], 1) * cutoff_envelope(dist, r)[:, None]
    return torch.zeros(len(atoms), 3, dtype=torch.float64).index_add(0, torch.as_tensor(nl.i), f) / 5.0


def rattled_bilayer(seed: int):
    """2x2 bilayer graphene, random registry and spacing, atoms displaced by 0.05 A in-plane, 0.015 A in z."""
    rng = np.random.default_rng(seed)
    atoms = bilayer("graphene", stacking="AB", shift=rng.uniform(0, 1, 2), distance=rng.uniform(3.25, 3.45),
                    vacuum=15.0).repeat((2, 2, 1))
    atoms.positions += rng.normal(0, 0.05, (len(atoms), 3)) * [1.0, 1.0, 0.3]
    return atoms


def batch(frames, cfg):
    """Model inputs and targets of several frames, atom indices offset frame by frame."""
    parts, off = [], 0
    for atoms in frames:
        env = neighbor_list(atoms, cfg.r_env)
        pairs = hamiltonian_pairs(atoms, cfg.r_cut, cfg.r_near)
        vec = pairs.vectors(atoms)
        onsite = pairs.category == ONSITE
        target = np.zeros(len(pairs))
        target[~onsite] = slater_koster_pz(vec[~onsite])
        parts.append({
            "d": descriptor(atoms), "env_vec": torch.as_tensor(env.vectors(atoms.positions, atoms.cell)),
            "env_index": torch.as_tensor(np.stack([env.i, env.j])) + off,
            "pair_index": torch.as_tensor(np.stack([pairs.i, pairs.j])) + off, "pair_vec": torch.as_tensor(vec),
            "layer": torch.as_tensor(atoms.arrays["layer"]), "target": torch.as_tensor(target)[:, None, None],
            "category": torch.as_tensor(pairs.category),
        })
        off += len(atoms)
    cat_dim = {"env_index": 1, "pair_index": 1}
    out = {k: torch.cat([p[k] for p in parts], dim=cat_dim.get(k, 0)) for k in parts[0]}
    out["species"] = torch.zeros(off, dtype=torch.int64)
    return out


def predict(model, b):
    return model(b["d"], b["species"], b["env_vec"], b["env_index"], b["pair_index"], b["pair_vec"], b["layer"])


def test_heads_fit_two_centre_slater_koster_pz():
    cfg = HeadsConfig(type_map=("C",), orbitals={"C": "pz"}, descriptor_dim=3, r_cut=R_CUT, r_near=R_NEAR,
                      r_env=4.0, density_channels=4, tp_channels=4, n_rbf=16, hidden=(32, 32), seed=0)
    model = HamiltonianHeads(cfg)
    train = batch([rattled_bilayer(s) for s in (1, 2)], cfg)
    valid_atoms = rattled_bilayer(100)
    valid = batch([valid_atoms], cfg)
    mask = torch.ones_like(train["target"], dtype=torch.bool)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, STEPS)
    with torch.no_grad():
        before = category_losses(predict(model, valid), valid["target"], mask[: len(valid["target"])],
                                 valid["category"])
    for _ in range(STEPS):
        opt.zero_grad()
        category_losses(predict(model, train), train["target"], mask, train["category"])["loss"].backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        pred = predict(model, valid)
    after = category_losses(pred, valid["target"], torch.ones_like(pred, dtype=torch.bool), valid["category"])
    hop = valid["category"] != ONSITE
    err = (pred - valid["target"])[:, 0, 0]
    scale = float(valid["target"][hop].std())
    # unseen structure: per-category MAE (eV) and overall RMSE relative to the spread of the hoppings
    assert float(err.square().mean().sqrt()) < 0.03 * scale
    assert after["mae/intra_near"] < 0.03 and after["mae/inter"] < 0.004
    assert after["mae/intra_long"] < 0.002 and after["mae/onsite"] < 0.005
    assert after["mae/intra_near"] < 0.05 * before["mae/intra_near"]
    # the interlayer angular dependence is learned: hoppings of the same length differ through n_z
    inter = valid["category"] == 3
    np.testing.assert_allclose(pred[inter, 0, 0].numpy(), valid["target"][inter, 0, 0].numpy(), atol=0.015)

    # bands of the predicted TB Hamiltonian against the analytic model (same pairs, half storage)
    pairs = hamiltonian_pairs(valid_atoms, R_CUT, R_NEAR)
    ones = np.ones(len(valid_atoms), dtype=int)
    tb_pred = to_tb_hamiltonian(valid_atoms, model.basis, *hoppings_from_blocks(
        pairs.i, pairs.j, pairs.R, pred.numpy(), ones))
    tb_ref = to_tb_hamiltonian(valid_atoms, model.basis, *hoppings_from_blocks(
        pairs.i, pairs.j, pairs.R, valid["target"].numpy(), ones))
    for k in ([0.0, 0.0, 0.0], [1 / 3, 1 / 3, 0.0], [0.5, 0.0, 0.0], [0.17, 0.29, 0.0]):
        e_pred = np.linalg.eigvalsh(tb_pred.hk(np.array(k)).toarray())
        e_ref = np.linalg.eigvalsh(tb_ref.hk(np.array(k)).toarray())
        width = e_ref.max() - e_ref.min()
        assert np.abs(e_pred - e_ref).max() < 0.02 * width                  # 14 eV wide pi bands
        low = np.abs(e_ref) < 3.0
        assert low.sum() >= 4 and np.abs(e_pred - e_ref)[low].max() < 0.1
