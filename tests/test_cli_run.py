"""Command-line workflows: ``wander run`` end to end on 21.79 degree TBG with a test checkpoint, and
``wander relax`` / ``md`` / ``hamiltonian``. Modules are called through their add_arguments/run."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from ase.io import read, write
from ase.spectrum.band_structure import BandStructure

from fixtures.ff.helpers import TRAIN_XYZ, tiny_model_config
from test_calculator import single_thread  # noqa: F401 (autouse fixture)
from wander.cli import hamiltonian as cli_hamiltonian
from wander.cli import md as cli_md
from wander.cli import relax as cli_relax
from wander.cli import run as cli_run
from wander.data.graph import AtomGraph
from wander.nn.model import ForceField
from wander.moire.maps import stacking_registry
from wander.structures import twisted_bilayer
from wander.tb import TBHamiltonian, moon_koshino
from wander.train.checkpoint import save_checkpoint
from wander.train.config import parse_config


def parse(module, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A small carbon force field (data statistics, random weights) saved as a real checkpoint."""
    cfg_dict = {"model": tiny_model_config(type_map=("C",), sel=[60], rcut=4.5),
                "training": {"training_data": {"systems": [str(TRAIN_XYZ)]}}}
    cfg = parse_config(cfg_dict)
    model = ForceField.from_config(cfg.to_dict()["model"]).eval()
    frames = read(TRAIN_XYZ, ":8")
    model.compute_statistics([AtomGraph.from_atoms(f, model.type_map, model.rcut) for f in frames])
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_checkpoint(path, cfg, model, step=0)
    return str(path)


def test_run_end_to_end_tbg_21deg(tmp_path, checkpoint, capsys):
    out = tmp_path / "run"
    args = parse(cli_run, ["--material", "graphene", "--mn", "1", "2", "--model", checkpoint,
                           "--tb-model", "moon-koshino", "--fmax", "1e-4", "--steps", "3", "--npoints", "15",
                           "--dos-kgrid", "3", "--width", "0.02", "-o", str(out), "--no-progress",
                           "--compare-rigid", "--optimizer", "FIRE"])  # random test network: FIRE descends, LBFGS may not
    assert cli_run.run(args) == 0
    text = capsys.readouterr().out
    assert "memory estimate" in text and "flat-band width" in text and "rigid structure" in text
    for name in ("summary.json", "bands.json", "bands.png", "dos.png", "interlayer_distance.png",
                 "bands_rigid.json", "bands_rigid_vs_relaxed.png",
                 "displacement.png", "registry.png", "ldos.png", "hamiltonian.npz", "relax.traj",
                 "structure_rigid.extxyz", "structure_relaxed.extxyz"):
        assert (out / name).stat().st_size > 0, name
    s = json.loads((out / "summary.json").read_text())
    assert s["n_atoms"] == 28 and s["n_orbitals"] == 28 and s["n_electrons"] == 28
    assert s["angle_deg"] == pytest.approx(21.7868, abs=1e-3)
    assert s["relax"]["relax_steps"] == 3 and s["relax"]["energy_final_eV"] <= s["relax"]["energy_initial_eV"]
    # the flat-band numbers are those of the four bands around charge neutrality in bands.json
    bs = BandStructure.read(str(out / "bands.json"))
    fb = s["flat_bands"]
    ham = TBHamiltonian.load(out / "hamiltonian.npz")
    relaxed = read(out / "structure_relaxed.extxyz")
    k = np.array([0.2, 0.1, 0.0])
    np.testing.assert_allclose(np.linalg.eigvalsh(ham.hk(k).toarray()),
                               np.linalg.eigvalsh(moon_koshino(relaxed).hk(k).toarray()), atol=1e-5)
    e = np.array([np.linalg.eigvalsh(ham.hk(k).toarray()) for k in bs.path.kpts])
    flat = e[:, 12:16]
    assert fb["width_meV"] == pytest.approx(1e3 * (flat.max() - flat.min()), abs=1e-6)
    assert fb["gap_above_meV"] == pytest.approx(1e3 * (e[:, 16].min() - flat.max()), abs=1e-6)
    assert fb["gap_below_meV"] == pytest.approx(1e3 * (flat.min() - e[:, 11].max()), abs=1e-6)
    assert e[:, 13].max() <= fb["fermi_level_eV"] + 1e-9 and fb["fermi_level_eV"] <= e[:, 14].min() + 1e-9
    assert bs.reference == pytest.approx(fb["fermi_level_eV"])
    assert s["memory"]["peak_rss_bytes"] > 0 and s["memory"]["estimate"]["peak_bytes"] > 0
    assert set(s["timings_s"]) == {"relax", "hamiltonian", "bands", "rigid_bands", "dos", "maps"}
    # the rigid comparison is the Moon-Koshino model of the unrelaxed cell, moved to the relaxed mean
    # interlayer distance (the default --rigid-distance relaxed), on the same path
    rigid = BandStructure.read(str(out / "bands_rigid.json"))
    np.testing.assert_allclose(rigid.path.kpts, bs.path.kpts)
    built, ref = twisted_bilayer("graphene", m=1, n=2), read(out / "structure_rigid_reference.extxyz")
    top = built.arrays["layer"] == 1
    d_relaxed = relaxed.positions[top, 2].mean() - relaxed.positions[~top, 2].mean()
    assert s["rigid"]["interlayer_distance"] == "relaxed"
    assert s["rigid"]["mean_interlayer_distance_A"] == pytest.approx(d_relaxed, abs=1e-6)  # extxyz digits
    np.testing.assert_allclose(ref.positions[:, :2], built.positions[:, :2], atol=1e-9)
    np.testing.assert_allclose(ref.positions[~top], built.positions[~top], atol=1e-9)
    assert ref.positions[top, 2].mean() - ref.positions[~top, 2].mean() == pytest.approx(d_relaxed, abs=1e-6)
    exact = built.copy()  # the file's positions are rounded; rebuild the reference at full precision
    exact.positions[top, 2] += s["rigid"]["mean_interlayer_distance_A"] - 3.35
    e0 = np.array([np.linalg.eigvalsh(moon_koshino(exact).hk(k).toarray()) for k in bs.path.kpts])
    assert s["rigid"]["flat_bands"]["width_meV"] == pytest.approx(1e3 * np.ptp(e0[:, 12:16]), abs=1e-6)
    assert s["rigid"]["flat_bands"]["width_meV"] != pytest.approx(fb["width_meV"], abs=1e-9)
    assert sum(s["rigid"]["registry_counts"].values()) == sum(s["maps"]["registry_counts"].values()) == 7  # top A atoms
    assert s["maps"]["registry_counts"]["AA"] >= 1
    assert s["maps"]["interlayer_distance_A"]["mean"] == pytest.approx(3.35, abs=0.05)
    # flat-band density map: the four bands' |psi|^2 over the path's k-points, per atom, mean 1
    vecs = [np.linalg.eigh(ham.hk(k).toarray())[1][:, 12:16] for k in bs.path.kpts]
    per_atom = np.bincount(ham.orbital_atoms, weights=np.mean([(np.abs(v) ** 2).sum(1) for v in vecs], axis=0))
    reg = stacking_registry(relaxed)
    rel = per_atom / per_atom.mean()
    for name, value in s["maps"]["flat_band_density_by_registry"].items():
        assert value == pytest.approx(rel[reg.extra["atoms"][reg.extra["label"] == name]].mean(), rel=1e-4), name
    assert set(s["rigid"]["flat_band_density_by_registry"]) == set(s["maps"]["flat_band_density_by_registry"])
    assert "flat-band density by local stacking" in text


def test_run_default_model_is_pretrained_and_missing_is_explained(tmp_path, monkeypatch):
    import wander.pretrained as pretrained

    args = parse(cli_run, ["--material", "graphene", "--mn", "1", "2", "-o", str(tmp_path / "x")])
    assert args.model == "pretrained"
    # an installation without the model file (e.g. a trimmed wheel) says which file is missing
    monkeypatch.setitem(pretrained.PRETRAINED, "blg", dict(pretrained.PRETRAINED["blg"], file="absent.pt"))
    with pytest.raises(FileNotFoundError, match="pretrained model 'blg'.*not shipped.*absent.pt"):
        cli_run.run(args)


def test_run_refuses_checkpoint_without_hamiltonian_heads(tmp_path, checkpoint):
    args = parse(cli_run, ["--mn", "1", "2", "--model", checkpoint, "-o", str(tmp_path / "x"), "--no-relax"])
    with pytest.raises(ValueError, match="no Hamiltonian heads.*--tb-model moon-koshino"):
        cli_run.run(args)


def test_run_stops_before_starting_when_memory_is_short(tmp_path, monkeypatch, capsys):
    import wander.sim.memory as memory

    monkeypatch.setattr(memory, "available_memory", lambda meminfo="/proc/meminfo": 64 * 2**10)
    out = tmp_path / "x"
    args = parse(cli_run, ["--mn", "1", "2", "--tb-model", "moon-koshino", "--no-relax", "-o", str(out)])
    assert cli_run.run(args) == 3
    assert "only 64.00 KiB is available" in capsys.readouterr().out
    assert not (out / "summary.json").exists() and not (out / "hamiltonian.npz").exists()


def test_hamiltonian_cli_writes_hr_and_npz(tmp_path):
    atoms = twisted_bilayer("graphene", m=1, n=2)
    structure = tmp_path / "tbg.extxyz"
    write(structure, atoms)
    for name in ("tbg_hr.dat", "tbg.npz"):
        args = parse(cli_hamiltonian, [str(structure), "--tb-model", "moon-koshino", "-o", str(tmp_path / name)])
        assert cli_hamiltonian.run(args) == 0
    ref = moon_koshino(atoms)
    got = TBHamiltonian.load(tmp_path / "tbg.npz")
    k = np.array([0.1, 0.27, 0.0])
    np.testing.assert_allclose(np.linalg.eigvalsh(got.hk(k).toarray()), np.linalg.eigvalsh(ref.hk(k).toarray()))
    text = (tmp_path / "tbg_hr.dat").read_text().splitlines()
    assert int(text[1]) == 28
    with pytest.raises(SystemExit):  # --model and --tb-model are exclusive
        parse(cli_hamiltonian, [str(structure), "--tb-model", "x", "--model", "y", "-o", "h.npz"])


def test_hamiltonian_cli_hopping_cutoff(tmp_path, capsys):
    """--hopping-cutoff 7 on the shipped 9 A heads keeps the hoppings within 7 A and drops the rest;
    with a two-centre model it is refused."""
    structure = tmp_path / "tbg.extxyz"
    write(structure, twisted_bilayer("graphene", m=1, n=2))
    hams = {}
    for cut in (None, "7"):
        out = tmp_path / f"h{cut}.npz"
        argv = [str(structure), "--model", "pretrained", "-o", str(out)] + ([] if cut is None else ["--hopping-cutoff", cut])
        assert cli_hamiltonian.run(parse(cli_hamiltonian, argv)) == 0
        hams[cut] = TBHamiltonian.load(out)
    assert "cut at 7 A of the heads' 9 A" in capsys.readouterr().out
    full, short = hams[None], hams["7"]

    def dist(h):
        return np.linalg.norm(h.orbital_positions[h.j] + h.R @ h.cell - h.orbital_positions[h.i], axis=1)

    assert dist(short).max() <= 7.0 + 1e-9 and dist(full).max() > 8.5
    assert short.n_hoppings == int((dist(full) <= 7.0).sum())
    with pytest.raises(ValueError, match="hopping cutoff applies to a model checkpoint"):
        cli_hamiltonian.run(parse(cli_hamiltonian, [str(structure), "--tb-model", "moon-koshino", "--hopping-cutoff",
                                                    "7", "-o", str(tmp_path / "x.npz")]))
    assert not (tmp_path / "x.npz").exists()


def test_run_refuses_hopping_cutoff_with_a_two_centre_model(tmp_path):
    args = parse(cli_run, ["--mn", "1", "2", "--tb-model", "moon-koshino", "--no-relax", "--hopping-cutoff", "7",
                           "-o", str(tmp_path / "x")])
    with pytest.raises(ValueError, match="hopping cutoff applies to a model checkpoint"):
        cli_run.run(args)
    assert not (tmp_path / "x" / "summary.json").exists()


def test_hamiltonian_cli_refuses_force_field_only_checkpoint(tmp_path, checkpoint):
    structure = tmp_path / "tbg.extxyz"
    write(structure, twisted_bilayer("graphene", m=1, n=2))
    args = parse(cli_hamiltonian, [str(structure), "--model", checkpoint, "-o", str(tmp_path / "h.npz")])
    with pytest.raises(ValueError, match="no Hamiltonian heads"):
        cli_hamiltonian.run(args)


def test_relax_and_md_cli(tmp_path, checkpoint):
    atoms = twisted_bilayer("graphene", m=1, n=2)
    atoms.rattle(0.02, seed=1)
    structure = tmp_path / "in.extxyz"
    write(structure, atoms)
    out = tmp_path / "out.extxyz"
    args = parse(cli_relax, [str(structure), "--model", checkpoint, "-o", str(out), "--cell", "in-plane",
                             "--fmax", "1e-5", "--steps", "4", "--traj", str(tmp_path / "r.traj"), "--no-progress",
                             "--optimizer", "FIRE"])  # random test network: FIRE descends, LBFGS may not
    assert cli_relax.run(args) == 1  # not converged in 4 steps: non-zero exit, output still written
    relaxed = read(out)
    np.testing.assert_array_equal(relaxed.cell[2], atoms.cell[2])
    np.testing.assert_array_equal(relaxed.arrays["layer"], atoms.arrays["layer"])
    frames = read(tmp_path / "r.traj", ":")
    assert len(frames) == 5 and frames[-1].get_potential_energy() < frames[0].get_potential_energy()
    md_out = tmp_path / "md.extxyz"
    args = parse(cli_md, [str(structure), "--model", checkpoint, "-o", str(md_out), "--ensemble", "nve",
                          "--steps", "6", "--interval", "3", "--no-progress"])
    assert cli_md.run(args) == 0
    assert len(read(md_out, ":")) == 3


def test_rigid_reference_choices_are_checked_before_any_work(tmp_path, checkpoint):
    from wander.calculator import WanderCalculator
    from wander.sim.predictors import pz_predictor
    from wander.sim.workflow import run_workflow

    atoms = twisted_bilayer("graphene", m=1, n=2)
    with pytest.raises(ValueError, match="rigid_distance"):
        run_workflow(atoms, pz_predictor("moon-koshino"), tmp_path / "x", WanderCalculator(checkpoint),
                     compare_rigid=True, rigid_distance="experiment", progress=False, log=lambda s: None)
    assert not (tmp_path / "x" / "relax.traj").exists()


def test_run_valence_flat_bands(tmp_path, checkpoint):
    """--flat-bands valence takes the highest filled bands (band edges of a semiconducting bilayer)."""
    out = tmp_path / "run"
    args = parse(cli_run, ["--material", "graphene", "--mn", "1", "2", "--model", checkpoint,
                           "--tb-model", "moon-koshino", "--no-relax", "--npoints", "9", "--n-flat", "3",
                           "--flat-bands", "valence", "--dos-kgrid", "3", "-o", str(out), "--no-progress"])
    assert cli_run.run(args) == 0
    fb = json.loads((out / "summary.json").read_text())["flat_bands"]
    assert fb["position"] == "valence" and fb["first_band"] == 11 and fb["n_flat"] == 3
    bs = BandStructure.read(str(out / "bands.json"))
    ham = moon_koshino(twisted_bilayer("graphene", m=1, n=2))
    e = np.array([np.linalg.eigvalsh(ham.hk(k).toarray()) for k in bs.path.kpts])
    assert fb["width_meV"] == pytest.approx(1e3 * np.ptp(e[:, 11:14]), abs=1e-6)
    assert fb["gap_above_meV"] == pytest.approx(1e3 * (e[:, 14].min() - e[:, 11:14].max()), abs=1e-6)
