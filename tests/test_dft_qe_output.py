"""pw.x output parser on committed QE 6.7 outputs (AB bilayer graphene)."""

from pathlib import Path

import numpy as np
import pytest

from wander.dft.qe_output import PWOutputError, read_pw_output
from wander.io import read_band_kpt

FIX = Path(__file__).parent / "fixtures"


def test_scf_output():
    out = read_pw_output(FIX / "qe" / "blg_scf.out")
    assert out.version.startswith("6.7")
    assert out.calculation == "scf"
    assert out.converged and out.job_done
    assert out.n_scf_iterations == 28
    assert out.nat == 4 and out.nelec == 16.0 and out.nbnd == 12
    # -73.79095044 Ry
    assert out.energy == pytest.approx(-73.79095044 * 13.605693122994, abs=1e-5)
    assert out.fermi_energy == pytest.approx(-0.4365)
    assert out.forces.shape == (4, 3)
    # Ry/bohr -> eV/A; total force on atom 1 along z is -0.00146716 Ry/bohr
    assert out.forces[0, 2] == pytest.approx(-0.00146716 * 13.605693122994 / 0.52917721067, rel=1e-6)
    assert np.abs(out.forces.sum(axis=0)).max() < 1e-6
    assert out.stress.shape == (3, 3)
    assert np.allclose(out.stress, out.stress.T)
    # QE prints +0.00006353 Ry/bohr^3 (compressive); ASE sign is the opposite
    assert out.stress[0, 0] < 0
    assert out.eigenvalues.shape == (12, 12)
    assert out.kpoints_frac.shape == (12, 3)
    assert out.eigenvalues[0, 0] == pytest.approx(-20.1015)


def test_bands_output_matches_w90_kpoints():
    out = read_pw_output(FIX / "qe" / "blg_bands.out")
    assert out.calculation == "nscf"
    assert out.energy is None and out.forces is None
    assert out.eigenvalues.shape == (56, 16)
    k, _ = read_band_kpt(FIX / "blg_w90" / "blg_band.kpt")
    assert np.allclose(out.kpoints_frac, k, atol=1e-6)
    assert out.unconverged_eigenvalue_warnings > 0  # the top bands; recorded, not fatal


def test_not_pw_output(tmp_path):
    p = tmp_path / "x.out"
    p.write_text("hello\n")
    with pytest.raises(PWOutputError, match=r"x.out:1"):
        read_pw_output(p)


def test_truncated_forces(tmp_path):
    lines = (FIX / "qe" / "blg_scf.out").read_text().splitlines()
    cut = next(i for i, ln in enumerate(lines) if "Forces acting" in ln)
    p = tmp_path / "cut.out"
    p.write_text("\n".join(lines[: cut + 3]) + "\n")
    with pytest.raises(PWOutputError, match="expected 4 forces"):
        read_pw_output(p)


def test_unconverged_scf_is_reported(tmp_path):
    text = (FIX / "qe" / "blg_scf.out").read_text()
    text = text.replace("convergence has been achieved in  28 iterations",
                        "convergence NOT achieved after  28 iterations: stopping")
    p = tmp_path / "nc.out"
    p.write_text(text)
    assert not read_pw_output(p).converged
