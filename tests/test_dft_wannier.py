"""Wannier90 readers, Wannier interpolation and quality gate on the committed BLG run."""

from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from wander.dft.quality import band_errors, centre_offsets, evaluate_gate, wannier_eigenvalues
from wander.dft.wannier_output import (W90FormatError, assign_orbitals, load_wsvec,
                                       read_nnkp_projections, read_wout)
from wander.io import FormatError, apply_wsvec, read_band_dat, read_band_kpt, read_hr, read_wsvec

FIX = Path(__file__).parent / "fixtures" / "blg_w90"


@pytest.fixture(scope="module")
def hr():
    return read_hr(FIX / "blg_hr.dat")


@pytest.fixture(scope="module")
def ws():
    return read_wsvec(FIX / "blg_wsvec.dat")


def test_read_hr(hr):
    assert hr.num_wann == 4
    assert hr.R.shape == (83, 3)
    assert np.sum(1.0 / hr.ndegen) == pytest.approx(81)  # 9x9 Wigner-Seitz supercell
    h0 = hr.H[np.flatnonzero((hr.R == 0).all(axis=1))[0]]
    assert np.allclose(h0, h0.conj().T)


def test_physical_hoppings_hermitian_and_values(hr, ws):
    R, m, n, t = apply_wsvec(hr, ws)
    table = {(tuple(r), a, b): v for r, a, b, v in zip(R, m, n, t)}
    for (r, a, b), v in table.items():
        assert table[(tuple(-np.array(r)), b, a)] == pytest.approx(np.conj(v), abs=1e-9)
    # intralayer nearest neighbour and the dimer interlayer hopping (atoms 1 and 2)
    assert table[((0, 0, 0), 0, 1)].real == pytest.approx(-2.864, abs=2e-3)
    assert table[((0, 0, 0), 1, 2)].real == pytest.approx(0.277, abs=2e-3)
    # the sum over ws images keeps the total weight of each (m, n)
    assert t.sum() == pytest.approx((hr.H / hr.ndegen[:, None, None]).sum(), abs=1e-9)


def test_interpolation_reproduces_wannier90_bands(hr, ws):
    k, _ = read_band_kpt(FIX / "blg_band.kpt")
    _, e_w90 = read_band_dat(FIX / "blg_band.dat")
    assert e_w90.shape == (len(k), hr.num_wann)
    e = wannier_eigenvalues(hr, ws, k)
    assert np.abs(np.sort(e, axis=1) - np.sort(e_w90, axis=1)).max() < 2e-4


def test_wannier_bands_match_dft_near_fermi(hr, ws):
    data = np.loadtxt(FIX / "blg_dft_bands.txt")
    header = (FIX / "blg_dft_bands.txt").read_text().splitlines()[1]
    ef = float(header.split("=")[1].split()[0])
    k, e_dft = data[:, :3], data[:, 3:]
    errs = band_errors(e_dft, wannier_eigenvalues(hr, ws, k), ef)
    assert errs["0.5"]["max_meV"] < 10
    assert errs["1"]["max_meV"] < 20
    assert errs["1"]["count"] >= 20


def test_wout_nnkp_and_gate():
    w = read_wout(FIX / "blg.wout")
    assert w.finished and w.spreads.shape == (4,)
    assert np.all(w.spreads < 1.0)
    proj, labels = read_nnkp_projections(FIX / "blg.nnkp")
    assert labels == ["pz"] * 4
    atoms = read(FIX / "scf.in", format="espresso-in")
    host = assign_orbitals(proj, atoms.get_scaled_positions(wrap=False))
    assert host.tolist() == [0, 1, 2, 3]
    off = centre_offsets(w.centres, atoms.positions, host, atoms.cell[:])
    assert off.max() < 0.01
    errs = {"1": {"max_meV": 15.0, "mean_meV": 4.0, "count": 10}}
    ok = evaluate_gate(errs, w.spreads, off, band_tol_meV=30, band_window_eV=1.0, spread_max=2.0,
                       centre_max=0.3)
    assert ok.passed and not ok.reasons
    bad = evaluate_gate(errs, w.spreads * 10, off, band_tol_meV=10, band_window_eV=1.0,
                        spread_max=2.0, centre_max=0.3)
    assert not bad.passed and len(bad.reasons) == 2


def test_malformed_hr(tmp_path):
    p = tmp_path / "bad_hr.dat"
    lines = (FIX / "blg_hr.dat").read_text().splitlines()
    p.write_text("\n".join(lines[:40]) + "\n")
    with pytest.raises(FormatError, match="bad_hr.dat"):
        read_hr(p)


def test_load_wsvec(tmp_path):
    p = tmp_path / "empty_wsvec.dat"
    p.write_text("## header only\n\n")
    assert load_wsvec(p) is None
    full = load_wsvec(FIX / "blg_wsvec.dat")
    ref = read_wsvec(FIX / "blg_wsvec.dat")
    assert np.array_equal(full.R, ref.R) and np.array_equal(full.m, ref.m)
    assert all(np.array_equal(a, b) for a, b in zip(full.shifts, ref.shifts))


def test_wout_without_final_state(tmp_path):
    p = tmp_path / "x.wout"
    p.write_text("Wannier90\n")
    with pytest.raises(W90FormatError, match="Final State"):
        read_wout(p)
    assert issubclass(W90FormatError, FormatError)
