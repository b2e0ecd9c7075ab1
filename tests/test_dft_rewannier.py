"""Re-Wannierising frames of a dataset from a denser SCF: the frame's blocks and Fermi level are
replaced in place (other frames bit-identical, frame order kept), energies and forces kept,
resumable, gate failures recorded with the old Hamiltonian kept, a run whose SCF energy is not the
dataset's refused. Finished run directories stand in for QE and Wannier90."""

import json
import shutil

import numpy as np
import pytest
from ase.io import read

from test_dft_dataset import FIX, _config_dir
from wander.dft.dataset import _frame_slices, _join, append_configuration, load_hamiltonians
from wander.dft.rewannier import replace_frame_hamiltonian, rewannier_dataset, select_frames
from wander.io import read_hr, write_hr
from wander.train.data import read_dataset_frames

SHIFT = 0.05  # eV added to the onsite energy of Wannier function 0 in the "new" run


def _dataset(tmp_path):
    ds, runs = tmp_path / "ds", tmp_path / "runs"
    for name in ("blg_0001", "blg_0002", "blg_0003"):
        append_configuration(ds, _config_dir(runs, name))
    return ds, runs


def _new_run(root, name, state="done", shift=SHIFT, fermi=None):
    """A finished run directory ``<name>_k18x18`` whose Hamiltonian has onsite(0) shifted."""
    d = _config_dir(root, f"{name}_k18x18", state=state)
    hr = read_hr(d / "wan_hr.dat")
    H = hr.hoppings().copy()
    H[np.flatnonzero((hr.R == 0).all(1))[0], 0, 0] += shift
    write_hr(d / "wan_hr.dat", hr.R, H, hr.ndegen)
    if fermi is not None:
        text = (d / "scf.out").read_text()
        line = next(ln for ln in text.splitlines() if "the Fermi energy is" in ln)
        (d / "scf.out").write_text(text.replace(line, f"     the Fermi energy is    {fermi:.4f} ev"))
    return d


def test_slices_join_back_to_the_file(tmp_path):
    ds, _ = _dataset(tmp_path)
    h = load_hamiltonians(ds)
    joined = _join([_frame_slices(h, f) for f in range(len(h["frame_names"]))])
    assert set(joined) == set(h)
    for k in h:
        np.testing.assert_array_equal(joined[k], h[k])
        assert joined[k].dtype == h[k].dtype, k


def test_rewannier_replaces_one_frame(tmp_path):
    ds, runs = _dataset(tmp_path)
    before = load_hamiltonians(ds)
    e_before = [f.get_potential_energy() for f in read(ds / "frames.extxyz", ":")]
    new_runs = tmp_path / "dense"
    _new_run(new_runs, "blg_0002", fermi=-1.2345)
    counts = rewannier_dataset(ds, new_runs, 0.165, ["blg_0002"], log=lambda m: None)
    assert counts == {"done": 1, "already": 0, "failed": 0}
    after = load_hamiltonians(ds)
    assert after["frame_names"].tolist() == ["blg_0001", "blg_0002", "blg_0003"]
    for f in (0, 2):                               # the other frames: bit-identical
        a, b = _frame_slices(before, f), _frame_slices(after, f)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    a, b = _frame_slices(before, 1), _frame_slices(after, 1)
    diff = b["block_values"] - a["block_values"]
    assert np.count_nonzero(diff) == 1 and diff.max() == pytest.approx(SHIFT)
    assert b["fermi_energy"][0] == pytest.approx(-1.2345)
    frames = read(ds / "frames.extxyz", ":")
    assert [f.info["config"] for f in frames] == ["blg_0001", "blg_0002", "blg_0003"]
    assert frames[1].info["fermi_energy"] == pytest.approx(-1.2345)
    assert [f.get_potential_energy() for f in frames] == e_before      # labels kept
    entry = json.loads((ds / "metadata.json").read_text())["configurations"]["blg_0002"]
    assert entry["hamiltonian_scf_kgrid"] == [18, 18, 1]
    assert entry["fermi_energy"] == pytest.approx(-1.2345)
    assert entry["rewannier"]["previous_fermi_energy"] != entry["fermi_energy"]
    # the dataset still reads and its targets build
    fr, ham, idx = read_dataset_frames(ds)
    assert len(fr) == 3 and idx == [0, 1, 2]
    # resumable
    assert rewannier_dataset(ds, new_runs, 0.165, ["blg_0002"], log=lambda m: None)["already"] == 1


def test_rewannier_gate_failure_keeps_the_old_hamiltonian(tmp_path):
    ds, runs = _dataset(tmp_path)
    before = load_hamiltonians(ds)
    new_runs = tmp_path / "dense"
    _new_run(new_runs, "blg_0001", state="failed")
    counts = rewannier_dataset(ds, new_runs, 0.165, ["blg_0001"], log=lambda m: None)
    assert counts["failed"] == 1 and counts["done"] == 0
    after = load_hamiltonians(ds)
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])
    entry = json.loads((ds / "metadata.json").read_text())["configurations"]["blg_0001"]
    assert entry["rewannier_error"]["reason"] == "quality_gate"
    assert "hamiltonian_scf_kgrid" not in entry


def test_rewannier_refuses_another_energy(tmp_path):
    ds, runs = _dataset(tmp_path)
    d = _new_run(tmp_path / "dense", "blg_0003")
    shutil.copy(FIX / "qe" / "blg_scf.out", d / "scf.out")
    text = (d / "scf.out").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("!"))
    value = float(line.split("=")[1].split()[0])
    (d / "scf.out").write_text(text.replace(line, line.replace(f"{value:.8f}", f"{value - 1e-3:.8f}")))
    with pytest.raises(ValueError, match="differs from the dataset"):
        rewannier_dataset(ds, tmp_path / "dense", 0.165, ["blg_0003"], log=lambda m: None)


def test_select_frames_keeps_pattern_order(tmp_path):
    ds, _ = _dataset(tmp_path)
    assert select_frames(ds, ["blg_0003", "blg_*"]) == ["blg_0003", "blg_0001", "blg_0002"]
    with pytest.raises(ValueError, match="matches 'x_\\*'"):
        select_frames(ds, ["x_*"])


def test_layer_offsets_removed_and_restored(tmp_path):
    from wander.dft.layer_offset import layer_offsets, remove_layer_offsets, restore_layer_offsets

    ds, _ = _dataset(tmp_path)
    # give frame blg_0002 a layer offset of 80 meV on top of the fixture's own
    h = load_hamiltonians(ds)
    base = layer_offsets(ds)
    assert set(base) == {"blg_0001", "blg_0002", "blg_0003"}
    d = tmp_path / "dense"
    _new_run(d, "blg_0002", shift=0.0)
    rewannier_dataset(ds, d, 0.165, ["blg_0002"], log=lambda m: None)
    from wander.dft.layer_offset import _frames, _shift

    _shift(ds, load_hamiltonians(ds), _frames(ds), {"blg_0002": -80.0}, +1.0)   # -(-80)/2 on layer 0: offset +80
    raw = load_hamiltonians(ds)
    off = layer_offsets(ds)
    assert off["blg_0002"] == pytest.approx(base["blg_0002"] + 80.0)
    mean_before = [_frame_slices(raw, f)["block_values"] for f in range(3)]
    assert remove_layer_offsets(ds, ["blg_0002", "blg_0003"]).keys() == {"blg_0002", "blg_0003"}
    from wander.dft.dataset import summary_markdown

    row = next(r for r in summary_markdown(ds).splitlines() if r.startswith("| layer offsets removed"))
    assert row.count("|") == 3 and "2 frames" in row
    after = layer_offsets(ds)
    assert after["blg_0002"] == pytest.approx(0.0, abs=1e-9) and after["blg_0003"] == pytest.approx(0.0, abs=1e-9)
    assert after["blg_0001"] == pytest.approx(base["blg_0001"])          # not selected: untouched
    new = load_hamiltonians(ds)
    for f in range(3):
        a, b = mean_before[f], _frame_slices(new, f)["block_values"]
        assert a.sum() == pytest.approx(b.sum())          # mean onsite kept (2 + 2 orbitals)
        assert np.count_nonzero(np.abs(a - b) > 1e-12) <= 4   # only the 4 onsite energies moved
    meta = json.loads((ds / "metadata.json").read_text())["configurations"]
    assert meta["blg_0002"]["layer_offset_removed_meV"] == pytest.approx(base["blg_0002"] + 80.0)
    assert remove_layer_offsets(ds, ["blg_*"]).keys() == {"blg_0001"}    # idempotent for done frames
    restore_layer_offsets(ds)
    back = load_hamiltonians(ds)
    np.testing.assert_allclose(back["block_values"], raw["block_values"], rtol=0, atol=1e-12)
    assert not any("layer_offset_removed_meV" in e
                   for e in json.loads((ds / "metadata.json").read_text())["configurations"].values())
    # a re-Wannierised frame is raw again: its flag goes
    remove_layer_offsets(ds, ["blg_0003"])
    _new_run(d, "blg_0003", shift=0.0)
    rewannier_dataset(ds, d, 0.165, ["blg_0003"], log=lambda m: None)
    assert "layer_offset_removed_meV" not in json.loads((ds / "metadata.json").read_text())["configurations"]["blg_0003"]
    assert layer_offsets(ds)["blg_0003"] == pytest.approx(base["blg_0003"])


def test_layer_offset_cli(tmp_path, capsys):
    from wander.cli.main import main

    ds, _ = _dataset(tmp_path)
    assert main(["dft", "layer-offset", str(ds)]) == 0
    assert "3 frames: |offset| median" in capsys.readouterr().out
    assert main(["dft", "layer-offset", str(ds), "--remove", "blg_*"]) == 0
    assert "removed the layer offsets of 3 frames" in capsys.readouterr().out
    assert main(["dft", "layer-offset", str(ds), "--restore"]) == 0
    assert "restored the layer offsets of 3 frames" in capsys.readouterr().out
