"""Tests of the seedname_band.dat / seedname_band.kpt readers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from wander.io import FormatError, read_band_dat, read_band_kpt

FIX = Path(__file__).parent / "fixtures" / "io"
HBN = FIX / "w90_hbn"


def test_read_band_dat():
    distance, energies = read_band_dat(FIX / "small_band.dat")
    np.testing.assert_array_equal(distance, [0.0, 0.5, 1.0, 1.5])
    np.testing.assert_array_equal(
        energies, [[-1.0, 0.2, 3.0], [-0.9, 0.4, 2.5], [-0.5, 0.9, 2.0], [-0.2, 1.1, 1.5]]
    )


def test_read_band_kpt():
    k, w = read_band_kpt(FIX / "small_band.kpt")
    np.testing.assert_allclose(k, [[0, 0, 0], [1 / 6, 0, 0], [1 / 3, 0, 0], [0.5, 0, 0]], atol=1e-6)
    np.testing.assert_array_equal(w, [1.0, 1.0, 1.0, 1.0])


def test_real_wannier90_band_files_agree():
    distance, energies = read_band_dat(HBN / "hbn_band.dat")
    k, _ = read_band_kpt(HBN / "hbn_band.kpt")
    assert energies.shape == (len(k), 2) and distance.shape == (len(k),)
    assert np.all(np.diff(distance) > 0) and distance[0] == 0.0
    # Gamma of the model: onsite +-1.2 eV, nearest-neighbour sum 3 x (-2.7), third neighbours 3 x (-0.2)
    off = 3 * -2.7 + 3 * -0.2
    h_gamma = [[1.2 + 6 * 0.05 * np.cos(0.4), off], [off, -1.2 - 6 * 0.08 * np.cos(0.4)]]
    e_gamma = np.linalg.eigvalsh(h_gamma)
    np.testing.assert_allclose(energies[0], e_gamma, atol=1e-5)


def _write(tmp_path: Path, lines: list[str], name: str = "x_band.dat") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("edit", "line", "words"),
    [
        (lambda ls: ls[:6] + ls[7:], 6, "band 2 has 3 points, band 1 has 4"),
        (lambda ls: ls[:7] + ["   1.00000000E+00  abc"] + ls[8:], 8, "non-numeric field 'abc'"),
        (lambda ls: ls[:2] + ["   1.00000000E+00"] + ls[3:], 3, "expected 2 columns, found 1"),
        (lambda ls: ls[:12] + ["   1.10000000E+00  2.00000000E+00"] + ls[13:], 13, "k distance differs"),
        (lambda ls: ["   0.0  1.0  2.0  3.0"], 1, "expected 2 columns, found 4"),
        (lambda ls: ["", "  "], 1, "no data"),
    ],
)
def test_malformed_band_dat(tmp_path, edit, line, words):
    lines = (FIX / "small_band.dat").read_text().splitlines()
    with pytest.raises(FormatError, match=re.escape(words)) as info:
        read_band_dat(_write(tmp_path, edit(lines)))
    assert info.value.line == line


@pytest.mark.parametrize(
    ("edit", "line", "words"),
    [
        (lambda ls: ls[:-1], 5, "file truncated: line 1 announces 4 k-points, found 3"),
        (lambda ls: ls + ["  0.1 0.1 0.1 1.0"], 6, "more than the 4 k-points"),
        (lambda ls: ["four"] + ls[1:], 1, "not an integer"),
        (lambda ls: ["  0"] + ls[1:], 1, "must be positive"),
        (lambda ls: ls[:3] + ["    0.333333    0.000000    0.000000"] + ls[4:], 4, "found 3 fields"),
        (lambda ls: ls[:2] + ["    0.1666x7    0.000000    0.000000   1.0"] + ls[3:], 3, "non-numeric"),
    ],
)
def test_malformed_band_kpt(tmp_path, edit, line, words):
    lines = (FIX / "small_band.kpt").read_text().splitlines()
    with pytest.raises(FormatError, match=re.escape(words)) as info:
        read_band_kpt(_write(tmp_path, edit(lines), "x_band.kpt"))
    assert info.value.line == line
