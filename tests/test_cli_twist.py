"""``wander twist`` end to end: build, write, read back, tables and errors."""

import os
import subprocess
import sys

import numpy as np
import pytest
from ase.io import read

from wander.cli.main import main
from wander.structures import layer_planes, twisted_bilayer


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_twist_by_angle_writes_extxyz(capsys):
    assert main(["twist", "--material", "graphene", "--angle", "1.05", "-o", "tbg.extxyz"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0  # one-line summary
    assert "11908 atoms" in out and "m=31 n=32" in out and "1.0501 deg" in out
    atoms = read("tbg.extxyz")
    assert len(atoms) == 11908
    assert np.bincount(atoms.arrays["layer"]).tolist() == [5954, 5954]
    assert tuple(atoms.pbc) == (True, True, False)
    assert atoms.info["angle"] == pytest.approx(1.0501208797944)
    assert layer_planes(atoms)[1] - layer_planes(atoms)[0] == pytest.approx(3.35)
    assert [f for f in os.listdir(".") if f != "tbg.extxyz"] == []  # no temporary files left


def test_twist_mn_matches_library(capsys):
    args = ["twist", "--mn", "2", "3", "--distance", "3.4", "--vacuum", "15", "--center", "hexagon",
            "--stacking", "AB", "-o", "t.extxyz"]
    assert main(args) == 0
    atoms = read("t.extxyz")
    ref = twisted_bilayer("graphene", m=2, n=3, distance=3.4, vacuum=15.0, center="hexagon", stacking="AB")
    assert len(atoms) == 76
    assert np.allclose(atoms.positions, ref.positions, atol=1e-6)
    assert np.allclose(atoms.cell.array, ref.cell.array, atol=1e-6)
    assert np.array_equal(atoms.arrays["layer"], ref.arrays["layer"])


def test_list_table(capsys):
    assert main(["twist", "--material", "graphene", "--list", "--max-atoms", "200", "--min-angle", "10"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rows = [line.split() for line in lines[1:-1]]
    angles = [float(r[0]) for r in rows]
    assert angles == sorted(angles) and min(angles) >= 10
    assert ["21.7868", "1", "2", "28"] in rows and ["13.1736", "2", "3", "76"] in rows
    assert all(int(r[3]) <= 200 for r in rows)
    assert main(["twist", "--material", "mos2", "--list", "--max-atoms", "50"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.strip().splitlines()[1:-1]]
    assert ["21.7868", "1", "2", "42"] in rows


def test_untwisted_bilayer_and_monolayer(capsys):
    assert main(["twist", "--material", "mos2", "--bilayer", "AB", "--shift", "0.1", "0.2",
                 "-o", "ab.extxyz"]) == 0
    atoms = read("ab.extxyz")
    assert atoms.get_chemical_symbols() == ["Mo", "S", "S"] * 2
    assert atoms.arrays["layer"].tolist() == [0, 0, 0, 1, 1, 1]
    mo = atoms.positions[[0, 3]]
    assert mo[1, 2] - mo[0, 2] == pytest.approx(6.15)
    frac = np.linalg.solve(atoms.cell.array[:2, :2].T, mo[1, :2] - mo[0, :2])
    assert np.allclose((frac - [1 / 3 + 0.1, 1 / 3 + 0.2] + 0.5) % 1 - 0.5, 0, atol=1e-6)
    assert main(["twist", "--material", "wse2", "--monolayer", "-o", "w.extxyz"]) == 0
    w = read("w.extxyz")
    assert w.get_chemical_symbols() == ["W", "Se", "Se"] and w.arrays["layer"].tolist() == [0, 0, 0]


def test_hetero_cli_reports_strain(capsys):
    assert main(["twist", "--material", "graphene", "--top-material", "hbn", "--mn", "1", "0",
                 "--top-mn", "1", "0", "--max-strain", "0.02", "-o", "h.extxyz"]) == 0
    out = capsys.readouterr().out
    assert "strain -1.7572 %" in out
    atoms = read("h.extxyz")
    assert atoms.get_chemical_symbols() == ["C", "C", "B", "N"]
    assert atoms.info["strain"] == pytest.approx(2.46 / 2.504 - 1)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--angle", "1.05", "--max-atoms", "1000"], "no commensurate angle"),
        (["--mn", "2", "4"], "coprime"),
        (["--angle", "1.0", "--shift", "0.1", "0.1"], "--shift"),
        (["--mn", "1", "2", "--center", "0.1"], "--center"),
        (["--list", "--top-material", "hbn"], "homobilayers"),
        (["--bilayer", "ABC"], "stacking"),
        (["--material", "graphene", "--top-material", "hbn", "--bilayer", "AB"], "max_strain"),
        (["--material", "unobtainium", "--monolayer"], "unknown material"),
    ],
)
def test_errors_exit_2_without_writing(capsys, args, message):
    assert main(["twist", *args, "-o", "out.extxyz"]) == 2
    assert message in capsys.readouterr().err
    assert os.listdir(".") == []


def test_mode_is_required():
    with pytest.raises(SystemExit) as exc:
        main(["twist", "--material", "graphene"])
    assert exc.value.code == 2


@pytest.mark.slow  # spawns a fresh interpreter (imports ase): a few seconds
def test_executable_entry_point(in_tmp):
    proc = subprocess.run(
        [sys.executable, "-m", "wander.cli.main", "twist", "--mn", "1", "2", "-o", "e.extxyz"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "28 atoms" in proc.stdout
    assert len(read(in_tmp / "e.extxyz")) == 28
