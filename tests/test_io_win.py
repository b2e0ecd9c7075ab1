"""Tests of the .win reader, orbital assignment and centres reader."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from wander.io import FormatError, WinData, orbital_assignment, read_centres_xyz, read_win
from wander.io.win import BOHR_ANGSTROM

FIX = Path(__file__).parent / "fixtures" / "io"
HBN = FIX / "w90_hbn"
BLG = Path(__file__).parent / "fixtures" / "blg_w90"
D = ["dz2", "dxz", "dyz", "dx2-y2", "dxy"]
P = ["pz", "px", "py"]
A = 3.19


def test_read_mos2_win_bohr_frac_comments_case():
    win = read_win(FIX / "mos2.win")
    expected_cell = np.array([[A, 0, 0], [-A / 2, A * np.sqrt(3) / 2, 0], [0, 0, 20.0]])
    np.testing.assert_allclose(win.cell, expected_cell, atol=1e-7)  # converted from bohr
    assert win.cell[0, 0] == pytest.approx(6.02822636 * BOHR_ANGSTROM, abs=1e-12)
    assert win.num_wann == 11 and win.num_bands == 30 and win.mp_grid == (6, 6, 1)
    assert win.atoms.get_chemical_symbols() == ["Mo", "S", "S"]
    assert win.atoms.pbc.all()
    np.testing.assert_allclose(win.atoms.cell.array, win.cell)
    np.testing.assert_allclose(win.atoms.positions[1], [A / 2, A / (2 * np.sqrt(3)), 11.56], atol=1e-6)
    assert win.projections == [("Mo", D), ("S", P)]
    assert win.keywords == {"use_ws_distance": ".true.", "dis_win_max": "10.5"}
    assert win.projection_lines == (23, 24)


def test_cart_atoms_in_angstrom_match_frac_atoms():
    frac = read_win(FIX / "mos2.win")
    cart = read_win(FIX / "mos2_cart.win")
    np.testing.assert_allclose(cart.cell, frac.cell, atol=1e-7)
    np.testing.assert_allclose(cart.atoms.positions, frac.atoms.positions, atol=1e-7)
    assert cart.atoms.arrays["w90_label"].tolist() == ["Mo1", "S", "S"]
    assert cart.atoms.get_chemical_symbols() == ["Mo", "S", "S"]
    # 'MO1:l=2' matches label 'Mo1' case-insensitively; names reorder to Wannier90 (l, mr) order
    assert cart.projections == [("S", P), ("MO1", D)]
    assert cart.num_bands is None and cart.mp_grid is None and cart.keywords == {}


def test_orbital_assignment_follows_wannier90_order():
    # order checked against the .nnkp written by wannier90.x -pp for these inputs
    atoms, labels = orbital_assignment(read_win(FIX / "mos2.win"))
    np.testing.assert_array_equal(atoms, [0] * 5 + [1] * 3 + [2] * 3)
    assert labels.tolist() == D + P + P
    atoms, labels = orbital_assignment(read_win(FIX / "mos2_cart.win"))
    np.testing.assert_array_equal(atoms, [1] * 3 + [2] * 3 + [0] * 5)
    assert labels.tolist() == P + P + D
    assert atoms.dtype == np.int64


def test_orbital_assignment_with_centres():
    win = read_win(FIX / "mos2.win")
    centres, atoms = read_centres_xyz(FIX / "mos2_centres.xyz")
    assert centres.shape == (11, 3)
    assert atoms.get_chemical_symbols() == ["Mo", "S", "S"]
    np.testing.assert_allclose(atoms.positions, win.atoms.positions, atol=1e-6)
    # centre 4 sits one lattice vector away from its Mo atom: minimum image accepts it
    host, labels = orbital_assignment(win, centres, tol=0.1)
    np.testing.assert_array_equal(host, [0] * 5 + [1] * 3 + [2] * 3)
    far = centres.copy()
    far[6] += [0.0, 0.0, 1.5]  # S px centre pushed 1.5 A out of the layer
    with pytest.raises(ValueError, match=r"Wannier function 7 \(px on atom 1, S\)"):
        orbital_assignment(win, far)
    with pytest.raises(ValueError, match="shape"):
        orbital_assignment(win, centres[:10])


def test_mismatched_num_wann_is_reported():
    path = FIX / "mos2_mismatch.win"
    with pytest.raises(FormatError) as info:
        read_win(path)
    assert str(info.value).startswith(f"{path}:22: ")
    assert "11 Wannier functions but num_wann = 10 (line 2)" in str(info.value)


def test_orbital_assignment_rejects_inconsistent_windata():
    win = read_win(FIX / "mos2.win")
    bad = WinData(win.cell, win.atoms, win.projections, 12, None, None, {}, path="x.win")
    with pytest.raises(FormatError, match="x.win:0: projections expand to 11"):
        orbital_assignment(bad)
    empty = WinData(win.cell, win.atoms, [], 11, None, None, {}, path="x.win")
    with pytest.raises(FormatError, match="no projections"):
        orbital_assignment(empty)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.win"
    path.write_text(text)
    return path


BASE = """num_wann = {nw}
begin unit_cell_cart
 2.46 0.0 0.0
 -1.23 2.1304225 0.0
 0.0 0.0 15.0
end unit_cell_cart
begin atoms_frac
C1 0.0 0.0 0.5
C2 0.333333333 0.666666667 0.5
end atoms_frac
begin projections
{proj}
end projections
"""


@pytest.mark.parametrize(
    ("proj", "labels", "hosts"),
    [
        ("C1:py,pz\nC2:p;s", ["pz", "py", "s", "pz", "px", "py"], [0, 0, 1, 1, 1, 1]),
        ("c1:l=2,mr=5,1", ["dz2", "dxy"], [0, 0]),
        ("C2:sp2;l=1,mr=3", ["sp2-1", "sp2-2", "sp2-3", "py"], [1] * 4),
        ("C1:sp3", ["sp3-1", "sp3-2", "sp3-3", "sp3-4"], [0] * 4),
        ("C1:pz:z=0,0,1:x=1,0,0\nC2:pz:r=2:zona=1.5", ["pz", "pz"], [0, 1]),
        ("f=0.333333333,0.666666667,0.5:pz\nc=0,0,7.5:s", ["pz", "s"], [1, 0]),
        ("bohr\nc=0,0,14.17294:s", ["s"], [0]),
    ],
)
def test_projection_syntax(tmp_path, proj, labels, hosts):
    win = read_win(_write(tmp_path, BASE.format(nw=len(labels), proj=proj)))
    got_hosts, got_labels = orbital_assignment(win)
    assert got_labels.tolist() == labels
    assert got_hosts.tolist() == hosts


@pytest.mark.parametrize(
    ("proj", "line", "words"),
    [
        ("random", 12, "random projections are not supported"),
        ("C3:pz", 12, "'C3' is not an atom label"),
        ("C1:pq", 12, "unknown orbital name 'pq'"),
        ("C1:l=4", 12, "l=4 is not a Wannier90 angular momentum"),
        ("C1:l=1,mr=4", 12, "mr=4 out of range 1..3"),
        ("C1:pz:z=1,0,0", 12, "local axes"),
        ("C1:pz:foo=1", 12, "unknown projection field"),
        ("C1:pz(u)", 12, "spin-resolved"),
        ("C1:fxyz", 12, "single f orbital"),
        ("C1 pz", 12, "expected 'site:orbitals"),
        ("f=0.1,0.1:pz", 12, "3 numbers"),
    ],
)
def test_bad_projections(tmp_path, proj, line, words):
    with pytest.raises(FormatError, match=re.escape(words)) as info:
        read_win(_write(tmp_path, BASE.format(nw=1, proj=proj)))
    assert info.value.line == line


def test_site_off_atom_has_no_host(tmp_path):
    win = read_win(_write(tmp_path, BASE.format(nw=1, proj="f=0.5,0.5,0.5:s")))
    with pytest.raises(ValueError, match=r"t.win:12: projection site f=0.5,0.5,0.5 is not on an atom"):
        orbital_assignment(win)


@pytest.mark.parametrize(
    ("edit", "line", "words"),
    [
        (lambda s: s.replace("num_wann = 2\n", ""), 0, "missing keyword 'num_wann'"),
        (lambda s: s.replace("num_wann = 2", "num_wann = two"), 1, "num_wann needs 1 positive integer"),
        (lambda s: s + "num_wann = 2\n", 15, "keyword 'num_wann' given twice (first on line 1)"),
        (lambda s: s.split("begin atoms_frac")[0] + "begin projections\nC1:pz\nend projections\n", 0,
         "missing block 'atoms_frac' or 'atoms_cart'"),
        (lambda s: re.sub(r"begin unit_cell_cart.*?end unit_cell_cart\n", "", s, flags=re.S), 0,
         "missing block 'unit_cell_cart'"),
        (lambda s: re.sub(r"begin projections.*", "", s, flags=re.S), 0, "missing block 'projections'"),
        (lambda s: s.replace("end atoms_frac\n", ""), 10, "block 'atoms_frac' opened on line 7 is not closed"),
        (lambda s: s.replace("end projections", "end projection"), 14, "does not close the open block"),
        (lambda s: s.replace(" -1.23 2.1304225 0.0\n", ""), 2, "3 lines of 3 numbers"),
        (lambda s: s.replace("-1.23 2.1304225", "-1.23 2.13x"), 4, "non-numeric value"),
        (lambda s: s.replace(" 0.0 0.0 15.0", " 4.92 0.0 0.0"), 2, "linearly dependent"),
        (lambda s: s.replace("C2 0.333333333", "Q2 0.333333333"), 9, "does not start with a chemical symbol"),
        (lambda s: s.replace("C2 0.333333333 0.666666667 0.5", "C2 0.3 0.6"), 9, "expected 'label x y z'"),
        (lambda s: s + "spinors = true\n", 15, "spinors = true is not supported"),
        (lambda s: s + "spinors = maybe\n", 15, "true or false"),
        (lambda s: s + "num_bands = 1\n", 15, "smaller than num_wann"),
        (lambda s: s + "mp_grid = 4 4\n", 15, "mp_grid needs 3"),
        (lambda s: s + "begin atoms_cart\nC 0 0 0\nend atoms_cart\n", 15, "not both"),
        (lambda s: s + "justakey\n", 15, "expected 'key = value'"),
        (lambda s: s.replace("C1:pz\nC2:pz", ""), 11, "projections block is empty"),
    ],
)
def test_malformed_win(tmp_path, edit, line, words):
    text = edit(BASE.format(nw=2, proj="C1:pz\nC2:pz"))
    path = _write(tmp_path, text)
    with pytest.raises(FormatError, match=re.escape(words)) as info:
        read_win(path)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_auto_projections_allows_missing_block(tmp_path):
    text = re.sub(r"begin projections.*", "auto_projections = .true.\n", BASE.format(nw=2, proj=""), flags=re.S)
    win = read_win(_write(tmp_path, text))
    assert win.projections == [] and win.keywords["auto_projections"] == ".true."
    with pytest.raises(FormatError, match="no projections"):
        orbital_assignment(win)


def test_real_wannier90_runs():
    win = read_win(HBN / "hbn.win")
    centres, atoms = read_centres_xyz(HBN / "hbn_centres.xyz")
    host, labels = orbital_assignment(win, centres, tol=1e-4)  # model centres sit exactly on the atoms
    assert host.tolist() == [0, 1] and labels.tolist() == ["pz", "pz"]
    assert atoms.get_chemical_symbols() == ["B", "N"]
    if (BLG / "blg.win").exists():
        win = read_win(BLG / "blg.win")
        centres, _ = read_centres_xyz(BLG / "blg_centres.xyz")
        host, labels = orbital_assignment(win, centres, tol=0.05)
        assert host.tolist() == [0, 1, 2, 3] and labels.tolist() == ["pz"] * 4


@pytest.mark.parametrize(
    ("edit", "line", "words"),
    [
        (lambda ls: ls[:-1], 16, "file truncated: line 1 announces 14 entries, found 13"),
        (lambda ls: ["    x"] + ls[1:], 1, "not an integer"),
        (lambda ls: ls[:5] + ["X 1.0 2.0"] + ls[6:], 6, "expected 'symbol x y z'"),
        (lambda ls: ls[:5] + ["X 1.0 2.0 abc"] + ls[6:], 6, "non-numeric coordinate"),
        (lambda ls: ls[:14] + ["X 0 0 0"] + ls[15:], 15, "'X' entry after the atoms"),
        (lambda ls: ls[:13] + ["Qq 0 0 0"] + ls[14:], 14, "unknown chemical symbol 'Qq'"),
        (lambda ls: ls + ["S 0 0 0"], 17, "unexpected data after the 14 entries"),
        (lambda ls: ["3", "c", "Mo 0 0 0", "S 0 0 1", "S 0 0 2"], 3, "no Wannier centre"),
    ],
)
def test_malformed_centres(tmp_path, edit, line, words):
    lines = (FIX / "mos2_centres.xyz").read_text().splitlines()
    path = tmp_path / "c.xyz"
    path.write_text("\n".join(edit(lines)) + "\n")
    with pytest.raises(FormatError, match=re.escape(words)) as info:
        read_centres_xyz(path)
    assert info.value.line == line
