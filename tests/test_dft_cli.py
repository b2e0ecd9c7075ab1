"""``wander dft`` command line: sample, status, errors."""

import json

from wander.cli.main import main


def test_sample_and_status(tmp_path, capsys):
    root = tmp_path / "runs"
    assert main(["dft", "sample", "--material", "graphene", "-n", "5", "--seed", "3",
                 "--root", str(root)]) == 0
    dirs = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert dirs == [f"blg_{i:04d}" for i in range(5)]
    cfg = json.loads((root / "blg_0001" / "config.json").read_text())
    assert cfg["params"]["registry"] == "AB" and cfg["preset"]["name"] == "graphene"
    assert main(["dft", "status", str(root)]) == 0
    assert "pending: 5" in capsys.readouterr().out
    # sampling again keeps existing directories untouched
    assert main(["dft", "sample", "--material", "graphene", "-n", "5", "--seed", "3",
                 "--root", str(root)]) == 0


def test_missing_root(tmp_path, capsys):
    assert main(["dft", "status", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_twist_config_writes_the_held_out_cell(tmp_path, capsys):
    from ase.io import read

    out = tmp_path / "tbg"
    assert main(["dft", "twist-config", "--m", "1", "--n", "2", "--k-spacing", "0.24",
                 "--scf-k-spacing", "0.165", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "28 atoms" in text and "21.79 deg" in text and "k-grid (5, 5, 1)" in text and "SCF (7, 7, 1)" in text
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["params"]["held_out"] and cfg["preset"]["k_spacing"] == 0.24
    assert cfg["preset"]["scf_k_spacing"] == 0.165
    atoms = read(out / "structure.extxyz")
    assert len(atoms) == 28 and atoms.cell[2, 2] == 20.0 and sorted(set(atoms.arrays["layer"])) == [0, 1]


def test_scan_writes_the_registry_grid(tmp_path, capsys):
    root = tmp_path / "scan"
    assert main(["dft", "scan", "--material", "graphene", "--distances", "3.45", "3.25",
                 "--scf-k-spacing", "0.165", "--root", str(root)]) == 0
    assert "wrote 16 configurations" in capsys.readouterr().out
    cfg = json.loads((root / "blgscan_0008" / "config.json").read_text())
    assert cfg["params"]["distance"] == 3.25 and cfg["params"]["registry"] == "AA"
    assert cfg["preset"]["scf_k_spacing"] == 0.165
    info = json.loads((root / "sample.json").read_text())
    assert info["command"] == "wander dft scan --material graphene --distances 3.45 3.25 --scf-k-spacing 0.165"
