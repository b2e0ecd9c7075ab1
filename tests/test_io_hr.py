"""Tests of the seedname_hr.dat reader and writer (wander.io.hr)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

import wander.io.hr as hr_module
from fixtures.io.helpers import edited_copy
from wander.io import FormatError, HrData, read_hr, write_hr

FIX = Path(__file__).parent / "fixtures" / "io"
HBN = FIX / "w90_hbn"

# H(R) of two_hr.dat, H[r, m, n] = <m,0|H|n,R>
H_TWO = np.array(
    [
        [[0.1, 0.4 + 0.1j], [0.2 - 0.3j, 0.15]],
        [[1.0, 0.5 - 0.25j], [0.5 + 0.25j, -1.0]],
        [[0.1, 0.2 + 0.3j], [0.4 - 0.1j, 0.15]],
    ]
)


def test_read_two_orbital_file_maps_m_fastest_to_rows():
    hr = read_hr(FIX / "two_hr.dat")
    assert hr.num_wann == 2
    assert hr.header == "hand-made two-orbital chain, H(-R) = H(R)^dagger"
    np.testing.assert_array_equal(hr.R, [[-1, 0, 0], [0, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(hr.ndegen, [1, 1, 1])
    assert hr.R.dtype == np.int64 and hr.ndegen.dtype == np.int64 and hr.H.dtype == np.complex128
    np.testing.assert_array_equal(hr.H, H_TWO)
    # the file is Hermitian: H(-R) = H(R)^dagger
    np.testing.assert_array_equal(hr.H[0], hr.H[2].conj().T)


def test_degeneracy_weights_give_the_analytic_chain_band():
    hr = read_hr(FIX / "chain_hr.dat")
    np.testing.assert_array_equal(hr.ndegen, [2, 1, 2])
    np.testing.assert_array_equal(hr.H[:, 0, 0], [-2.0, 0.5, -2.0])
    np.testing.assert_array_equal(hr.hoppings()[:, 0, 0], [-1.0, 0.5, -1.0])
    k = np.linspace(-0.5, 0.5, 41)
    phase = np.exp(2j * np.pi * np.outer(k, hr.R[:, 0]))
    analytic = 0.5 + 2 * (-1.0) * np.cos(2 * np.pi * k)
    weighted = (phase @ hr.hoppings()[:, 0, 0]).real
    raw = (phase @ hr.H[:, 0, 0]).real
    np.testing.assert_allclose(weighted, analytic, atol=1e-12)
    assert np.max(np.abs(raw - analytic)) > 1.0  # forgetting the weights doubles the bandwidth


def test_round_trip_is_bit_exact(tmp_path):
    rng = np.random.default_rng(7)
    R = np.array([[i, j, 0] for i in range(-2, 3) for j in range(-1, 2)])
    nw = 3
    H = rng.normal(size=(len(R), nw, nw)) + 1j * rng.normal(size=(len(R), nw, nw))
    H *= 10.0 ** rng.integers(-8, 3, size=H.shape)  # many magnitudes
    path = tmp_path / "x_hr.dat"
    write_hr(path, R, H, header="round trip")
    back = read_hr(path)
    assert back.header == "round trip"
    assert back.num_wann == nw
    np.testing.assert_array_equal(back.R, R)
    np.testing.assert_array_equal(back.ndegen, np.ones(len(R)))
    np.testing.assert_array_equal(back.H, H)
    np.testing.assert_array_equal(back.hoppings(), H)


def test_written_ndegen_is_stored_as_raw_values(tmp_path):
    R = np.array([[-1, 0, 0], [0, 0, 0], [1, 0, 0]])
    H = np.array([[[-1.0]], [[0.5]], [[-1.0]]])
    path = tmp_path / "chain_hr.dat"
    write_hr(path, R, H, ndegen=[2, 1, 2])
    back = read_hr(path)
    np.testing.assert_array_equal(back.ndegen, [2, 1, 2])
    np.testing.assert_array_equal(back.H[:, 0, 0], [-2.0, 0.5, -2.0])
    np.testing.assert_allclose(back.hoppings(), H, rtol=1e-15, atol=0)


def test_written_layout_is_wannier90s(tmp_path):
    path = tmp_path / "w_hr.dat"
    R = np.array([[r, 0, 0] for r in range(-8, 9)])  # 17 R: two degeneracy lines
    H = np.zeros((17, 2, 2))
    H[:, 1, 0] = np.arange(17)  # m=2, n=1 entry
    write_hr(path, R, H, ndegen=np.arange(1, 18))
    lines = path.read_text().splitlines()
    assert lines[1].split() == ["2"] and lines[2].split() == ["17"]
    assert [len(line.split()) for line in lines[3:5]] == [15, 2]
    assert lines[3][:10] == "    1    2"  # Wannier90's 15I5
    body = [line.split() for line in lines[5:]]
    assert len(body) == 17 * 4
    assert [b[3:5] for b in body[:4]] == [["1", "1"], ["2", "1"], ["1", "2"], ["2", "2"]]  # m fastest
    assert lines[5][:25] == "   -8    0    0    1    1"  # 5I5 columns
    # the stored value is H * ndegen: m=2, n=1 of the last block is 16 * 17
    assert float(body[-3][5]) == 16 * 17


def test_wide_integers_stay_separated(tmp_path):
    path = tmp_path / "wide_hr.dat"
    R = np.array([[-12345, 0, 0], [0, 0, 0], [12345, 99999, -100000]])
    H = np.ones((3, 1, 1))
    write_hr(path, R, H)
    np.testing.assert_array_equal(read_hr(path).R, R)


def test_read_real_wannier90_file_recovers_model_values():
    # hbn_hr.dat was written by wannier90.x 3.1 (F12.6) for a model with known hoppings
    hr = read_hr(HBN / "hbn_hr.dat")
    assert hr.num_wann == 2 and hr.R.shape == (11, 3)
    r0 = int(np.flatnonzero((hr.R == 0).all(axis=1))[0])
    np.testing.assert_allclose(hr.hoppings()[r0], [[1.2, -2.7], [-2.7, -1.2]], atol=1e-6)
    # the boundary vector (2, 1, 0) has ndegen 2: the raw value is the whole B -> N third-neighbour
    # hopping (-0.2 eV, R = (-1, 1, 0) modulo the 3x3 k-grid supercell), the physical share is half of it
    r = int(np.flatnonzero((hr.R == [2, 1, 0]).all(axis=1))[0])
    assert hr.ndegen[r] == 2
    np.testing.assert_allclose(hr.H[r, 0, 1], -0.2, atol=1e-6)
    np.testing.assert_allclose(hr.hoppings()[r, 0, 1], -0.1, atol=1e-6)
    np.testing.assert_allclose(hr.H[r, 1, 0], 0.0, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "line", "words"),
    [
        ("hr_truncated_lines.dat", 15, "truncated"),
        ("hr_truncated_field.dat", 15, "7 fields"),
        ("hr_wrong_nrpts.dat", 13, "unexpected data"),
        ("hr_nonnumeric.dat", 10, "non-numeric"),
        ("hr_bad_order.dat", 6, "m runs fastest"),
        ("hr_duplicate_R.dat", 13, "duplicated R vector (0, 0, 0) (first given on line 9)"),
        ("hr_R_changes.dat", 11, "R vector changes inside its block"),
    ],
)
def test_malformed_files_name_file_and_line(name, line, words):
    path = FIX / name
    with pytest.raises(FormatError) as info:
        read_hr(path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert words in str(info.value)
    assert info.value.line == line and info.value.path == str(path)


def _edit(tmp_path: Path, lineno: int, text: str | None) -> Path:
    """two_hr.dat with line ``lineno`` (1-based) replaced by ``text`` (None: deleted)."""
    return edited_copy(FIX / "two_hr.dat", tmp_path / "edited_hr.dat", lineno, text)


@pytest.mark.parametrize(
    ("lineno", "text", "line", "words"),
    [
        (2, "two", 2, "num_wann is not an integer"),
        (3, "  0", 3, "nrpts must be positive"),
        (4, "    1    1", 5, "expected integer Wigner-Seitz degeneracies"),
        (4, "    1    1    1    1", 4, "more than nrpts=3"),
        (4, "    1    0    1", 4, "must be positive"),
        (8, "   -1    0    0    2    2    0.150000    nan", 8, "non-finite"),
        (12, "    0    0    0    2    2   -1.000000    0.000000   7", 12, "found 8"),
        (14, "    1    0.5  0    2    1    0.400000   -0.100000", 14, "must be integers"),
        (9, "", 9, "found 0"),
    ],
)
def test_more_malformed_variants(tmp_path, lineno, text, line, words):
    path = _edit(tmp_path, lineno, text)
    with pytest.raises(FormatError, match=re.escape(words)) as info:
        read_hr(path)
    assert info.value.line == line


def test_empty_and_short_files(tmp_path):
    empty = tmp_path / "empty_hr.dat"
    empty.write_text("")
    with pytest.raises(FormatError, match="empty file"):
        read_hr(empty)
    short = tmp_path / "short_hr.dat"
    short.write_text(" header\n 2\n")
    with pytest.raises(FormatError) as info:
        read_hr(short)
    assert info.value.line == 3 and "nrpts" in str(info.value)


def test_trailing_blank_lines_are_accepted(tmp_path):
    path = tmp_path / "blank_hr.dat"
    path.write_text((FIX / "two_hr.dat").read_text() + "\n  \n")
    np.testing.assert_array_equal(read_hr(path).H, H_TWO)


def test_failed_write_leaves_existing_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "keep_hr.dat"
    original = "previous content\n"
    path.write_text(original)
    calls = []

    def explode(fh, R, stored, line_format):
        fh.write("   0    0    0    1    1   partial line")
        calls.append(1)
        raise RuntimeError("disk full")

    monkeypatch.setattr(hr_module, "_write_body", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        write_hr(path, np.zeros((1, 3), int), np.ones((1, 2, 2)))
    assert calls == [1]
    assert path.read_text() == original
    assert sorted(os.listdir(tmp_path)) == ["keep_hr.dat"]  # no temporary file left behind


def test_failed_write_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(hr_module, "_write_body", lambda *a: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        write_hr(tmp_path / "new_hr.dat", np.zeros((1, 3), int), np.ones((1, 1, 1)))
    assert os.listdir(tmp_path) == []


def test_overwrite_keeps_permissions(tmp_path):
    path = tmp_path / "perm_hr.dat"
    path.write_text("old\n")
    path.chmod(0o640)
    write_hr(path, np.zeros((1, 3), int), np.ones((1, 1, 1)))
    assert (path.stat().st_mode & 0o777) == 0o640
    assert read_hr(path).H[0, 0, 0] == 1.0


@pytest.mark.parametrize(
    ("R", "H", "kwargs", "words"),
    [
        (np.zeros((2, 3), int), np.ones((2, 1, 1)), {}, "duplicated"),
        (np.zeros((1, 2), int), np.ones((1, 1, 1)), {}, "shape"),
        (np.zeros((1, 3)) + 0.5, np.ones((1, 1, 1)), {}, "integers"),
        (np.zeros((1, 3), int), np.ones((1, 2, 1)), {}, "shape"),
        (np.zeros((1, 3), int), np.full((1, 1, 1), np.nan), {}, "NaN"),
        (np.zeros((1, 3), int), np.ones((1, 1, 1)), {"ndegen": [0]}, "positive"),
        (np.zeros((1, 3), int), np.ones((1, 1, 1)), {"ndegen": [1, 1]}, "shape"),
        (np.zeros((1, 3), int), np.ones((1, 1, 1)), {"header": "two\nlines"}, "single line"),
    ],
)
def test_write_rejects_bad_input(tmp_path, R, H, kwargs, words):
    path = tmp_path / "bad_hr.dat"
    with pytest.raises(ValueError, match=words):
        write_hr(path, R, H, **kwargs)
    assert not path.exists()


def test_hrdata_validates_shapes():
    with pytest.raises(ValueError, match="shape"):
        HrData(num_wann=2, R=np.zeros((1, 3), int), ndegen=np.ones(1, int), H=np.zeros((1, 1, 1)))
    with pytest.raises(ValueError, match="positive"):
        HrData(num_wann=1, R=np.zeros((1, 3), int), ndegen=np.zeros(1, int), H=np.zeros((1, 1, 1)))
    with pytest.raises(ValueError, match="integers"):
        HrData(num_wann=1, R=np.full((1, 3), 0.5), ndegen=np.ones(1, int), H=np.zeros((1, 1, 1)))


def test_format_error_pickles():
    import pickle

    err = FormatError("a/b_hr.dat", 12, "bad")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == "a/b_hr.dat:12: bad" and back.line == 12
    assert isinstance(back, ValueError)
