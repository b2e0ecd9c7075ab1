"""Refitting the interlayer term of a trained model with its network frozen (wander.train.refit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from fixtures.ff.helpers import tiny_model_config
from fixtures.ff.helpers import one_thread  # noqa: F401  (autouse fixture)
from wander.data.graph import AtomGraph
from wander.nn.interlayer import KolmogorovCrespi
from wander.nn.model import ForceField
from wander.train.refit import refit_interlayer

RCUT = 6.0
PER_ATOM = 0.37  # eV: a constant the labels carry and the refitted model must take into its bias


def _shifted_bilayer(shift_frac, d: float, a: float = 2.46) -> Atoms:
    cell = np.array([[a, 0, 0], [a / 2, a * np.sqrt(3) / 2, 0], [0, 0, 20.0]])
    frac = np.array([[0, 0], [1 / 3, 1 / 3]])
    xy = np.concatenate([frac, frac + np.asarray(shift_frac)]) @ cell[:2, :2]
    z = np.r_[0.0, 0.0, d, d] + 8.0
    return Atoms("C4", positions=np.column_stack([xy, z]), cell=cell, pbc=(True, True, False))


def _model() -> ForceField:
    cfg = tiny_model_config(type_map=("C",), rcut=RCUT, rcut_smth=0.5, sel=[80])
    cfg["interlayer"] = {}
    return ForceField.from_config(cfg).eval()


def _frames(model: ForceField, truth: KolmogorovCrespi) -> list[Atoms]:
    """Scan frames and a few rattled bilayers labelled by ``model``'s network + ``truth`` + a constant."""
    network = ForceField(model.type_map, model.descriptor, model.fitting).eval()
    frames = []
    shifts = [(0, 0), (1 / 6, 1 / 6), (1 / 3, 1 / 3), (0.5, 0.5), (0.25, 0.0)]
    for d in (3.25, 3.45, 3.65):
        for k, s in enumerate(shifts):
            a = _shifted_bilayer(s, d)
            a.info["config"] = f"scan_{int(d * 100)}_{k}"
            frames.append(a)
    rng = np.random.default_rng(3)
    for k in range(3):
        a = _shifted_bilayer((rng.uniform(), rng.uniform()), 3.4).repeat((2, 1, 1))
        a.positions += rng.normal(0, 0.03, a.positions.shape)
        a.info["config"] = f"other_{k}"
        frames.append(a)
    for a in frames:
        g = AtomGraph.from_atoms(a, model.type_map, model.rcut)
        out = network(g, compute_virial=False)
        e_kc, f_kc = truth.energy_forces(g)
        a.calc = SinglePointCalculator(a, energy=float(out["energy"] + e_kc.detach()) + PER_ATOM * len(a),
                                       forces=(out["forces"] + f_kc.detach()).numpy())
    return frames


def _errors(model: ForceField, frames: list[Atoms]) -> np.ndarray:
    out = []
    for a in frames:
        e = model(AtomGraph.from_atoms(a, model.type_map, model.rcut), compute_forces=False,
                  compute_virial=False)["energy"]
        out.append((float(e) - a.get_potential_energy()) / len(a))
    return np.array(out)


def test_refit_recovers_the_term_and_the_absolute_energies() -> None:
    model = _model()
    truth = KolmogorovCrespi(params={"C0": 24e-3, "A": 14e-3, "delta": 0.75})
    frames = _frames(model, truth)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("interlayer.")
              and k != "fitting.bias_atom_e"}
    before = _errors(model, frames)
    rep = refit_interlayer(model, frames, fit_configs="scan_*", steps=800)
    after = _errors(model, frames)
    assert rep["frames_fitted"] == 15 and rep["frames_bias"] == 18
    assert rep["scan_rmse_meV_after"] < 0.2 * rep["scan_rmse_meV_before"]
    # the network is untouched; only the term and the per-type bias moved
    for k, v in model.state_dict().items():
        if k in frozen:
            assert torch.equal(v, frozen[k]), k
    assert abs(rep["bias_shift_eV"]["C"] - PER_ATOM) < 0.01
    assert np.abs(after).max() < 0.1 * np.abs(before).max()
    assert np.abs(after).max() < 2e-3                          # eV/atom, frames outside the fit included


def test_refit_needs_a_term_and_matching_frames() -> None:
    model = _model()
    frames = _frames(model, KolmogorovCrespi())
    with pytest.raises(ValueError, match="matches no frame"):
        refit_interlayer(model, frames, fit_configs="nothing_*", steps=5)
    plain = ForceField.from_config(tiny_model_config(type_map=("C",), rcut=RCUT, rcut_smth=0.5, sel=[80]))
    with pytest.raises(ValueError, match="no interlayer term"):
        refit_interlayer(plain, frames, steps=5)


def test_cli_refits_a_checkpoint_and_keeps_the_rest(tmp_path, capsys) -> None:
    from ase.io import write

    from wander.cli.main import main
    from wander.train.checkpoint import load_checkpoint, load_model, save_checkpoint
    from wander.train.config import parse_config

    model = _model()
    frames = _frames(model, KolmogorovCrespi(params={"C0": 22e-3}))
    for a in frames:
        a.info["split"] = "train"
    frames[-1].info["split"] = "valid"
    data = tmp_path / "frames.extxyz"
    write(data, frames)
    cfg_model = tiny_model_config(type_map=("C",), rcut=RCUT, rcut_smth=0.5, sel=[80])
    cfg_model["interlayer"] = {}
    cfg = parse_config({"model": cfg_model, "training": {"training_data": {"systems": [str(data)]}}})
    src = tmp_path / "model.pt"
    save_checkpoint(src, cfg, model, step=7, metadata={"note": "kept"})
    dst = tmp_path / "refit.pt"
    assert main(["refit-interlayer", "--model", str(src), str(data), "-o", str(dst), "--fit-configs", "scan_*",
                 "--steps", "300"]) == 0
    payload = load_checkpoint(dst)
    meta = payload["metadata"]
    assert meta["note"] == "kept" and payload["step"] == 7
    assert meta["interlayer_refit"]["frames_bias"] == len(frames) - 1     # the valid frame stays out
    name = frames[0].info["config"]
    assert main(["refit-interlayer", "--model", str(src), str(data), "-o", str(tmp_path / "ex.pt"),
                 "--fit-configs", "scan_*", "--steps", "10", "--exclude", name]) == 0
    assert load_checkpoint(tmp_path / "ex.pt")["metadata"]["interlayer_refit"]["frames_bias"] == len(frames) - 2
    refit = load_model(dst)
    assert refit.interlayer.parameter_dict() != model.interlayer.parameter_dict()
    assert np.abs(_errors(refit, frames)).max() < np.abs(_errors(model, frames)).max()
    capsys.readouterr()
    assert main(["refit-interlayer", "--model", str(src), str(data), "-o", str(tmp_path / "x.pt"),
                 "--split", "test"]) != 0
    assert "no frames with info['split'] == 'test'" in capsys.readouterr().err
    assert main(["refit-interlayer", "--model", str(src), str(data), "-o", str(tmp_path / "x.pt"),
                 "--exclude", "nothing_*"]) != 0
    assert "--exclude 'nothing_*' matches no frame" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
    # --taper: the term's new range is in the checkpoint, and the model's neighbour list covers it
    assert main(["refit-interlayer", "--model", str(src), str(data), "-o", str(tmp_path / "t.pt"),
                 "--fit-configs", "scan_*", "--steps", "10", "--taper", "6.5", "7.5"]) == 0
    tapered = load_model(tmp_path / "t.pt")
    assert tapered.interlayer.r_on == 6.5 and tapered.interlayer.r_off == 7.5 and tapered.rcut == 7.5
    assert load_checkpoint(tmp_path / "t.pt")["metadata"]["interlayer_refit"]["taper"] == [6.5, 7.5]
    assert main(["refit-interlayer", "--model", str(src), str(data), "-o", str(tmp_path / "x.pt"),
                 "--taper", "8", "7"]) != 0
    assert "need 0 < r_on < r_off" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_bias_recentring_weighs_every_frame_alike() -> None:
    """The bias is re-centred on the mean per-atom residual: a large frame with a big per-atom error must
    not pull it as a least-squares fit of total energies would (an 18-atom frame 81 times a 2-atom one)."""
    from wander.train.refit import _bias_per_atom

    model = _model()
    frames = _frames(model, model.interlayer)[:4] + [_monolayers(model, 1)[0].repeat((3, 3, 1))]
    per_atom = np.array([0.01, 0.02, 0.03, 0.04, -0.30])       # eV/atom carried by each frame's label
    for a, c in zip(frames, per_atom):
        a.calc = SinglePointCalculator(a, energy=_model_energy(model, a) + c * len(a))
    sizes = np.array([len(a) for a in frames])
    assert sizes[-1] == 72 and (sizes[:4] == 4).all()
    bias = _bias_per_atom(model, frames)
    assert bias.shape == (1,) and np.isclose(bias[0], per_atom.mean(), atol=1e-9)
    totals = np.sum(per_atom * sizes ** 2) / np.sum(sizes ** 2)  # what a fit of total energies would give
    assert abs(bias[0] - totals) > 0.2


def _model_energy(model: ForceField, a: Atoms) -> float:
    return float(model(AtomGraph.from_atoms(a, model.type_map, model.rcut), compute_forces=False,
                       compute_virial=False)["energy"])


def _monolayers(model: ForceField, n: int = 3) -> list[Atoms]:
    """Rattled single sheets labelled by ``model``'s network + the per-atom constant (no interlayer term)."""
    network = ForceField(model.type_map, model.descriptor, model.fitting).eval()
    rng = np.random.default_rng(5)
    out = []
    for k in range(n):
        a = _shifted_bilayer((0, 0), 3.4)[:2].repeat((2, 2, 1))
        a.positions += rng.normal(0, 0.03, a.positions.shape)
        a.info["config"] = f"mono_{k}"
        g = AtomGraph.from_atoms(a, model.type_map, model.rcut)
        res = network(g, compute_virial=False)
        a.calc = SinglePointCalculator(a, energy=float(res["energy"]) + PER_ATOM * len(a),
                                       forces=res["forces"].detach().numpy())
        out.append(a)
    return out


def test_anchored_refit_takes_the_binding_energy_from_isolated_layers() -> None:
    """Labels whose bilayers are bound by BIND per atom more than the term's shape reveals: a free offset
    cannot see it, the anchored fit (energy zero from the monolayers) must move the binding towards it."""
    bind = -4e-3
    truth = KolmogorovCrespi(params={"C0": 24e-3, "A": 14e-3, "delta": 0.75})
    results = {}
    for anchor in (None, "isolated"):
        model = _model()
        frames = _frames(model, truth)
        for a in frames:
            a.calc.results["energy"] += bind * len(a)
        frames += _monolayers(model)
        rep = refit_interlayer(model, frames, fit_configs="scan_*", steps=800, anchor=anchor)
        assert rep["anchor_frames"] == (3 if anchor else 0)
        err = _errors(model, frames)
        results[anchor] = (rep, float(err[:15].mean() - err[-3:].mean()))  # model - DFT binding, eV/atom
    g = AtomGraph.from_atoms(_frames(_model(), truth)[0], ("C",), RCUT)
    free, anchored = results[None][1], results["isolated"][1]
    assert abs(free) > 0.8 * abs(bind)                       # the free offset misses the extra binding
    assert abs(anchored) < 0.5 * abs(free)                   # the anchored fit recovers most of it
    assert results["isolated"][0]["binding_meV_per_atom_after"] < results[None][0]["binding_meV_per_atom_after"]
    assert float(truth.energy_forces(g)[0].detach()) < 0                # the truth term binds at all


def test_anchor_without_isolated_frames_falls_back_to_a_free_offset() -> None:
    model = _model()
    frames = _frames(model, KolmogorovCrespi())
    rep = refit_interlayer(model, frames, fit_configs="scan_*", steps=20, anchor="isolated")
    assert rep["anchor_frames"] == 0
    with pytest.raises(ValueError, match="anchor must be"):
        refit_interlayer(model, frames, fit_configs="scan_*", steps=5, anchor="monolayer")


def _z_force_rmse(model: ForceField, frames: list[Atoms]) -> float:
    """RMSE (eV/A) of the out-of-plane forces of ``model`` against the labels of ``frames``."""
    d = []
    for a in frames:
        out = model(AtomGraph.from_atoms(a, model.type_map, model.rcut), compute_virial=False)
        d.append(out["forces"].detach().numpy()[:, 2] - a.get_forces()[:, 2])
    return float(np.sqrt(np.mean(np.concatenate(d) ** 2)))


def test_force_weight_pins_the_binding_slope_that_energies_at_one_distance_leave_open() -> None:
    # Scan frames at one distance only: with a free offset their energies carry the registry
    # dependence but not the slope of the binding curve, which their out-of-plane forces are.
    truth = KolmogorovCrespi(params={"C0": 24e-3, "A": 14e-3, "delta": 0.75, "z0": 3.2})
    reference = _model()
    frames = _frames(reference, truth)
    other = [a for a in frames if not a.info["config"].startswith("scan_345_")]
    errors, reports = {}, {}
    for weight in (0.0, 1e-2):
        model = _model()
        model.load_state_dict(reference.state_dict())
        reports[weight] = refit_interlayer(model, frames, fit_configs="scan_345_*", steps=800, force_weight=weight)
        errors[weight] = _z_force_rmse(model, other)
    assert reports[1e-2]["force_weight"] == 1e-2 and reports[0.0]["force_weight"] == 0.0
    assert reports[1e-2]["force_rmse_meV_A_fit"] < 0.2 * reports[1e-2]["force_rmse_meV_A_start"]
    assert errors[1e-2] < 0.3 * errors[0.0]
    with pytest.raises(ValueError, match="force_weight"):
        refit_interlayer(_model(), frames, fit_configs="scan_*", steps=5, force_weight=-1.0)
