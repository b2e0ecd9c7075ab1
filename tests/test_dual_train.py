"""Training force field + Hamiltonian heads: joint / frozen runs, exact resume, wander train / test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures.dual.helpers import DUAL_DIR, FF_NPY, dual_config
from fixtures.ff.helpers import one_thread  # noqa: F401  (autouse fixture)
from wander.train.checkpoint import export_model, load_checkpoint, load_dual_model, save_checkpoint
from wander.train.config import parse_config
from wander.train.loop import train


def _curve(path: Path) -> tuple[dict[str, int], list[list[float]]]:
    text = path.read_text().splitlines()
    header = text[0].split()[1:]
    return {n: k for k, n in enumerate(header)}, [[float(x) for x in l.split()] for l in text[1:]]


def test_joint_training_lowers_force_and_hamiltonian_errors(tmp_path: Path) -> None:
    # synthetic rattled frames (forces, no Hamiltonian) + DFT frames (Hamiltonians, near-zero forces)
    data = dual_config("joint", numb_steps=60, systems=[FF_NPY, DUAL_DIR])
    data["training"].update(disp_freq=59, save_freq=60,
                            validation_data={"systems": [str(FF_NPY), str(DUAL_DIR)], "numb_btch": 20})
    model = train(parse_config(data), tmp_path, progress=False)
    col, rows = _curve(tmp_path / "lcurve.out")
    assert [int(r[0]) for r in rows] == [1, 59]
    first, last = rows
    assert last[col["rmse_f_val"]] < 0.7 * first[col["rmse_f_val"]]
    for cat in ("onsite", "intra_near", "intra_long", "inter"):
        assert last[col[f"rmse_{cat}_val"]] < 0.7 * first[col[f"rmse_{cat}_val"]], cat
    # the returned model is the saved one
    saved = load_dual_model(tmp_path / "model.pt")
    for (k, a), b in zip(model.state_dict().items(), saved.state_dict().values()):
        assert torch.equal(a, b), k
    # an exported copy drops optimizer and RNG, keeps every parameter and gains the metadata
    export_model(tmp_path / "model.pt", tmp_path / "shipped.pt", metadata={"validation": {"rmse_f": 0.1}})
    shipped = load_checkpoint(tmp_path / "shipped.pt")
    assert "optimizer" not in shipped and "rng" not in shipped
    assert shipped["metadata"]["validation"] == {"rmse_f": 0.1} and shipped["metadata"]["type_map"] == ["C"]
    assert (tmp_path / "shipped.pt").stat().st_size < (tmp_path / "model.pt").stat().st_size
    for (k, a), b in zip(model.state_dict().items(), load_dual_model(tmp_path / "shipped.pt").state_dict().values()):
        assert torch.equal(a, b), k


def test_frozen_mode_trains_heads_and_keeps_the_force_field(tmp_path: Path) -> None:
    from wander.nn.model import ForceField
    from wander.train.data import load_frame_set

    data = dual_config("frozen", numb_steps=25, init_model=str(tmp_path / "ff.pt"))
    data["training"].update(disp_freq=24)
    ff_only = {"model": {k: v for k, v in data["model"].items() if k != "hamiltonian"},
               "training": {"training_data": {"systems": [str(FF_NPY)]}}}
    ff_cfg = parse_config(ff_only)
    ff = ForceField.from_config(ff_cfg.to_dict()["model"])
    ff.compute_statistics(load_frame_set([FF_NPY], ["C"], 4.0).graphs)
    save_checkpoint(tmp_path / "ff.pt", ff_cfg, ff, step=0)

    model = train(parse_config(data), tmp_path / "run", progress=False)
    for (name, a), b in zip(ff.state_dict().items(), model.forcefield.state_dict().values()):
        assert torch.equal(a, b), name
    col, rows = _curve(tmp_path / "run" / "lcurve.out")
    assert rows[-1][col["rmse_intra_near_trn"]] < 0.5 * rows[0][col["rmse_intra_near_trn"]]
    # force-field errors are still reported, and do not change (same frames, same force field)
    assert np.isfinite(rows[0][col["rmse_f_trn"]])
    assert load_checkpoint(tmp_path / "run" / "model.pt")["metadata"]["init_model"] == str(tmp_path / "ff.pt")


class _Stop(Exception):
    pass


def test_dual_resume_is_identical(tmp_path: Path) -> None:
    cfg = parse_config(dual_config("joint", numb_steps=9, systems=[FF_NPY, DUAL_DIR]))
    reference = train(cfg, tmp_path / "straight", progress=False)

    def stop(step: int) -> None:
        if step == 7:
            raise _Stop

    with pytest.raises(_Stop):
        train(cfg, tmp_path / "cut", progress=False, on_step=stop)
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 5
    resumed = train(cfg, tmp_path / "cut", resume=True, progress=False)
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert (tmp_path / "cut" / "lcurve.out").read_text() == (tmp_path / "straight" / "lcurve.out").read_text()


def test_cli_train_then_test_reports_hamiltonian_errors(tmp_path: Path, capsys) -> None:
    import yaml

    from wander.cli.main import main
    from wander.tb.dos import grid_eigenvalues
    from wander.train.data import load_frame_set
    from wander.train.hamiltonian_eval import reference_hamiltonian

    data = dual_config("joint", numb_steps=4)
    data["training"]["training_data"]["split"] = "train"
    (tmp_path / "input.yaml").write_text(yaml.safe_dump(data))
    assert main(["train", str(tmp_path / "input.yaml"), "-o", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    ckpt = tmp_path / "run" / "model.pt"
    assert main(["test", "--model", str(ckpt), str(DUAL_DIR), "--split", "valid", "--kgrid", "6",
                 "--json", str(tmp_path / "e.json"), "--export", str(tmp_path / "shipped.pt"), "--per-frame"]) == 0
    printed = capsys.readouterr().out
    assert "intra_near" in printed and "bands within" in printed and "exported" in printed
    result = json.loads((tmp_path / "e.json").read_text())[str(DUAL_DIR)]
    h = result["hamiltonian"]
    # --per-frame: one validation frame, so its row carries the aggregate numbers
    (row,) = result["per_frame"]
    assert row["frame"] in printed and "per frame" in printed
    assert abs(row["energy_per_atom"]) == pytest.approx(result["energy_per_atom"]["mae"])
    assert row["forces_rmse"] == pytest.approx(result["forces"]["rmse"])
    assert row["band_rmse_meV"] == pytest.approx(h["band_rmse_meV"])
    assert row["band_rmse_aligned_meV"] == pytest.approx(h["band_rmse_aligned_meV"])
    assert row["mae_meV"] == pytest.approx(h["mae_meV"])
    # the exported model carries exactly these numbers and no optimizer state
    shipped = load_checkpoint(tmp_path / "shipped.pt")
    val = shipped["metadata"]["validation"]
    assert "optimizer" not in shipped and val["split"] == "valid" and val["data"] == [DUAL_DIR.name]
    assert val["errors"][str(DUAL_DIR)]["hamiltonian"]["band_rmse_meV"] == pytest.approx(h["band_rmse_meV"])
    assert h["frames"] == 1 and set(h["mae_meV"]) == {"onsite", "intra_near", "intra_long"}  # monolayer

    # recompute from the application's Hamiltonian path: full reference vs predicted TB, relative to E_F
    model = load_dual_model(ckpt)
    frames = load_frame_set([DUAL_DIR], ["C"], 4.0, split="valid", hamiltonian=parse_config(data).model.hamiltonian)
    atoms, ef = frames.atoms[0], frames.fermi[0]
    e_ref, _ = grid_eigenvalues(reference_hamiltonian(frames, 0, model.heads.basis, 3.3), (6, 6, 1))
    e_pred, _ = grid_eigenvalues(model.predict_hamiltonian(atoms), (6, 6, 1))
    sel = np.abs(e_ref - ef) <= 1.0
    rmse = 1e3 * np.sqrt(np.mean((e_pred[sel] - (e_ref[sel] - ef)) ** 2))
    assert h["band_count"] == int(sel.sum()) > 0
    assert np.isclose(h["band_rmse_meV"], rmse, rtol=1e-8)
    # onsite MAE: |predicted onsite - (reference onsite - E_F)|, from the raw dataset numbers
    ham = frames.reference[0][0]
    onsite_ref = ham["block_values"][ham["block_offset"][:-1][(ham["pair_i"] == ham["pair_j"])
                                                            & ~ham["pair_R"].any(1)]]
    onsite_ref = onsite_ref[-len(atoms):] - ef  # the valid frame is the last one of the fixture
    tb = model.predict_hamiltonian(atoms)
    onsite_pred = tb.t[(tb.i == tb.j) & ~tb.R.any(1)]
    assert np.isclose(h["mae_meV"]["onsite"], 1e3 * np.mean(np.abs(onsite_pred - onsite_ref)), rtol=1e-8)


def test_onsite_mean_energy_zero_targets_and_band_errors(tmp_path: Path) -> None:
    """Targets relative to each frame's mean onsite energy; the band error undoes exactly that shift,
    so a model predicting the shifted targets perfectly has zero band error."""
    from wander.nn.hamiltonian.categories import ONSITE
    from wander.train.data import load_frame_set, onsite_mean
    from wander.train.hamiltonian_eval import hamiltonian_errors

    cfg = parse_config(dual_config("joint", numb_steps=2, systems=[DUAL_DIR]))
    h = cfg.model.hamiltonian
    fermi_set = load_frame_set([DUAL_DIR], ["C"], 6.0, hamiltonian=h)
    mean_set = load_frame_set([DUAL_DIR], ["C"], 6.0,
                              hamiltonian=type(h)(**{**h.__dict__, "energy_zero": "onsite_mean"}))
    for ft, mt, fs, ms in zip(fermi_set.targets, mean_set.targets, fermi_set.energy_shift, mean_set.energy_shift):
        assert abs(onsite_mean(mt)) < 1e-12
        on = mt.pairs.category == ONSITE
        assert np.allclose(mt.blocks[~on], ft.blocks[~on])
        assert abs((onsite_mean(ft) - fs) - (0.0 - ms)) < 1e-12        # same absolute onsite energy

    class Perfect:  # stands in for a DualModel that returns the targets themselves
        def __init__(self, frames, model):
            self.heads, self.n_electrons, self.frames = model.heads, None, frames
            self.energy_zero = "onsite_mean"

        def eval(self):
            return self

        def hamiltonian_blocks(self, graph, pair_index, pair_R, layer):
            return torch.as_tensor(self.frames.targets[self.k].blocks)

    model = train(cfg, tmp_path, progress=False)
    n_bands = 0
    for k in range(len(mean_set)):
        res = []
        for frames, zero in ((mean_set, "onsite_mean"), (fermi_set, "fermi")):
            stub = Perfect(frames, model)
            stub.k, stub.energy_zero = k, zero
            res.append(hamiltonian_errors(stub, frames.subset([k]), kgrid=3))
        assert res[0]["mae_meV"]["onsite"] < 1e-9
        n_bands += res[0]["band_count"]
        if res[0]["band_count"]:  # what differs from the full reference (hoppings beyond r_cut) is the same
            assert abs(res[0]["band_rmse_meV"] - res[1]["band_rmse_meV"]) < 1e-6
    assert n_bands > 0


def test_checkpoints_without_newer_head_keys_still_initialise_and_resume(tmp_path: Path) -> None:
    """A checkpoint written before a heads setting existed (here feature_lmax) has the setting's
    default: frozen runs still take its heads, and its run still resumes."""
    from wander.train.checkpoint import load_checkpoint
    from wander.train.loop import _check_resume_config, _init_from

    cfg = parse_config(dual_config("joint", numb_steps=3))
    model = train(cfg, tmp_path / "run", progress=False)
    payload = load_checkpoint(tmp_path / "run" / "model.pt")
    payload["hamiltonian"]["heads_config"].pop("feature_lmax")
    payload["config"]["model"]["hamiltonian"].pop("feature_lmax")
    torch.save(payload, tmp_path / "old.pt")
    _check_resume_config(payload["config"], cfg)             # no "config section differs"
    frozen = parse_config(dual_config("frozen", numb_steps=3, init_model=str(tmp_path / "old.pt")))
    from wander.nn.dual import DualModel

    fresh = DualModel.from_config(frozen.to_dict()["model"])
    with torch.no_grad():
        for p in fresh.heads.parameters():
            p.zero_()
    _init_from(fresh, str(tmp_path / "old.pt"), frozen)
    for (name, a), b in zip(model.heads.state_dict().items(), fresh.heads.state_dict().values()):
        assert torch.equal(a, b), name


def test_aligned_band_errors_ignore_a_uniform_offset(tmp_path: Path) -> None:
    """A prediction off by a constant on every onsite energy shifts its whole spectrum: the band error
    sees the shift, the aligned band error (each spectrum from its own filling E_F) does not."""
    from wander.nn.hamiltonian.categories import ONSITE
    from wander.train.data import load_frame_set
    from wander.train.hamiltonian_eval import hamiltonian_errors

    cfg = parse_config(dual_config("joint", numb_steps=2, systems=[DUAL_DIR]))
    frames = load_frame_set([DUAL_DIR], ["C"], 6.0, hamiltonian=cfg.model.hamiltonian)
    model = train(cfg, tmp_path, progress=False)

    class Shifted:  # returns the targets with every onsite energy moved by `shift` eV
        def __init__(self, shift):
            self.heads, self.n_electrons, self.energy_zero, self.shift = model.heads, {"C": 1}, "fermi", shift

        def eval(self):
            return self

        def hamiltonian_blocks(self, graph, pair_index, pair_R, layer):
            tgt = self.frames.targets[0]
            blocks = tgt.blocks.copy()
            on = np.flatnonzero(tgt.pairs.category == ONSITE)
            blocks[on, 0, 0] += self.shift
            return torch.as_tensor(blocks)

    checked = 0
    for k in range(len(frames)):
        if frames.targets[k] is None or frames.reference[k] is None:
            continue
        sub = frames.subset([k])
        res = {}
        for shift in (0.0, 0.05):
            stub = Shifted(shift)
            stub.frames = sub
            res[shift] = hamiltonian_errors(stub, sub, kgrid=3)
        if not res[0.0]["band_count"]:
            continue
        checked += 1
        assert res[0.05]["band_rmse_meV"] > res[0.0]["band_rmse_meV"] + 20.0         # the 50 meV shift counts
        assert abs(res[0.05]["band_rmse_aligned_meV"] - res[0.0]["band_rmse_aligned_meV"]) < 1e-6
        assert res[0.0]["band_count_aligned"] > 0
    assert checked > 0


def test_layer_offset_of_two_layer_frames() -> None:
    """``wander test``'s layer offset: mean onsite energy of layer 0 minus layer 1 (meV), per block
    set; None for one layer. Masked (absent) orbitals do not count."""
    from types import SimpleNamespace

    from ase import Atoms

    from wander.nn.hamiltonian.categories import INTRA_NEAR, ONSITE
    from wander.train.hamiltonian_eval import _layer_offsets

    atoms = Atoms("C4", positions=np.zeros((4, 3)))
    atoms.arrays["layer"] = np.array([0, 0, 1, 1])
    pairs = SimpleNamespace(category=np.array([ONSITE] * 4 + [INTRA_NEAR]), i=np.array([0, 1, 2, 3, 0]))
    mask = np.ones((5, 2, 2), dtype=bool)
    mask[3, 1, 1] = False                     # atom 3 has one orbital only
    tgt = SimpleNamespace(pairs=pairs, mask=mask)
    ref = np.zeros((5, 2, 2))
    ref[:4, 0, 0] = [0.03, 0.05, -0.02, -0.04]
    ref[:4, 1, 1] = [0.01, 0.03, 0.00, 9.99]  # the masked element must be ignored
    ref[4] = 7.0                              # a hopping: not onsite
    pred = ref.copy()
    pred[:4] -= 0.002 * np.eye(2)             # uniform: offset unchanged
    pred[0, 0, 0] += 0.008
    off_ref, off_pred = _layer_offsets(atoms, tgt, [ref, pred])
    assert off_ref == pytest.approx(1e3 * (np.mean([0.03, 0.05, 0.01, 0.03]) - np.mean([-0.02, -0.04, 0.0])))
    assert off_pred == pytest.approx(off_ref + 8.0 / 4)
    atoms.arrays["layer"] = np.zeros(4, dtype=int)
    assert _layer_offsets(atoms, tgt, [ref]) is None


def test_init_model_heads_across_a_hopping_cutoff_change(tmp_path: Path, caplog) -> None:
    """init_model heads that differ only in r_cut start the new run (warm start, logged with the
    change); heads that differ in a shape-changing setting are left fresh, and the log says why."""
    import logging

    from wander.nn.dual import DualModel
    from wander.train.loop import _init_from

    model = train(parse_config(dual_config("joint", numb_steps=3)), tmp_path / "run", progress=False)
    old = str(tmp_path / "run" / "model.pt")

    def fresh(**heads):
        data = dual_config("frozen", numb_steps=3, init_model=old)
        data["model"]["hamiltonian"].update(heads)
        cfg = parse_config(data)
        m = DualModel.from_config(cfg.to_dict()["model"])
        with torch.no_grad():
            for p in m.heads.parameters():
                p.zero_()
        return m, cfg

    wider, cfg = fresh(r_cut=model.heads.config.r_cut + 1.5)
    with caplog.at_level(logging.INFO, logger="wander.train"):
        _init_from(wider, old, cfg)
    for (name, a), b in zip(model.heads.state_dict().items(), wider.heads.state_dict().values()):
        assert torch.equal(a, b), name
    assert f"r_cut {model.heads.config.r_cut} -> {model.heads.config.r_cut + 1.5}" in caplog.text

    caplog.clear()
    other, cfg = fresh(hidden=[8])
    with caplog.at_level(logging.INFO, logger="wander.train"):
        _init_from(other, old, cfg)
    assert all(not p.any() for p in other.heads.parameters())
    assert "heads not initialised" in caplog.text and "hidden" in caplog.text


def test_init_model_heads_gain_overlap_invariants_and_start_from_the_same_blocks(tmp_path: Path, caplog) -> None:
    """Heads trained without ``pair_overlap`` start a run with it: the overlap columns of the pair
    networks' first layers are zero, so the blocks are those of the saved model bit for bit; the
    reverse direction (dropping the overlaps) leaves the heads fresh."""
    import logging

    from wander.nn.dual import DualModel
    from wander.train.data import load_frame_set, make_batch
    from wander.train.loop import _init_from

    model = train(parse_config(dual_config("joint", numb_steps=3)), tmp_path / "run", progress=False)
    old = str(tmp_path / "run" / "model.pt")
    data = dual_config("frozen", numb_steps=3, init_model=old)
    data["model"]["hamiltonian"]["pair_overlap"] = True
    cfg = parse_config(data)
    new = DualModel.from_config(cfg.to_dict()["model"])
    assert new.heads.n_overlaps > 0
    with caplog.at_level(logging.INFO, logger="wander.train"):
        _init_from(new, old, cfg)
    assert "pair_overlap False -> True" in caplog.text
    frames = load_frame_set([DUAL_DIR], ["C"], 4.0, hamiltonian=cfg.model.hamiltonian)
    batch = make_batch(frames, list(range(len(frames))))
    model.eval(), new.eval()
    with torch.no_grad():
        a = model.hamiltonian_blocks(batch.graph, batch.pair_index, batch.pair_R, batch.layer)
        b = new.hamiltonian_blocks(batch.graph, batch.pair_index, batch.pair_R, batch.layer)
        assert torch.equal(a, b) and float(a.abs().max()) > 0.1
        first = new.heads.heads["intra_near_C_C"][0].weight
        first[:, -new.heads.n_overlaps:] += 0.5    # the overlap inputs are live: weights on them move blocks
        c = new.hamiltonian_blocks(batch.graph, batch.pair_index, batch.pair_R, batch.layer)
    assert float((c - a).abs().max()) > 1e-4

    save_checkpoint(tmp_path / "overlap.pt", cfg, new, step=0)
    back_cfg = parse_config(dual_config("frozen", numb_steps=3, init_model=str(tmp_path / "overlap.pt")))
    back = DualModel.from_config(back_cfg.to_dict()["model"])
    with torch.no_grad():
        for p in back.heads.parameters():
            p.zero_()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="wander.train"):
        _init_from(back, str(tmp_path / "overlap.pt"), back_cfg)
    assert all(not p.any() for p in back.heads.parameters())
    assert "heads not initialised" in caplog.text and "pair_overlap" in caplog.text
