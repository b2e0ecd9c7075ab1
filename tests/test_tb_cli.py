"""``wander bands`` and ``wander dos`` end to end on small inputs."""

import re
from pathlib import Path

import numpy as np
import pytest
from ase.io import write
from ase.io.jsonio import read_json

from wander.cli.main import main
from wander.structures import graphene, twisted_bilayer

BLG = Path(__file__).parent / "fixtures" / "blg_w90"


def _ef(out: str) -> float:
    return float(re.search(r"E_F = (-?[0-9.]+) eV", out).group(1))


@pytest.fixture
def graphene_file(tmp_path):
    path = tmp_path / "g.extxyz"
    write(path, graphene())
    return path


def test_bands_pz_model_dense(graphene_file, tmp_path, capsys):
    png, js = tmp_path / "b.png", tmp_path / "b.json"
    rc = main(["bands", "--structure", str(graphene_file), "--tb-model", "graphene-nn", "--npoints", "40",
               "-o", str(png), "--json", str(js)])
    out = capsys.readouterr().out
    assert rc == 0 and png.stat().st_size > 10_000
    assert abs(_ef(out)) < 1e-9  # half filling of graphene: the Dirac point
    bs = read_json(str(js))
    assert bs.energies.shape == (1, 40, 2)
    assert np.isclose(bs.energies.max(), 3 * 2.7)  # +3t at Gamma
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json", "b.png", "g.extxyz"]


def test_bands_sparse_route(tmp_path, capsys):
    path = tmp_path / "tbg.extxyz"
    write(path, twisted_bilayer("graphene", m=2, n=3))  # 76 atoms, forced onto the sparse route
    png = tmp_path / "tbg.png"
    rc = main(["bands", "--structure", str(path), "--tb-model", "moon-koshino", "--method", "sparse",
               "--n-bands", "4", "--npoints", "5", "-o", str(png)])
    out = capsys.readouterr().out
    assert rc == 0 and png.exists()
    assert "shift-invert" in out and "band-path k-points" in out
    assert 0.7 < _ef(out) < 0.9  # Moon-Koshino charge neutrality sits ~0.8 eV above 0


def test_bands_and_dos_from_wannier90(tmp_path, capsys):
    png = tmp_path / "w.png"
    rc = main(["bands", "--hr", str(BLG / "blg_hr.dat"), "--win", str(BLG / "blg.win"), "--wsvec",
               str(BLG / "blg_wsvec.dat"), "--n-electrons", "4", "-o", str(png), "--emin", "-2", "--emax", "2"])
    out = capsys.readouterr().out
    assert rc == 0 and png.exists()
    assert _ef(out) == pytest.approx(-0.4365, abs=0.05)  # the DFT Fermi level of the fixture
    dat = tmp_path / "dos.txt"
    rc = main(["dos", "--hr", str(BLG / "blg_hr.dat"), "--win", str(BLG / "blg.win"), "--n-electrons", "4",
               "--kgrid", "12", "12", "1", "--width", "0.1", "--data", str(dat), "-o", str(tmp_path / "d.png")])
    assert rc == 0
    e, _, rho = np.loadtxt(dat, unpack=True)
    assert np.trapezoid(rho, e) == pytest.approx(4.0, rel=1e-3)


def test_dos_kpm(graphene_file, tmp_path, capsys):
    dat = tmp_path / "kpm.txt"
    rc = main(["dos", "--structure", str(graphene_file), "--tb-model", "graphene-nn", "--method", "kpm",
               "--kgrid", "15", "15", "1", "--moments", "200", "--vectors", "2", "--data", str(dat),
               "-o", str(tmp_path / "k.png")])
    out = capsys.readouterr().out
    assert rc == 0 and "KPM" in out
    e, _, rho = np.loadtxt(dat, unpack=True)
    assert np.trapezoid(rho, e) == pytest.approx(2.0, rel=1e-2)
    assert abs(_ef(out)) < 0.05  # integrated-DOS Fermi level of graphene, limited by the resolution


def test_cli_errors(graphene_file, capsys):
    assert main(["bands", "--hr", str(BLG / "blg_hr.dat")]) == 2
    assert "--win" in capsys.readouterr().err
    assert main(["bands"]) == 2
    assert "exactly one" in capsys.readouterr().err
    assert main(["bands", "--structure", str(graphene_file)]) == 2
    assert "--tb-model" in capsys.readouterr().err
