"""Loss, learning rate, training loop, checkpoints, exact resume after a kill, CLI."""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures.ff.helpers import NPY_DIR, TRAIN_XYZ, VALID_XYZ, bilayer, tiny_model_config
from fixtures.ff.helpers import one_thread  # noqa: F401  (autouse fixture)
from wander.data.datasets import load_graphs
from wander.data.graph import AtomGraph, collate
from wander.nn.model import ForceField
from wander.train.checkpoint import load_checkpoint, load_model, save_checkpoint
from wander.train.config import LearningRateConfig, LossConfig, parse_config
from wander.train.loop import BatchSampler, train
from wander.train.loss import EnergyLoss, ExpLearningRate


SMALL_TRAIN = NPY_DIR / "blg4"  # 10 four-atom frames (DeePMD npy)


def _config(numb_steps: int = 12, save_freq: int = 5, disp_freq: int = 3, train_data: Path = SMALL_TRAIN,
            **training) -> dict:
    model = tiny_model_config(type_map=("C",), rcut=3.5, rcut_smth=0.5, sel=[40])
    return {
        "model": model,
        "learning_rate": {"start_lr": 2e-2, "stop_lr": 5e-3, "decay_steps": 10},
        "loss": {"start_pref_e": 0.2, "limit_pref_e": 1.0, "start_pref_f": 100.0, "limit_pref_f": 1.0,
                 "start_pref_v": 0.1, "limit_pref_v": 0.5},
        "training": {"training_data": {"systems": [str(train_data)]},
                     "validation_data": {"systems": [str(VALID_XYZ)], "numb_btch": 2},
                     "numb_steps": numb_steps, "batch_size": 2, "disp_freq": disp_freq,
                     "save_freq": save_freq, "seed": 5, **training},
    }


# ------------------------------------------------------------------ schedules and loss
def test_exp_learning_rate_and_prefactor_schedule() -> None:
    lr = ExpLearningRate.from_config(LearningRateConfig(start_lr=1e-3, stop_lr=1e-5, decay_steps=10), 100)
    assert lr(0) == lr(9) == 1e-3
    assert math.isclose(lr(10), 1e-3 * 0.01 ** 0.1, rel_tol=1e-12)
    assert math.isclose(lr(99), 1e-3 * 0.01 ** 0.9, rel_tol=1e-12)
    assert lr(10_000) == 1e-5  # clipped at stop_lr
    # DeePMD-kit replaces a decay_steps that is not smaller than numb_steps
    assert ExpLearningRate.from_config(LearningRateConfig(decay_steps=5000), 300).decay_steps == 4
    loss = EnergyLoss(LossConfig(start_pref_f=1000, limit_pref_f=1, start_pref_e=0.02, limit_pref_e=1), 1e-3)
    assert math.isclose(loss.prefactors(1e-3)["f"], 1000) and math.isclose(loss.prefactors(1e-3)["e"], 0.02)
    p = loss.prefactors(1e-4)
    assert math.isclose(p["f"], 1 + 999 * 0.1) and math.isclose(p["e"], 1 - 0.98 * 0.1)


def test_loss_matches_explicit_formula() -> None:
    frames = [bilayer(n=1, boron=()), bilayer(n=2, boron=(), seed=3)]
    rng = np.random.default_rng(0)
    graphs = []
    for a in frames:
        graphs.append(AtomGraph.from_atoms(a, ["C"], 3.0, labels={
            "energy": rng.normal(), "forces": rng.normal(size=(len(a), 3)), "virial": rng.normal(size=(3, 3))}))
    batch = collate(graphs)
    pred = {"energy": torch.tensor([0.3, -0.2], dtype=torch.float64),
            "forces": torch.tensor(rng.normal(size=(20, 3))),
            "virial": torch.tensor(rng.normal(size=(2, 3, 3)))}
    cfg = LossConfig(start_pref_e=2.0, limit_pref_e=2.0, start_pref_f=3.0, limit_pref_f=3.0,
                     start_pref_v=5.0, limit_pref_v=5.0)
    value, metrics = EnergyLoss(cfg, 1e-3)(pred, batch, 1e-3)
    n = np.array([4, 16])
    de = pred["energy"].numpy() - batch.labels["energy"].numpy()
    df = pred["forces"].numpy() - batch.labels["forces"].numpy()
    dv = (pred["virial"].numpy() - batch.labels["virial"].numpy()).reshape(2, 9)
    expected = 2.0 * np.mean(de**2 / n) + 3.0 * np.mean(df**2) + 5.0 * np.mean(np.mean(dv**2, 1) / n)
    assert math.isclose(float(value), expected, rel_tol=1e-12)
    assert math.isclose(metrics["rmse_e"], np.sqrt(np.mean((de / n) ** 2)), rel_tol=1e-12)
    assert math.isclose(metrics["rmse_f"], np.sqrt(np.mean(df**2)), rel_tol=1e-12)
    # DeePMD's relative_f: each atom's force error divided by |F_label| + relative_f; metrics unchanged
    rel = dataclasses.replace(cfg, relative_f=0.5)
    value_rel, metrics_rel = EnergyLoss(rel, 1e-3)(pred, batch, 1e-3)
    norm = np.linalg.norm(batch.labels["forces"].numpy(), axis=1, keepdims=True) + 0.5
    expected_rel = expected - 3.0 * np.mean(df**2) + 3.0 * np.mean((df / norm) ** 2)
    assert math.isclose(float(value_rel), expected_rel, rel_tol=1e-12)
    assert metrics_rel["rmse_f"] == metrics["rmse_f"]
    # per-frame weights multiply each frame's terms (atoms take their frame's weight); metrics unchanged
    w = torch.tensor([0.25, 2.0], dtype=torch.float64)
    value_w, metrics_w = EnergyLoss(cfg, 1e-3)(pred, batch, 1e-3, w)
    wa = w.numpy()[batch.batch.numpy()][:, None]
    expected_w = (2.0 * np.mean(w.numpy() * de**2 / n) + 3.0 * np.mean(wa * df**2)
                  + 5.0 * np.mean(w.numpy() * np.mean(dv**2, 1) / n))
    assert math.isclose(float(value_w), expected_w, rel_tol=1e-12)
    assert metrics_w["rmse_f"] == metrics["rmse_f"]
    with pytest.raises(ValueError, match="relative_f"):
        parse_config({"model": tiny_model_config(type_map=("C",)), "loss": {"relative_f": 0.0},
                      "training": {"training_data": {"systems": [str(TRAIN_XYZ)]}}})


def test_batch_sampler_covers_every_frame_each_epoch() -> None:
    sampler = BatchSampler(7, 3, seed=1)
    drawn = [k for _ in range(7) for k in sampler.next_batch()]  # 21 = 3 epochs
    for epoch in range(3):
        assert sorted(drawn[7 * epoch: 7 * epoch + 7]) == list(range(7))


# ------------------------------------------------------------------ training
def test_short_training_lowers_the_loss(tmp_path: Path) -> None:
    cfg = parse_config(_config(numb_steps=40, disp_freq=10, save_freq=40, train_data=TRAIN_XYZ))
    model = train(cfg, tmp_path, progress=False)
    lines = [l.split() for l in (tmp_path / "lcurve.out").read_text().splitlines() if not l.startswith("#")]
    header = (tmp_path / "lcurve.out").read_text().splitlines()[0].split()[1:]
    assert [int(l[0]) for l in lines] == [1, 10, 20, 30, 40]
    col = {name: k for k, name in enumerate(header)}
    first, last = lines[0], lines[-1]
    # validation force error with the untrained model vs after 40 steps (fixed metric, not the loss,
    # whose prefactors change with the learning rate)
    assert float(last[col["rmse_f_val"]]) < 0.6 * float(first[col["rmse_f_val"]])
    assert float(last[col["rmse_f_trn"]]) < 0.8 * float(first[col["rmse_f_trn"]])
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tensorboard").iterdir())
    # the returned model is the saved one
    saved = load_model(tmp_path / "model.pt")
    g = collate(load_graphs([VALID_XYZ], ["C"], 3.5)[:2])
    assert torch.equal(saved(g)["forces"], model(g)["forces"])


def test_checkpoint_save_load_gives_identical_outputs(tmp_path: Path) -> None:
    cfg = parse_config(_config())
    model = ForceField.from_config(cfg.to_dict()["model"]).eval()
    graphs = load_graphs([VALID_XYZ], ["C"], 3.5)
    model.compute_statistics(graphs)
    save_checkpoint(tmp_path / "m.pt", cfg, model, step=3)
    again = load_model(tmp_path / "m.pt")
    batch = collate(graphs[:3])
    a, b = model(batch), again(batch)
    for key in ("energy", "forces", "virial"):
        assert torch.equal(a[key], b[key])
    assert torch.equal(again.descriptor.davg, model.descriptor.davg)
    payload = load_checkpoint(tmp_path / "m.pt")
    assert payload["step"] == 3 and payload["metadata"]["type_map"] == ["C"]
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


_KILL_SCRIPT = """
import json, os, signal, sys
import torch
from wander.train.config import parse_config
from wander.train.loop import train

def kill(step):
    if step == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)

torch.set_num_threads(1)  # same threading as the test process, for bitwise equality
train(parse_config(json.loads(sys.argv[1])), sys.argv[2], progress=False, on_step=kill)
"""


def test_resume_after_kill_is_identical(tmp_path: Path) -> None:
    data = _config(numb_steps=12, save_freq=5, disp_freq=3)
    cfg = parse_config(data)
    reference = train(cfg, tmp_path / "straight", progress=False)

    killed = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, json.dumps(data), str(killed), "8"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert load_checkpoint(killed / "checkpoint.pt")["step"] == 5
    assert not (killed / "model.pt").exists()
    # the log already holds lines past the checkpoint; resume must drop and redo them
    assert "      6 " in (killed / "lcurve.out").read_text()

    resumed = train(cfg, killed, resume=True, progress=False)
    for (name, p), q in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name
    assert (killed / "lcurve.out").read_text() == (tmp_path / "straight" / "lcurve.out").read_text()
    a = load_checkpoint(tmp_path / "straight" / "model.pt")
    b = load_checkpoint(killed / "model.pt")
    for key in a["optimizer"]["state"]:
        for name, value in a["optimizer"]["state"][key].items():
            assert torch.equal(value, b["optimizer"]["state"][key][name])

    changed = parse_config(_config(numb_steps=12, save_freq=5, disp_freq=3, seed=99))
    with pytest.raises(ValueError, match="training.seed"):
        train(changed, killed, resume=True, progress=False)


# ------------------------------------------------------------------ CLI
def test_cli_train_then_test(tmp_path: Path, capsys) -> None:
    import yaml

    from wander.cli.main import main

    data = _config(numb_steps=6, save_freq=6, disp_freq=3, tensorboard=False)
    (tmp_path / "input.yaml").write_text(yaml.safe_dump(data))
    assert main(["train", str(tmp_path / "input.yaml"), "-o", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "model.pt").is_file() and (tmp_path / "run" / "config.yaml").is_file()
    capsys.readouterr()
    rc = main(["test", "--model", str(tmp_path / "run" / "model.pt"), str(VALID_XYZ),
               "--json", str(tmp_path / "errors.json")])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "forces" in printed and "RMSE" in printed
    errors = json.loads((tmp_path / "errors.json").read_text())[str(VALID_XYZ)]
    # the reported force RMSE is the RMSE of the model's forces against the labels
    model = load_model(tmp_path / "run" / "model.pt")
    graphs = load_graphs([VALID_XYZ], ["C"], model.rcut)
    batch = collate(graphs)
    diff = model(batch)["forces"] - batch.labels["forces"]
    assert math.isclose(errors["forces"]["rmse"], float(diff.pow(2).mean().sqrt()), rel_tol=1e-10)
    assert errors["forces"]["count"] == diff.numel()

    # --stacking: the stacking physics of the same model, as wander.sim.stacking computes it
    from wander.calculator import WanderCalculator
    from wander.sim.stacking import stacking_report

    assert main(["test", "--model", str(tmp_path / "run" / "model.pt"), str(VALID_XYZ), "--stacking", "graphene",
                 "--json", str(tmp_path / "stack.json")]) == 0
    assert "E(AA) - E(AB)" in capsys.readouterr().out
    got = json.loads((tmp_path / "stack.json").read_text())["stacking"]
    ref = stacking_report(WanderCalculator(model), "graphene")
    assert got["model"]["gsfe_meV"]["AA"] == pytest.approx(ref.gsfe_meV["AA"], abs=1e-9)
    assert got["model"]["d_min"] == ref.d_min and got["scan"] == []

    (tmp_path / "typo.yaml").write_text(yaml.safe_dump({**data, "trainnig": {}}))
    assert main(["train", str(tmp_path / "typo.yaml"), "-o", str(tmp_path / "x")]) == 2
    assert "did you mean 'training'" in capsys.readouterr().err
