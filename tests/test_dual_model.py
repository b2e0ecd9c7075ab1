"""Force field + Hamiltonian heads: config keys, combined checkpoint, frozen / joint gradients."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from fixtures.dual.helpers import DUAL_DIR, dual_config, dual_model_config
from fixtures.ff.helpers import one_thread  # noqa: F401  (autouse fixture)
from wander.nn.dual import DualModel
from wander.train.checkpoint import load_checkpoint, load_dual_model, load_model, save_checkpoint
from wander.train.config import ConfigError, parse_config
from wander.train.data import load_frame_set, make_batch


def _model_and_frames(mode: str = "joint"):
    cfg = parse_config(dual_config(mode, init_model="ff.pt") if mode == "frozen" else dual_config(mode))
    model = DualModel.from_config(cfg.to_dict()["model"])
    frames = load_frame_set([DUAL_DIR], ["C"], 4.0, hamiltonian=cfg.model.hamiltonian)
    model.forcefield.compute_statistics(frames.graphs)
    return cfg, model, frames


# ------------------------------------------------------------------ config
def test_hamiltonian_config_keys_and_defaults() -> None:
    cfg = parse_config(dual_config())
    h = cfg.model.hamiltonian
    assert h.orbitals == {"C": ("pz",)} and h.descriptor_mode == "joint" and h.energy_zero == "fermi"
    assert cfg.loss.hamiltonian.start_pref_intra_near == 2.0 and cfg.loss.hamiltonian.limit_pref_inter == 1.0
    assert parse_config(cfg.to_dict()) == cfg
    plain = dual_config()
    del plain["loss"]["hamiltonian"]
    assert parse_config(plain).loss.hamiltonian.start_pref_onsite == 1.0  # defaults filled in


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["model"]["hamiltonian"].update(orbitls={"C": "pz"}), "did you mean 'orbitals'"),
    (lambda d: d["loss"]["hamiltonian"].update(start_pref_intra_nera=1), "did you mean 'start_pref_intra_near'"),
    (lambda d: d["model"]["hamiltonian"].update(descriptor_mode="both"), "descriptor_mode"),
    (lambda d: d["model"]["hamiltonian"].update(r_env=4.5), "r_env: must be <= the force field"),
    (lambda d: d["model"]["hamiltonian"].update(orbitals={"B": "pz"}), "no orbitals for \\['C'\\]"),
    (lambda d: d["model"]["hamiltonian"].update(r_near=6.0), "r_near"),
    (lambda d: d["model"]["hamiltonian"].update(energy_zero="vacuum"), "energy_zero"),
    (lambda d: d["model"]["hamiltonian"].update(feature_lmax=9), "feature_lmax"),
    (lambda d: d["model"]["hamiltonian"].update(n_electrons={"B": 1}), "no electron count"),
    (lambda d: d["loss"]["hamiltonian"].update(limit_pref_inter=-1.0), "limit_pref_inter: must be >= 0"),
    (lambda d: d["model"].pop("hamiltonian"), "loss.hamiltonian: needs a model.hamiltonian"),
    (lambda d: d["model"]["hamiltonian"].update(descriptor_mode="frozen"), "training.init_model"),
    (lambda d: d["training"]["training_data"].update(split=""), "split"),
])
def test_hamiltonian_config_errors(edit, message) -> None:
    data = copy.deepcopy(dual_config())
    edit(data)
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


# ------------------------------------------------------------------ checkpoint
def test_combined_checkpoint_gives_identical_energies_forces_and_hamiltonians(tmp_path) -> None:
    from wander.sim.predictors import checkpoint_predictor

    cfg, model, frames = _model_and_frames()
    with torch.no_grad():
        for p in model.heads.parameters():  # move off the initialisation
            p.add_(0.01 * torch.randn_like(p))
    model.eval()
    save_checkpoint(tmp_path / "m.pt", cfg, model, step=7)
    again = load_dual_model(tmp_path / "m.pt")
    assert again.descriptor_mode == "joint" and again.n_electrons == {"C": 1} and again.energy_zero == "fermi"
    batch = make_batch(frames, [0, 1, 2])
    a = model(batch.graph, batch.pair_index, batch.pair_R, batch.layer)
    b = again(batch.graph, batch.pair_index, batch.pair_R, batch.layer)
    for key in ("energy", "forces", "virial", "blocks"):
        assert torch.equal(a[key], b[key]), key
    assert float(a["blocks"].abs().max()) > 0.1
    # the force field alone, read by the force-field loader, is the same
    assert torch.equal(load_model(tmp_path / "m.pt")(batch.graph)["forces"], a["forces"])
    # the application's loader builds the same Hamiltonian
    atoms = frames.atoms[1]
    h1, h2 = model.predict_hamiltonian(atoms), checkpoint_predictor(tmp_path / "m.pt")(atoms)
    assert h1.n_hoppings == h2.n_hoppings and np.array_equal(h1.t, h2.t) and np.array_equal(h1.R, h2.R)
    payload = load_checkpoint(tmp_path / "m.pt")
    assert set(payload["hamiltonian"]) == {"heads_config", "state_dict", "n_electrons", "energy_zero"}
    assert payload["step"] == 7 and payload["hamiltonian"]["heads_config"]["r_cut"] == 5.0


def test_forcefield_fingerprint_ignores_heads_and_step_but_not_force_field_weights(tmp_path) -> None:
    from wander.train.checkpoint import forcefield_fingerprint

    cfg, model, _ = _model_and_frames()
    model.eval()
    save_checkpoint(tmp_path / "a.pt", cfg, model, step=1)
    with torch.no_grad():
        for p in model.heads.parameters():
            p.add_(0.01)
    save_checkpoint(tmp_path / "b.pt", cfg, model, step=5)
    with torch.no_grad():
        next(model.forcefield.parameters()).view(-1)[0] += 1e-6
    save_checkpoint(tmp_path / "c.pt", cfg, model, step=5)
    a, b, c = (forcefield_fingerprint(tmp_path / f"{k}.pt") for k in "abc")
    assert a == b and len(a) == 16
    assert c != b
    assert (tmp_path / "a.pt").read_bytes() != (tmp_path / "b.pt").read_bytes()


def test_force_field_checkpoint_refused_by_dual_loader(tmp_path) -> None:
    cfg, model, _ = _model_and_frames()
    ff_cfg = parse_config({k: v for k, v in cfg.to_dict().items() if k != "loss"}
                          | {"model": {k: v for k, v in cfg.to_dict()["model"].items() if k != "hamiltonian"}})
    save_checkpoint(tmp_path / "ff.pt", ff_cfg, model.forcefield, step=1)
    with pytest.raises(ValueError, match="force field only"):
        load_dual_model(tmp_path / "ff.pt")
    with pytest.raises(ValueError, match="disagree"):
        save_checkpoint(tmp_path / "bad.pt", ff_cfg, model, step=1)


# ------------------------------------------------------------------ gradients
@pytest.mark.parametrize("mode", ["frozen", "joint"])
def test_hamiltonian_loss_reaches_the_descriptor_only_in_joint_mode(mode) -> None:
    _, model, frames = _model_and_frames(mode)
    batch = make_batch(frames, [0, 1])
    blocks = model.hamiltonian_blocks(batch.graph, batch.pair_index, batch.pair_R, batch.layer)
    ((blocks - batch.blocks) ** 2).sum().backward()
    emb = [p.grad for p in model.forcefield.descriptor.parameters() if p.requires_grad]
    assert all(p.grad is None for p in model.forcefield.fitting.parameters())  # energy head not involved
    assert any(g is not None and float(g.abs().max()) > 0 for g in model.heads.parameters() for g in [g.grad])
    if mode == "frozen":
        assert all(g is None for g in emb)
        assert [p for p in model.trainable_parameters()] == list(model.heads.parameters())
    else:
        assert any(g is not None and float(g.abs().max()) > 0 for g in emb)


def test_streamed_prediction_equals_blockwise_assembly() -> None:
    """predict_hamiltonian (pairs in chunks, hoppings written into preallocated arrays, lean TB
    constructor) gives the Hamiltonian of the whole-structure blocks assembled by from_hoppings."""
    from wander.nn.hamiltonian.assemble import predict_blocks, predict_hamiltonian, tb_from_blocks
    from wander.sim.evaluation import build_neighbor_list, compute_descriptors

    _, model, frames = _model_and_frames()
    with torch.no_grad():
        for p in model.heads.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.eval()
    atoms = frames.atoms[1].repeat((2, 2, 1))
    desc = compute_descriptors(model.forcefield, atoms, build_neighbor_list(atoms, model.rcut))
    with torch.no_grad():
        streamed = predict_hamiltonian(model.heads, atoms, desc, chunk_size=37)  # many uneven chunks
        pairs, blocks = predict_blocks(model.heads, atoms, desc)
    whole = tb_from_blocks(atoms, model.heads.basis, pairs.i, pairs.j, pairs.R, blocks)
    assert streamed.n_orbitals == whole.n_orbitals and streamed.n_hoppings >= whole.n_hoppings
    for k in ([0.0, 0.0, 0.0], [0.21, -0.38, 0.0], [0.5, 0.5, 0.0]):
        diff = np.abs(streamed.hk(k).toarray() - whole.hk(k).toarray()).max()
        assert diff < 1e-12, (k, diff)
    assert float(np.abs(whole.t).max()) > 0.1


def test_prediction_hopping_cutoff_keeps_the_nearer_pairs_exactly(tmp_path) -> None:
    """A checkpoint predictor with a hopping cutoff below the heads' r_cut predicts the same hoppings
    for the pairs within it and none beyond; a cutoff outside [end of the near/long blend, r_cut] or
    with a two-centre model is refused."""
    from wander.sim.predictors import checkpoint_predictor, predictor

    cfg, model, frames = _model_and_frames()
    with torch.no_grad():
        for p in model.heads.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_checkpoint(tmp_path / "m.pt", cfg, model.eval(), step=1)
    atoms = frames.atoms[1]
    full = checkpoint_predictor(tmp_path / "m.pt")(atoms)
    cut = 4.2                                                # heads: r_near 3.3, blend to 3.55, r_cut 5
    pred = checkpoint_predictor(tmp_path / "m.pt", hopping_cutoff=cut)
    short = pred(atoms)
    assert "cut at 4.2 A" in pred.description

    def by_key(h):
        d = np.linalg.norm(h.orbital_positions[h.j] + h.R @ h.cell - h.orbital_positions[h.i], axis=1)
        return {(int(a), int(b), *map(int, r)): (t, dist) for a, b, r, t, dist in zip(h.i, h.j, h.R, h.t, d)}

    f, s = by_key(full), by_key(short)
    kept = {k for k, (_, dist) in f.items() if dist <= cut}
    assert set(s) == kept and 0 < len(kept) < len(f)
    assert max(abs(s[k][0] - f[k][0]) for k in kept) < 1e-12    # rounding of differently sized batches
    for bad in (3.4, 5.5):
        with pytest.raises(ValueError, match="hopping cutoff"):
            checkpoint_predictor(tmp_path / "m.pt", hopping_cutoff=bad)
    with pytest.raises(ValueError, match="two-centre"):
        predictor(tb_model="moon-koshino", hopping_cutoff=4.0)
