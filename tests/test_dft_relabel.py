"""Re-labelling a dataset with a denser SCF grid: labels replaced, Hamiltonians kept, resumable,
structure mismatches refused. A stand-in launcher writes a committed scf.out with shifted numbers."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from test_dft_dataset import FIX, _config_dir
from wander.dft.dataset import append_configuration, load_hamiltonians
from wander.dft.pipeline import Launcher, StepError
from wander.dft.qe_output import RY, read_pw_output  # RY: eV per Ry, as the parser uses
from wander.dft.relabel import relabel_dataset



class ShiftedScfLauncher(Launcher):
    """Writes the committed BLG scf.out with the total energy lowered by 1 mRy per call."""

    def __init__(self, fail: bool = False):
        super().__init__(mpi="", npool=1, nice=0)
        self.inputs: list[str] = []
        self.fail = fail

    def run(self, argv, cwd, stdout, parallel=True):
        cwd = Path(cwd)
        self.inputs.append((cwd / "scf.in").read_text())
        if self.fail:
            raise StepError("program_error", "pw.x crashed")
        text = (FIX / "qe" / "blg_scf.out").read_text()
        old = read_pw_output(FIX / "qe" / "blg_scf.out").energy / RY
        text = text.replace(f"{old:.8f}", f"{old - 1e-3:.8f}")
        (cwd / stdout).write_text(text)
        (cwd / "tmp").mkdir(exist_ok=True)
        return 0.0


def _dataset(tmp_path: Path) -> tuple[Path, Path]:
    ds, runs = tmp_path / "ds", tmp_path / "runs"
    for name in ("blg_0001", "blg_0002"):
        append_configuration(ds, _config_dir(runs, name))
    return ds, runs


def test_relabel_replaces_labels_and_keeps_hamiltonians(tmp_path):
    ds, runs = _dataset(tmp_path)
    h_before = load_hamiltonians(ds)
    e_before = [f.get_potential_energy() for f in read(ds / "frames.extxyz", ":")]
    launcher = ShiftedScfLauncher()
    counts = relabel_dataset(ds, runs, 0.165, launcher=launcher, log=lambda m: None)
    assert counts == {"relabelled": 2, "already": 0, "failed": 0, "missing": 0}
    assert "18 18 1" in launcher.inputs[0]                     # the denser grid was used
    frames = read(ds / "frames.extxyz", ":")
    for f, e0 in zip(frames, e_before):
        assert f.get_potential_energy() == pytest.approx(e0 - 1e-3 * RY, abs=1e-6)
    meta = json.loads((ds / "metadata.json").read_text())
    entry = meta["configurations"]["blg_0001"]
    assert entry["scf_kgrid"] == [18, 18, 1] and entry["relabel"]["previous_scf_kgrid"] == [9, 9, 1]
    assert entry["energy"] == pytest.approx(frames[0].get_potential_energy())
    assert meta["settings"]["scf_k_spacing"] == 0.165
    from wander.dft.dataset import summary_markdown

    assert "| SCF grid of energy / force / stress labels | 18x18: 2 |" in summary_markdown(ds)
    h_after = load_hamiltonians(ds)
    for k, v in h_before.items():
        np.testing.assert_array_equal(v, h_after[k])
    npy = np.concatenate([np.load(p) for p in (ds / "deepmd").glob("*/C4/set.000/energy.npy")])
    assert sorted(npy) == pytest.approx(sorted(f.get_potential_energy() for f in frames), abs=1e-8)
    assert not (runs / "blg_0001" / "relabel_k18x18" / "tmp").exists()   # scratch removed
    # resumable: a second call does nothing
    assert relabel_dataset(ds, runs, 0.165, launcher=launcher, log=lambda m: None)["already"] == 2


def test_relabel_failure_is_recorded_and_labels_kept(tmp_path):
    ds, runs = _dataset(tmp_path)
    e_before = [f.get_potential_energy() for f in read(ds / "frames.extxyz", ":")]
    counts = relabel_dataset(ds, runs, 0.165, launcher=ShiftedScfLauncher(fail=True), limit=1, log=lambda m: None)
    assert counts["failed"] == 1 and counts["relabelled"] == 0
    assert [f.get_potential_energy() for f in read(ds / "frames.extxyz", ":")] == e_before
    meta = json.loads((ds / "metadata.json").read_text())
    assert meta["configurations"]["blg_0001"]["relabel_error"]["reason"] == "program_error"
    assert "scf_kgrid" not in meta["configurations"]["blg_0001"] or \
        meta["configurations"]["blg_0001"]["scf_kgrid"] == [9, 9, 1]


def test_relabel_refuses_a_different_structure(tmp_path):
    ds, runs = _dataset(tmp_path)
    from ase.io import write

    atoms = read(runs / "blg_0002" / "structure.extxyz")
    atoms.positions[0, 2] += 0.1
    write(runs / "blg_0002" / "structure.extxyz", atoms, format="extxyz")
    shutil.rmtree(runs / "blg_0001")
    with pytest.raises(ValueError, match="not the structure of dataset frame blg_0002"):
        relabel_dataset(ds, runs, 0.165, launcher=ShiftedScfLauncher(), log=lambda m: None)
