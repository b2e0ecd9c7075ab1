"""The registry-dependent interlayer term: normals, derivatives, symmetry, stacking physics, fit, model wiring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms

from fixtures.ff.helpers import bilayer, random_rotation, tiny_model_config
from fixtures.ff.helpers import one_thread  # noqa: F401  (autouse fixture)
from wander.data.graph import AtomGraph
from wander.nn.interlayer import KC_GRAPHITE, KolmogorovCrespi, fit_interlayer
from wander.nn.model import ForceField

RCUT = 6.0


def _graph(atoms: Atoms, labels=None) -> AtomGraph:
    return AtomGraph.from_atoms(atoms, ["C", "B"], RCUT, labels=labels)


def _energy(term: KolmogorovCrespi, atoms: Atoms) -> float:
    g = _graph(atoms)
    return float(term(g.edge_vectors(), g.edge_index, len(atoms)).sum())


def _shifted_bilayer(shift_frac: tuple[float, float], d: float = 3.4, a: float = 2.46) -> Atoms:
    """Flat 1x1 bilayer: bottom layer A/B at 0 and (1/3, 1/3), top layer = bottom + shift (AA at 0)."""
    cell = np.array([[a, 0, 0], [a / 2, a * np.sqrt(3) / 2, 0], [0, 0, 20.0]])
    frac = np.array([[0, 0], [1 / 3, 1 / 3]])
    top = frac + np.asarray(shift_frac)
    xy = np.concatenate([frac, top]) @ cell[:2, :2]
    z = np.r_[0.0, 0.0, d, d] + 8.0
    atoms = Atoms("C4", positions=np.column_stack([xy, z]), cell=cell, pbc=(True, True, False))
    atoms.arrays["layer"] = np.array([0, 0, 1, 1])
    return atoms


def test_normal_projector_of_flat_and_tilted_sheets() -> None:
    term = KolmogorovCrespi()
    atoms = _shifted_bilayer((1 / 3, 1 / 3))
    g = _graph(atoms)
    proj = term.normal_projectors(g.edge_vectors(), g.edge_index, len(atoms)).numpy()
    zz = np.diag([0.0, 0.0, 1.0])
    assert np.allclose(proj, zz[None], atol=1e-12)
    rot = random_rotation(np.random.default_rng(3))
    tilted = atoms.copy()
    tilted.positions = atoms.positions @ rot.T
    tilted.cell = atoms.cell.array @ rot.T
    tilted.pbc = True
    g = _graph(tilted)
    proj_t = term.normal_projectors(g.edge_vectors(), g.edge_index, len(atoms)).numpy()
    n = rot @ np.array([0, 0, 1.0])
    assert np.allclose(proj_t, np.outer(n, n)[None], atol=1e-12)


def test_forces_equal_finite_differences_on_rattled_bilayer() -> None:
    term = KolmogorovCrespi()
    atoms = bilayer(n=2, rattle=0.1, seed=4, boron=())
    g = _graph(atoms)
    pos = g.positions.clone().requires_grad_(True)
    e = term(g.edge_vectors(pos), g.edge_index, len(atoms)).sum()
    (grad,) = torch.autograd.grad(e, pos)
    h = 1e-5
    for k in (0, 5, 9):
        for c in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[k, c] += h
            minus.positions[k, c] -= h
            fd = (_energy(term, plus) - _energy(term, minus)) / (2 * h)
            assert abs(fd - float(grad[k, c])) < 1e-8


def test_invariant_under_rotation_translation_permutation() -> None:
    term = KolmogorovCrespi()
    atoms = bilayer(n=2, rattle=0.1, seed=5, boron=())
    e0 = _energy(term, atoms)
    assert abs(e0) > 1e-4
    rot = random_rotation(np.random.default_rng(8))
    moved = atoms.copy()
    moved.positions = atoms.positions @ rot.T + np.array([0.3, -1.1, 2.0])
    moved.cell = atoms.cell.array @ rot.T
    assert abs(_energy(term, moved) - e0) < 1e-11
    perm = np.random.default_rng(1).permutation(len(atoms))
    assert abs(_energy(term, atoms[perm]) - e0) < 1e-11


def test_stacking_order_and_monolayer_and_separated_layers() -> None:
    """AA > SP > AB with graphite parameters; no energy within one sheet or beyond the taper."""
    term = KolmogorovCrespi()
    e_aa, e_ab, e_sp = (_energy(term, _shifted_bilayer(s)) for s in ((0, 0), (1 / 3, 1 / 3), (0.5, 0.5)))
    assert e_aa > e_sp > e_ab
    assert 5e-3 < e_aa - e_ab < 0.1                        # tens of meV per 4-atom cell
    mono = _shifted_bilayer((0, 0))[[0, 1]]
    assert _energy(term, mono) == 0.0
    assert _energy(term, _shifted_bilayer((0, 0), d=6.5)) == 0.0


def test_fit_recovers_registry_landscape() -> None:
    """Frames labelled by one parameter set are fitted from another; per-distance offsets make the
    fit blind to a distance-dependent energy added to the labels."""
    truth = KolmogorovCrespi(params={"C0": 25e-3, "delta": 0.7})
    shifts = [(0, 0), (1 / 6, 1 / 6), (1 / 3, 1 / 3), (0.5, 0.5), (0.25, 0.0)]
    graphs, groups = [], []
    for d in (3.3, 3.5):
        for s in shifts:
            atoms = _shifted_bilayer(s, d=d)
            g = _graph(atoms)
            e, f = truth.energy_forces(g)
            labels = {"energy": float(e.detach()) + 7.0 * d, "forces": f.detach().numpy()}
            graphs.append(_graph(atoms, labels))
            groups.append(int(d * 100))
    term = KolmogorovCrespi()
    rep = fit_interlayer(term, graphs, groups=groups, steps=1000, lr=0.02)
    assert rep["energy_rmse_meV_fit"] < 0.25 * rep["energy_rmse_meV_start"]
    # offsets are per atom: adding 2x2 copies of the frames (labels extensive) leaves the loss, and the
    # fitted parameters, unchanged, so frames of several cell sizes can be fitted together
    big, big_groups = [], []
    for d in (3.3, 3.5):
        for sh in shifts:
            atoms = _shifted_bilayer(sh, d=d).repeat((2, 2, 1))
            e, f = truth.energy_forces(_graph(atoms))
            big.append(_graph(atoms, {"energy": float(e.detach()) + 4 * 7.0 * d, "forces": f.detach().numpy()}))
            big_groups.append(int(d * 100))
    small, mixed = KolmogorovCrespi(), KolmogorovCrespi()
    fit_interlayer(small, graphs, groups=groups, steps=200, lr=0.02)
    rep_mixed = fit_interlayer(mixed, graphs + big, groups=groups + big_groups, steps=200, lr=0.02)
    for k, v in small.parameter_dict().items():
        assert mixed.parameter_dict()[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k
    assert rep_mixed["frames"] == 2 * len(graphs)


def test_model_with_interlayer_term_is_conservative_and_checks_rcut() -> None:
    cfg = tiny_model_config(rcut=RCUT, rcut_smth=0.5)
    cfg["interlayer"] = {"r_on": 5.0}
    model = ForceField.from_config(cfg).eval()
    base = ForceField.from_config(tiny_model_config(rcut=RCUT, rcut_smth=0.5)).eval()
    base.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("interlayer.")})
    atoms = bilayer(n=2, rattle=0.08, seed=6)
    g = AtomGraph.from_atoms(atoms, model.type_map, model.rcut)
    out, out0 = model(g), base(g)
    term = float(model.interlayer(g.edge_vectors(), g.edge_index, len(atoms)).sum())
    assert abs(float(out["energy"] - out0["energy"]) - term) < 1e-12
    h = 1e-5
    for k, c in ((1, 0), (10, 2)):
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[k, c] += h
        minus.positions[k, c] -= h
        ep = float(model(AtomGraph.from_atoms(plus, model.type_map, model.rcut), compute_forces=False,
                         compute_virial=False)["energy"])
        em = float(model(AtomGraph.from_atoms(minus, model.type_map, model.rcut), compute_forces=False,
                         compute_virial=False)["energy"])
        assert abs(-(ep - em) / (2 * h) - float(out["forces"][k, c])) < 1e-7
    wide = ForceField(model.type_map, model.descriptor, model.fitting, KolmogorovCrespi(r_on=5.0, r_off=7.0))
    assert wide.rcut == 7.0 and model.rcut == RCUT


@pytest.mark.parametrize("variant", ["short_network", "hidden_layer"])
def test_network_blind_to_the_other_layer_leaves_the_interlayer_energy_to_the_term(variant) -> None:
    """descriptor rcut 3 A < layer distance, or a 6 A descriptor whose interlayer rows are switched
    off: the network part is blind to the other layer, so every registry and distance dependence of
    the energy is the interlayer term's."""
    if variant == "short_network":
        cfg = tiny_model_config(type_map=("C",), rcut=3.0, rcut_smth=2.0, sel=[20])
        cfg["interlayer"] = {"r_on": 5.0, "r_off": 6.0}
    else:
        cfg = tiny_model_config(type_map=("C",), rcut=6.0, rcut_smth=0.5, sel=[80])
        cfg["interlayer"] = {"r_on": 5.0, "hide_from_network": True}
    model = ForceField.from_config(cfg).eval()
    assert model.rcut == 6.0
    diffs = []
    for shift, d in (((0, 0), 3.4), ((1 / 3, 1 / 3), 3.4), ((0.5, 0.5), 3.6), ((0.2, 0.1), 3.2)):
        atoms = _shifted_bilayer(shift, d=d)
        g = AtomGraph.from_atoms(atoms, ["C"], model.rcut)
        e = float(model(g, compute_forces=False, compute_virial=False)["energy"])
        diffs.append(e - float(model.interlayer(g.edge_vectors(), g.edge_index, len(atoms)).sum()))
    assert np.ptp(diffs) < 1e-12
    if variant == "hidden_layer":  # still conservative with the switched rows
        atoms = bilayer(n=2, rattle=0.1, seed=3, boron=())
        out = model(AtomGraph.from_atoms(atoms, ["C"], model.rcut))
        h = 1e-5
        for k, c in ((2, 2), (9, 0)):
            e = []
            for sgn in (1, -1):
                moved = atoms.copy()
                moved.positions[k, c] += sgn * h
                e.append(float(model(AtomGraph.from_atoms(moved, ["C"], model.rcut), compute_forces=False,
                                     compute_virial=False)["energy"]))
            assert abs(-(e[0] - e[1]) / (2 * h) - float(out["forces"][k, c])) < 1e-7
        return
    with pytest.raises(Exception, match="r_on"):
        from wander.train.config import parse_config

        bad = tiny_model_config(type_map=("C",), rcut=3.0, rcut_smth=2.0, sel=[20])
        bad["interlayer"] = {"r_on": 5.0}
        parse_config({"model": bad, "training": {"training_data": {"systems": ["x.extxyz"]}}})


def test_bad_parameters_raise() -> None:
    with pytest.raises(ValueError, match="unknown"):
        KolmogorovCrespi(params={"C9": 1.0})
    with pytest.raises(ValueError, match="delta"):
        KolmogorovCrespi(params={"delta": -1.0})
    with pytest.raises(ValueError, match="r_on"):
        KolmogorovCrespi(r_on=6.0, r_off=5.0)
    assert set(KolmogorovCrespi().parameter_dict()) == set(KC_GRAPHITE)


def _scan_file(path, truth: KolmogorovCrespi) -> None:
    """Registry-scan-like extxyz: flat bilayers labelled by ``truth`` plus a per-distance offset."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    frames = []
    for d in (3.3, 3.5):
        for k, s in enumerate([(0, 0), (1 / 6, 1 / 6), (1 / 3, 1 / 3), (0.5, 0.5)]):
            atoms = _shifted_bilayer(s, d=d)
            e, f = truth.energy_forces(_graph(atoms))
            atoms.calc = SinglePointCalculator(atoms, energy=float(e.detach()) - 36.0 + 0.1 * d,
                                               forces=f.detach().numpy())
            atoms.info["config"] = f"scan_{int(d * 100)}_{k}"
            frames.append(atoms)
    write(path, frames)


def test_training_fits_the_term_first_and_checkpoints_it(tmp_path) -> None:
    from wander.train.checkpoint import load_checkpoint, load_model
    from wander.train.config import parse_config
    from wander.train.loop import train

    data = tmp_path / "scan.extxyz"
    _scan_file(data, KolmogorovCrespi(params={"C0": 22e-3}))
    model = tiny_model_config(type_map=("C",), rcut=RCUT, rcut_smth=0.5, sel=[80])
    model["interlayer"] = {"fit_configs": "scan_*", "fit_steps": 60}
    cfg = {"model": model, "learning_rate": {"start_lr": 1e-3, "stop_lr": 5e-4, "decay_steps": 10},
           "loss": {"start_pref_e": 1.0, "limit_pref_e": 1.0, "start_pref_f": 1.0, "limit_pref_f": 1.0},
           "training": {"training_data": {"systems": [str(data)], "oversample": {"scan_330_*": 3}},
                        "numb_steps": 3, "batch_size": 2,
                        "disp_freq": 3, "save_freq": 3, "seed": 2, "tensorboard": False}}
    trained = train(parse_config(cfg), tmp_path / "run", progress=False)
    fit = load_checkpoint(tmp_path / "run" / "model.pt")["metadata"]["statistics"]["interlayer_fit"]
    assert fit["fitted"] and fit["frames"] == 8            # oversampled frames enter the fit once
    assert fit["energy_rmse_meV_fit"] < fit["energy_rmse_meV_start"]
    assert trained.interlayer.parameter_dict() != KC_GRAPHITE
    loaded = load_model(tmp_path / "run" / "model.pt")
    assert loaded.interlayer.parameter_dict() == trained.interlayer.parameter_dict()
    g = AtomGraph.from_atoms(_shifted_bilayer((0.2, 0.1)), ["C"], RCUT)
    assert torch.allclose(loaded(g)["forces"], trained(g)["forces"], atol=1e-12)

    cfg["model"]["interlayer"]["fit_configs"] = "nothing_*"
    with pytest.raises(ValueError, match="matches no training frame"):
        train(parse_config(cfg), tmp_path / "run2", progress=False)
    cfg["model"]["interlayer"]["fit_configs"] = "scan_*"
    cfg["training"]["training_data"]["oversample"] = {"nothing_*": 2}
    with pytest.raises(ValueError, match="oversample"):
        train(parse_config(cfg), tmp_path / "run3", progress=False)
    cfg["training"]["training_data"]["oversample"] = None
    cfg["training"]["training_data"]["exclude"] = ["nothing_*"]
    with pytest.raises(ValueError, match="exclude: 'nothing_\\*' matches no frame"):
        train(parse_config(cfg), tmp_path / "run4", progress=False)
    cfg["training"]["training_data"]["exclude"] = ["scan_350_*"]   # the fit then sees one distance only
    train(parse_config(cfg), tmp_path / "run5", progress=False)
    fit = load_checkpoint(tmp_path / "run5" / "model.pt")["metadata"]["statistics"]["interlayer_fit"]
    assert fit["frames"] == 4
    cfg["training"]["training_data"]["exclude"] = []
    cfg["training"]["training_data"]["weights"] = {"nothing_*": 0.1}
    with pytest.raises(ValueError, match="weights: 'nothing_\\*' matches no training frame"):
        train(parse_config(cfg), tmp_path / "run6", progress=False)
    cfg["training"]["training_data"]["weights"] = None
    cfg["model"]["interlayer"]["fit_offsets"] = "sometimes"
    with pytest.raises(ValueError, match="fit_offsets"):
        parse_config(cfg)


@pytest.mark.parametrize("chunk,hide,r_off", [(5, False, None), (1000, False, None), (5, True, None),
                                               (5, True, 8.0), (1000, False, 8.0)])
def test_chunked_evaluation_equals_model_forward(chunk, hide, r_off) -> None:
    """Chunked evaluation = the model's forward; with a term reaching beyond the descriptor (``r_off`` 8 A
    > rcut) both drop the far pairs before the descriptor and the non-interlayer pairs before the term,
    which must change nothing against evaluating every pair of the list."""
    from wander.sim.evaluation import build_neighbor_list, compute_descriptors, evaluate_forcefield

    cfg = tiny_model_config(rcut=RCUT, rcut_smth=0.5)
    cfg["interlayer"] = {"r_on": 5.0 if r_off is None else r_off - 1.5, "r_off": r_off, "hide_from_network": hide}
    model = ForceField.from_config(cfg).eval()
    assert model.rcut == (RCUT if r_off is None else r_off)
    atoms = bilayer(n=2, rattle=0.08, seed=7)
    out = model(AtomGraph.from_atoms(atoms, model.type_map, model.rcut))
    if r_off is not None:
        assert model.descriptor_edges(AtomGraph.from_atoms(atoms, model.type_map, model.rcut).edge_vectors()).float().mean() < 0.7
        model.descriptor_edges = lambda vec: None  # every pair through the descriptor
        full = model(AtomGraph.from_atoms(atoms, model.type_map, model.rcut))
        del model.descriptor_edges
        for k in ("energy", "forces", "virial"):
            assert torch.allclose(out[k], full[k], atol=1e-10), k
    res = evaluate_forcefield(model, atoms, build_neighbor_list(atoms, model.rcut + 0.3), chunk_atoms=chunk)
    assert abs(res.energy - float(out["energy"])) < 1e-10
    assert np.allclose(res.forces, out["forces"].numpy(), atol=1e-10)
    assert np.allclose(res.virial, out["virial"][0].numpy(), atol=1e-10)
    g = AtomGraph.from_atoms(atoms, model.type_map, model.rcut)
    desc = compute_descriptors(model, atoms, build_neighbor_list(atoms, model.rcut + 0.3), chunk_atoms=chunk)
    assert torch.allclose(desc, model.compute_descriptor(g)[0].detach(), atol=1e-12)
