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
