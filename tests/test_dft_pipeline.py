"""Pipeline orchestration (markers, status, gate, cleanup) with a stand-in launcher that
replays the committed BLG outputs instead of running the DFT codes."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

import wander.dft.pipeline as pipeline
from wander.dft.pipeline import Launcher, StepError, read_status, run_configuration, write_configuration
from wander.dft.presets import get_preset
from wander.io import read_band_kpt

FIX = Path(__file__).parent / "fixtures"


def _synthetic_amn_eig(d: Path, nb: int, nk: int, nw: int) -> None:
    """Bands at E_F - 3 + 0.2 * m eV; band 10 (at E_F - 1.0 eV) has no pz weight (sigma-like)."""
    ef = -0.4365
    amn = ["synthetic", f"{nb} {nk} {nw}"]
    eig = []
    for k in range(nk):
        for n in range(nw):
            for m in range(nb):
                a = 0.0 if m == 10 else 0.5
                amn.append(f"{m + 1} {n + 1} {k + 1} {a:.6f} 0.0")
        for m in range(nb):
            eig.append(f"{m + 1} {k + 1} {ef - 3 + 0.2 * m:.6f}")
    (d / "wan.amn").write_text("\n".join(amn) + "\n")
    (d / "wan.eig").write_text("\n".join(eig) + "\n")


class ReplayLauncher(Launcher):
    """Copies committed outputs in place of running pw.x / pw2wannier90.x / wannier90.x."""

    def __init__(self, fail_on: str | None = None):
        super().__init__(mpi="", npool=1, nice=0)
        self.calls: list[str] = []
        self.fail_on = fail_on

    def run(self, argv, cwd, stdout, parallel=True):
        cwd = Path(cwd)
        name = Path(argv[0]).name
        tag = stdout.split(".")[0]
        self.calls.append(tag)
        if tag == self.fail_on:
            raise StepError("program_error", f"{tag} failed")
        if tag == "scf":
            shutil.copy(FIX / "qe" / "blg_scf.out", cwd / "scf.out")
            (cwd / "tmp").mkdir(exist_ok=True)
        elif tag == "nscf":
            (cwd / "nscf.out").write_text("     Program PWSCF v.6.7MaX starts\n   JOB DONE.\n")
        elif tag == "wpp":
            shutil.copy(FIX / "blg_w90" / "blg.nnkp", cwd / "wan.nnkp")
        elif tag == "pw2wan":
            _synthetic_amn_eig(cwd, nb=40, nk=81, nw=4)
        elif tag == "w90":
            for src, dst in (("blg.wout", "wan.wout"), ("blg_hr.dat", "wan_hr.dat"),
                             ("blg_wsvec.dat", "wan_wsvec.dat")):
                shutil.copy(FIX / "blg_w90" / src, cwd / dst)
        elif tag == "check":
            shutil.copy(FIX / "qe" / "blg_bands.out", cwd / "check.out")
        (cwd / stdout).touch()
        assert name in ("pw.x", "pw2wannier90.x", "wannier90.x")
        return 0.0


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "check_kpoints", lambda: read_band_kpt(FIX / "blg_w90" / "blg_band.kpt")[0])
    atoms = read(FIX / "blg_w90" / "scf.in", format="espresso-in")
    atoms.pbc = (True, True, False)
    atoms.arrays["layer"] = np.array([0, 0, 1, 1])
    preset = get_preset("graphene")
    preset.scf_k_spacing = None  # one grid for SCF and Wannier step (the replayed outputs' 9x9)
    return write_configuration(tmp_path / "blg_0000", atoms, {"kind": "bilayer"}, preset)


def test_full_run_and_resume(config_dir):
    lau = ReplayLauncher()
    st = run_configuration(config_dir, lau)
    assert st["state"] == "done", st
    assert lau.calls == ["scf", "nscf", "wpp", "pw2wan", "w90", "check"]
    res = json.loads((config_dir / "result.json").read_text())
    assert res["gate"]["passed"] and res["gate"]["band_errors"]["1"]["max_meV"] < 20, res
    assert not (config_dir / "tmp").exists()  # scratch removed
    assert "nosym = .true." in (config_dir / "nscf.in").read_text()
    win = (config_dir / "wan.win").read_text()
    assert "num_iter = 0" in win
    # the sigma-like band at E_F - 1.0 eV pushes the frozen window up to E_F - 0.9 eV
    assert "dis_froz_min = -1.336500" in win
    assert res["frozen_window_rel_EF_eV"][0] == pytest.approx(-0.9)
    lau2 = ReplayLauncher()
    assert run_configuration(config_dir, lau2)["state"] == "done" and lau2.calls == []
    assert "9 9 1 0 0 0" in (config_dir / "scf.in").read_text() and res["scf_kgrid"] == [9, 9, 1]


def test_denser_scf_grid_than_wannier_grid(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "check_kpoints", lambda: read_band_kpt(FIX / "blg_w90" / "blg_band.kpt")[0])
    atoms = read(FIX / "blg_w90" / "scf.in", format="espresso-in")
    atoms.pbc = (True, True, False)
    atoms.arrays["layer"] = np.array([0, 0, 1, 1])
    preset = get_preset("graphene")
    assert preset.scf_k_spacing == 0.165  # the default
    d = write_configuration(tmp_path / "blg_0000", atoms, {"kind": "bilayer"}, preset)
    assert run_configuration(d, ReplayLauncher())["state"] == "done"
    assert "18 18 1 0 0 0" in (d / "scf.in").read_text()
    assert "mp_grid = 9 9 1" in (d / "wan.win").read_text()
    assert len((d / "nscf.in").read_text().split("K_POINTS crystal")[1].split("\n")[1:]) >= 81
    res = json.loads((d / "result.json").read_text())
    assert res["kgrid"] == [9, 9, 1] and res["scf_kgrid"] == [18, 18, 1]


def test_failure_recorded_and_retry_resumes(config_dir):
    st = run_configuration(config_dir, ReplayLauncher(fail_on="pw2wan"))
    assert st["state"] == "failed" and st["reason"] == "program_error" and st["step"] == "pw2wan"
    lau = ReplayLauncher()
    assert run_configuration(config_dir, lau)["state"] == "failed" and lau.calls == []
    # scratch was removed with the failure, so a retry starts again from the SCF
    st = run_configuration(config_dir, lau, retry_failed=True)
    assert st["state"] == "done" and lau.calls[0] == "scf"


def test_gate_failure(config_dir):
    cfg = json.loads((config_dir / "config.json").read_text())
    cfg["preset"]["band_tol_meV"] = 1.0
    (config_dir / "config.json").write_text(json.dumps(cfg))
    st = run_configuration(config_dir, ReplayLauncher())
    assert st["state"] == "failed" and st["reason"] == "quality_gate"
    assert "band error" in st["error"]


def test_not_a_config_dir(tmp_path):
    with pytest.raises(FileNotFoundError):
        run_configuration(tmp_path, ReplayLauncher())
    assert read_status(tmp_path) == {"state": "pending"}


def test_forcefield_only_configuration_runs_scf_and_collects_without_hamiltonian(tmp_path, capsys, config_dir):
    from wander.cli.main import main
    from wander.dft.dataset import append_configuration, load_hamiltonians, summary_markdown
    from wander.train.data import read_dataset_frames

    atoms = read(FIX / "blg_w90" / "scf.in", format="espresso-in")
    atoms.pbc = (True, True, False)
    atoms.arrays["layer"] = np.array([0, 0, 1, 1])
    src = tmp_path / "found.extxyz"
    atoms.calc = None
    from ase.io import write

    write(src, [atoms, atoms], format="extxyz")
    root = tmp_path / "al"
    # no converged SCF grid known (the MoS2 preset sets none): refused
    assert main(["dft", "add", str(src), "--material", "mos2", "--root", str(root), "--prefix", "blgal"]) == 2
    assert "give --scf-k-spacing" in capsys.readouterr().err and not root.exists()
    assert main(["dft", "add", str(src), "--material", "graphene", "--root", str(root), "--prefix", "blgal",
                 "--scf-k-spacing", "0.165"]) == 0
    dirs = sorted(root.glob("blgal_*"))
    assert [d.name for d in dirs] == ["blgal_0000", "blgal_0001"]
    cfg = json.loads((dirs[0] / "config.json").read_text())
    assert cfg["params"]["labels"] == "forcefield" and cfg["preset"]["scf_k_spacing"] == 0.165
    # numbering continues after the highest name in use, also across a gap
    shutil.copytree(dirs[1], root / "blgal_0005")
    assert main(["dft", "add", str(src), "--material", "graphene", "--root", str(root), "--prefix", "blgal",
                 "--scf-k-spacing", "0.165"]) == 0
    assert sorted(d.name for d in root.glob("blgal_*"))[-2:] == ["blgal_0006", "blgal_0007"]

    lau = ReplayLauncher()
    st = run_configuration(dirs[0], lau)
    assert st["state"] == "done" and lau.calls == ["scf"]  # no Wannier steps
    assert "18 18 1 0 0 0" in (dirs[0] / "scf.in").read_text()
    res = json.loads((dirs[0] / "result.json").read_text())
    assert res["labels"] == "forcefield" and res["scf_kgrid"] == [18, 18, 1]

    # a full configuration first, then the force-field-only one: its frame has no H blocks
    ds = tmp_path / "ds"
    assert run_configuration(config_dir, ReplayLauncher())["state"] == "done"
    assert append_configuration(ds, config_dir) and append_configuration(ds, dirs[0])
    frames, ham, index = read_dataset_frames(ds)
    assert [f.info["config"] for f in frames] == ["blg_0000", "blgal_0000"] and index == [0, None]
    ff = frames[1]
    assert ff.info["labels"] == "forcefield"
    assert load_hamiltonians(ds)["frame_names"].tolist() == ["blg_0000"]
    ref = read(FIX / "qe" / "blg_scf.out", format="espresso-out")
    np.testing.assert_allclose(ff.get_forces(), ref.get_forces(), atol=1e-6)
    meta = json.loads((ds / "metadata.json").read_text())
    assert meta["configurations"]["blgal_0000"]["labels"] == "forcefield"
    assert meta["statistics"]["forcefield_only"] == 1
    assert "force-field labels only (no Wannier run) | 1" in summary_markdown(ds)


def test_add_rejects_structures_without_layers(tmp_path, capsys):
    from ase.io import write

    from wander.cli.main import main

    atoms = read(FIX / "blg_w90" / "scf.in", format="espresso-in")
    atoms.pbc = (True, True, False)
    write(tmp_path / "x.extxyz", atoms)
    assert main(["dft", "add", str(tmp_path / "x.extxyz"), "--material", "graphene", "--root",
                 str(tmp_path / "r"), "--prefix", "x", "--scf-k-spacing", "0.165"]) == 2
    assert "arrays['layer']" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_autogroup_warning_once(tmp_path, monkeypatch):
    """nice is ineffective across sessions under autogroup scheduling: warned once, not otherwise."""
    import wander.dft.pipeline as pl

    on, off = tmp_path / "on", tmp_path / "off"
    on.write_text("1\n")
    off.write_text("0\n")
    monkeypatch.setattr(pl, "_autogroup_warned", False)
    assert pl._warn_autogroup(str(off)) is False
    monkeypatch.setattr(pl, "_autogroup_warned", False)
    with pytest.warns(RuntimeWarning, match="autogroup"):
        assert pl._warn_autogroup(str(on)) is True
    assert pl._warn_autogroup(str(on)) is False  # once per process
    monkeypatch.setattr(pl, "_autogroup_warned", False)
    assert pl._warn_autogroup(str(tmp_path / "missing")) is False
