"""pw.x / Wannier90 input writers and presets."""

from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from wander.dft.presets import Preset, get_preset, kgrid_for_cell
from wander.dft.qe_input import format_pw_input, kgrid_full
from wander.dft.wannier_input import count_wann, format_win, orbitals_per_atom
from wander.dft.sampler import build_bilayer

FIX = Path(__file__).parent / "fixtures"


def test_kgrid_full_order():
    k = kgrid_full(3, 2)
    assert k.shape == (6, 3)
    assert np.allclose(k[:3], [[0, 0, 0], [0, 0.5, 0], [1 / 3, 0, 0]])
    with pytest.raises(ValueError):
        kgrid_full(0, 2)


def test_pw_inputs_roundtrip_with_ase(tmp_path):
    p = get_preset("graphene")
    atoms = build_bilayer("graphene", shift=(1 / 3, 1 / 3), distance=3.35)
    text = format_pw_input(atoms, p.pw, "scf", prefix="x")
    assert "tprnfor = .true." in text and "vdw_corr = 'dft-d3'" in text
    assert "K_POINTS automatic\n  9 9 1 0 0 0" in text
    nscf = format_pw_input(atoms, p.pw, "nscf", kpoints=kgrid_full(9, 9), nbnd=40)
    assert "nosym = .true." in nscf and "nbnd = 40" in nscf and "\n  81\n" in nscf
    assert "conv_thr = 1d-06" in nscf
    src = tmp_path / "scf.in"
    src.write_text(text)
    back = read(src, format="espresso-in")
    assert np.allclose(back.positions, atoms.positions, atol=1e-8)
    assert np.allclose(back.cell[:], atoms.cell[:], atol=1e-8)


def test_pw_input_errors():
    p = get_preset("graphene")
    atoms = build_bilayer("mos2")
    with pytest.raises(ValueError, match="pseudopotential"):
        format_pw_input(atoms, p.pw, "scf")
    with pytest.raises(ValueError, match="calculation"):
        format_pw_input(build_bilayer("graphene"), p.pw, "relax")


def test_win_matches_fixture_settings():
    p = get_preset("graphene")
    atoms = read(FIX / "blg_w90" / "scf.in", format="espresso-in")
    text = format_win(atoms, p.wannier, kgrid_full(9, 9), num_bands=40, fermi_energy=-0.4365)
    ref = (FIX / "blg_w90" / "blg.win").read_text()
    for key in ("num_wann = 4", "num_bands = 40", "dis_win_min = -10.036500", "num_iter = 0",
                "use_ws_distance = true", "guiding_centres = true", "C:pz", "mp_grid = 9 9 1"):
        assert key in text and key in ref
    # the production frozen window keeps the sigma bands at Gamma (about E_F - 3 eV) out
    assert "dis_froz_min = -2.936500" in text and "dis_froz_max = 2.363500" in text
    with pytest.raises(ValueError, match="num_bands"):
        format_win(atoms, p.wannier, kgrid_full(9, 9), num_bands=2, fermi_energy=0.0)
    with pytest.raises(ValueError, match="mp_grid"):
        format_win(atoms, p.wannier, kgrid_full(3, 3), num_bands=40, fermi_energy=0.0)


def test_orbital_counts():
    assert orbitals_per_atom("d") == 5 and orbitals_per_atom("s;p") == 4
    with pytest.raises(ValueError):
        orbitals_per_atom("f7")
    mos2 = get_preset("mos2")
    assert count_wann(build_bilayer("mos2"), mos2.wannier) == 22


def test_kgrid_for_cell_and_preset_roundtrip():
    g = get_preset("graphene")
    assert kgrid_for_cell(build_bilayer("graphene").cell[:], g.k_spacing) == (9, 9, 1)
    assert kgrid_for_cell(build_bilayer("graphene", supercell="sqrt3").cell[:], g.k_spacing) == (6, 6, 1)
    m = get_preset("mos2")
    assert kgrid_for_cell(build_bilayer("mos2").cell[:], m.k_spacing) == (9, 9, 1)
    back = Preset.from_dict(g.to_dict())
    assert back.to_dict() == g.to_dict()
    # a separate, denser SCF grid (the graphene default) survives the round trip; without it the
    # SCF uses the Wannier grid, also for config.json files written before the field existed
    cell = build_bilayer("graphene").cell[:]
    assert g.scf_kgrid(cell) == (18, 18, 1)
    g.scf_k_spacing = None
    assert g.scf_kgrid(cell) == (9, 9, 1)
    g.scf_k_spacing = 0.165
    assert Preset.from_dict(g.to_dict()).scf_kgrid(cell) == (18, 18, 1)
    old = g.to_dict()
    del old["scf_k_spacing"]
    assert Preset.from_dict(old).scf_k_spacing is None
    with pytest.raises(ValueError):
        get_preset("unobtainium")
