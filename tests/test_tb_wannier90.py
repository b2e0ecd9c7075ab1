"""TBHamiltonian from Wannier90 files: bands equal Wannier90's own interpolation; hr round trip."""

from pathlib import Path

import numpy as np
import pytest

from wander.io import read_band_dat, read_band_kpt
from wander.tb import TBHamiltonian, band_windows, fermi_level
from wander.tb.dos import grid_eigenvalues

BLG = Path(__file__).parent / "fixtures" / "blg_w90"


@pytest.fixture(scope="module")
def blg():
    return TBHamiltonian.from_wannier90(
        BLG / "blg_hr.dat", BLG / "blg.win", BLG / "blg_centres.xyz", BLG / "blg_wsvec.dat"
    )


def test_metadata(blg):
    assert blg.n_orbitals == 4
    assert blg.pbc == (True, True, False)  # mp_grid 9 9 1
    assert list(blg.orbital_labels) == ["pz"] * 4
    assert np.allclose(blg.cell[0], [2.46, 0, 0], atol=1e-4)
    # centres sit on the atoms (within 0.01 A)
    assert np.abs(blg.orbital_positions[:, 2]).max() == pytest.approx(1.675, abs=0.01)


def test_bands_equal_wannier90_interpolation(blg):
    kpts, _ = read_band_kpt(BLG / "blg_band.kpt")
    _, ref = read_band_dat(BLG / "blg_band.dat")  # (nk, 4) bands interpolated by Wannier90
    ours = band_windows(blg, kpts).energies
    # hr.dat stores H(R) with 6 decimals: the rounding of a few hundred elements adds up to a
    # few 1e-5 eV. Without the wsvec replica shifts the error is 1e-2 eV (checked below).
    assert np.abs(ours - ref).max() < 1e-4
    plain = TBHamiltonian.from_wannier90(BLG / "blg_hr.dat", BLG / "blg.win", BLG / "blg_centres.xyz")
    assert np.abs(band_windows(plain, kpts).energies - ref).max() > 1e-3


def test_both_gauges_same_bands(blg):
    kpts = np.array([[0.1, 0.2, 0.0], [1 / 3, 1 / 3, 0.0], [0.45, -0.1, 0.0]])
    lat = band_windows(blg, kpts, gauge="lattice").energies
    pos = band_windows(blg, kpts, gauge="position").energies
    assert np.abs(lat - pos).max() < 1e-12


def test_half_filling_near_dft_fermi_level(blg):
    # 4 pz electrons: E_F at the Dirac point; the SCF Fermi level of the DFT run is -0.4365 eV
    eig, w = grid_eigenvalues(blg, (18, 18, 1))
    assert fermi_level(eig, 4, w) == pytest.approx(-0.4365, abs=0.05)


def test_hr_round_trip_is_exact(blg, tmp_path):
    path = tmp_path / "rt_hr.dat"
    blg.to_hr(path)
    back = TBHamiltonian.from_wannier90(path, BLG / "blg.win", BLG / "blg_centres.xyz")
    assert np.array_equal(back.R, blg.R) and np.array_equal(back.i, blg.i) and np.array_equal(back.j, blg.j)
    assert np.abs(back.t - blg.t).max() == 0.0
    assert np.allclose(back.orbital_positions, blg.orbital_positions)


def test_needs_win(tmp_path):
    with pytest.raises(ValueError, match="win"):
        TBHamiltonian.from_wannier90(BLG / "blg_hr.dat")
