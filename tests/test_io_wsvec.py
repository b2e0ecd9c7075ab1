"""Tests of the seedname_wsvec.dat reader and of apply_wsvec (wander.io.wsvec)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from fixtures.io.helpers import edited_copy
from wander.io import FormatError, HrData, WsvecData, apply_wsvec, read_band_dat, read_band_kpt, read_hr, read_wsvec

FIX = Path(__file__).parent / "fixtures" / "io"
HBN = FIX / "w90_hbn"
BLG = Path(__file__).parent / "fixtures" / "blg_w90"


def _as_dict(R, i, j, t) -> dict[tuple, complex]:
    return {(tuple(r), int(a), int(b)): complex(v) for r, a, b, v in zip(R.tolist(), i, j, t)}


def _bands(kpts: np.ndarray, nw: int, R, i, j, t) -> np.ndarray:
    """Eigenvalues of H(k) = sum exp(2 pi i k.R) t at fractional k-points."""
    Hk = np.zeros((len(kpts), nw, nw), dtype=complex)
    np.add.at(Hk, (slice(None), i, j), np.exp(2j * np.pi * kpts @ R.T) * t)
    return np.linalg.eigvalsh(Hk)


def test_read_hand_made_wsvec():
    ws = read_wsvec(FIX / "two_wsvec.dat")
    assert ws.use_ws_distance is True
    assert ws.R.shape == (12, 3) and len(ws.shifts) == 12
    # Wannier90 order: R, then m, then n with n running fastest; indices 0-based
    np.testing.assert_array_equal(ws.m[:4], [0, 0, 1, 1])
    np.testing.assert_array_equal(ws.n[:4], [0, 1, 0, 1])
    np.testing.assert_array_equal(ws.R[4], [0, 0, 0])
    np.testing.assert_array_equal(ws.shifts[2], [[0, 0, 0], [2, 0, 0]])
    np.testing.assert_array_equal(ws.shifts[9], [[0, 0, 0], [-2, 0, 0]])
    assert all(s.shape == (1, 3) and not s.any() for k, s in enumerate(ws.shifts) if k not in (2, 9))


def test_apply_wsvec_splits_and_moves_hoppings():
    hr = read_hr(FIX / "two_hr.dat")
    got = _as_dict(*apply_wsvec(hr, read_wsvec(FIX / "two_wsvec.dat")))
    expected = {
        ((-1, 0, 0), 0, 0): 0.1,
        ((-1, 0, 0), 0, 1): 0.4 + 0.1j + (0.1 + 0.15j),  # own value + half of H_12(+1) moved by T = -2
        ((-1, 0, 0), 1, 0): 0.1 - 0.15j,  # half of H_21(-1) stays
        ((-1, 0, 0), 1, 1): 0.15,
        ((0, 0, 0), 0, 0): 1.0,
        ((0, 0, 0), 0, 1): 0.5 - 0.25j,
        ((0, 0, 0), 1, 0): 0.5 + 0.25j,
        ((0, 0, 0), 1, 1): -1.0,
        ((1, 0, 0), 0, 0): 0.1,
        ((1, 0, 0), 0, 1): 0.1 + 0.15j,
        ((1, 0, 0), 1, 0): 0.4 - 0.1j + (0.1 - 0.15j),  # own value + half of H_21(-1) moved by T = +2
        ((1, 0, 0), 1, 1): 0.15,
    }
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    # the result stays Hermitian: t_ij(R) = conj(t_ji(-R))
    for (R, i, j), value in got.items():
        assert got[(tuple(-x for x in R), j, i)] == pytest.approx(np.conj(value), abs=1e-12)


def test_apply_wsvec_without_shifts_and_weights():
    hr = HrData(
        num_wann=1,
        R=np.array([[-1, 0, 0], [0, 0, 0], [1, 0, 0]]),
        ndegen=np.array([2, 1, 2]),
        H=np.array([[[-2.0]], [[0.0]], [[-2.0]]]),
    )
    R, i, j, t = apply_wsvec(hr, None)
    np.testing.assert_array_equal(R, [[-1, 0, 0], [1, 0, 0]])  # exact zero dropped
    np.testing.assert_array_equal(t, [-1.0, -1.0])  # weights applied
    assert R.dtype == np.int64 and i.dtype == np.int64 and t.dtype == np.complex128
    # with two shifts each, a hopping is divided by ndegen and by nT
    ws = WsvecData(
        R=hr.R.copy(),
        m=np.zeros(3, int),
        n=np.zeros(3, int),
        shifts=[np.array([[0, 0, 0], [2, 0, 0]]), np.zeros((1, 3), int), np.array([[0, 0, 0], [-2, 0, 0]])],
    )
    got = _as_dict(*apply_wsvec(hr, ws))
    assert got == {((-1, 0, 0), 0, 0): -1.0, ((1, 0, 0), 0, 0): -1.0}  # -0.5 from each side lands on +-1


def test_wsvec_sign_convention_on_real_wannier90_run():
    """hbn_*: wannier90.x 3.1 output for a model whose hoppings are known exactly.

    Only R + T (not R - T, not R alone) reproduces both the model hoppings and the
    bands Wannier90 itself interpolated with use_ws_distance = true.
    """
    hr = read_hr(HBN / "hbn_hr.dat")
    ws = read_wsvec(HBN / "hbn_wsvec.dat")
    R, i, j, t = apply_wsvec(hr, ws)
    keep = np.abs(t) > 1e-5  # zeros printed as +-0.000000
    got = _as_dict(R[keep], i[keep], j[keep], t[keep])
    model = np.loadtxt(HBN / "model_hoppings.txt")
    expected = {(tuple(int(x) for x in row[:3]), int(row[3]), int(row[4])): row[5] + 1j * row[6] for row in model}
    assert got.keys() == expected.keys()
    assert max(abs(got[k] - expected[k]) for k in expected) < 2e-6

    kpts, _ = read_band_kpt(HBN / "hbn_band.kpt")
    _, energies = read_band_dat(HBN / "hbn_band.dat")
    assert np.max(np.abs(_bands(kpts, 2, R, i, j, t) - energies)) < 1e-4
    assert np.max(np.abs(_bands(kpts, 2, *apply_wsvec(hr, None)) - energies)) > 0.05
    flipped = WsvecData(R=ws.R, m=ws.m, n=ws.n, shifts=[-s for s in ws.shifts])
    assert np.max(np.abs(_bands(kpts, 2, *apply_wsvec(hr, flipped)) - energies)) > 0.05


@pytest.mark.skipif(not (BLG / "blg_hr.dat").exists(), reason="bilayer-graphene Wannier90 fixture absent")
def test_bilayer_graphene_dft_run_bands():
    hr = read_hr(BLG / "blg_hr.dat")
    ws = read_wsvec(BLG / "blg_wsvec.dat")
    kpts, weights = read_band_kpt(BLG / "blg_band.kpt")
    _, energies = read_band_dat(BLG / "blg_band.dat")
    assert energies.shape == (len(kpts), hr.num_wann)
    assert np.max(np.abs(_bands(kpts, hr.num_wann, *apply_wsvec(hr, ws)) - energies)) < 1e-4


@pytest.mark.parametrize(
    ("name", "line", "words"),
    [
        ("wsvec_truncated.dat", 33, "truncated"),
        ("wsvec_noninteger.dat", 4, "integers only"),
    ],
)
def test_malformed_wsvec_fixtures(name, line, words):
    with pytest.raises(FormatError, match=re.escape(words)) as info:
        read_wsvec(FIX / name)
    assert info.value.line == line
    assert str(info.value).startswith(f"{FIX / name}:{line}: ")


def _edit(tmp_path: Path, lineno: int, text: str | None) -> Path:
    """two_wsvec.dat with line ``lineno`` (1-based) replaced by ``text`` (None: deleted)."""
    return edited_copy(FIX / "two_wsvec.dat", tmp_path / "edited_wsvec.dat", lineno, text)


@pytest.mark.parametrize(
    ("lineno", "text", "line", "words"),
    [
        (9, "    3", 12, "expected a shift"),  # announces 3 shifts, the 3rd line is the next entry
        (9, "    0", 9, "positive integer"),
        (8, "   -1    0    0    2", 8, "entry line"),
        (10, "    0    0", 10, "expected a shift"),
        (6, "    x", 6, "non-numeric"),
        (12, "   -1    0    0    2    1", 12, "given twice (first on line 8)"),
        (15, "    0    0    0    0    1", 15, ">= 1"),
        (20, "", 20, "blank line"),
    ],
)
def test_more_malformed_wsvec(tmp_path, lineno, text, line, words):
    with pytest.raises(FormatError, match=re.escape(words)) as info:
        read_wsvec(_edit(tmp_path, lineno, text))
    assert info.value.line == line


def test_wsvec_header_flag_and_empty(tmp_path):
    path = _edit(tmp_path, 1, "## written on x with use_ws_distance=.false.")
    assert read_wsvec(path).use_ws_distance is False
    path = _edit(tmp_path, 1, "## no flag here")
    assert read_wsvec(path).use_ws_distance is None
    empty = tmp_path / "empty_wsvec.dat"
    empty.write_text("## header only\n")
    with pytest.raises(FormatError, match="no entries"):
        read_wsvec(empty)


def test_apply_wsvec_rejects_mismatched_files():
    hr = read_hr(FIX / "two_hr.dat")
    ws = read_wsvec(FIX / "two_wsvec.dat")
    short = WsvecData(R=ws.R[:-1], m=ws.m[:-1], n=ws.n[:-1], shifts=ws.shifts[:-1])
    with pytest.raises(ValueError, match="12 entries|11 entries"):
        apply_wsvec(hr, short)
    moved = WsvecData(R=ws.R + [0, 0, 5], m=ws.m, n=ws.n, shifts=ws.shifts)
    with pytest.raises(ValueError, match="not an R vector"):
        apply_wsvec(hr, moved)
    twice = WsvecData(R=ws.R, m=np.zeros_like(ws.m), n=ws.n, shifts=ws.shifts)
    with pytest.raises(ValueError, match="more than once"):
        apply_wsvec(hr, twice)
    big = WsvecData(R=ws.R, m=ws.m + 1, n=ws.n, shifts=ws.shifts)
    with pytest.raises(ValueError, match="beyond num_wann"):
        apply_wsvec(hr, big)
