"""End-to-end DFT + Wannier90 run at reduced settings (graphene monolayer, a few minutes at most).

Runs only where pw.x, pw2wannier90.x and wannier90.x are installed::

    python3 -m pytest -m dft tests/test_dft_smoke.py
"""

import shutil

import numpy as np
import pytest
from ase.io import read

from wander.dft.dataset import append_configuration, load_hamiltonians
from wander.dft.pipeline import Launcher, run_configuration, write_configuration
from wander.dft.presets import get_preset
from wander.dft.sampler import build_bilayer

pytestmark = [
    pytest.mark.dft,
    pytest.mark.skipif(any(shutil.which(x) is None for x in ("pw.x", "pw2wannier90.x", "wannier90.x")),
                       reason="Quantum ESPRESSO / Wannier90 not installed"),
]


def test_monolayer_graphene_end_to_end(tmp_path):
    atoms = build_bilayer("graphene", monolayer=True)
    atoms.cell[2, 2] = 12.0
    preset = get_preset("graphene")
    preset.pw.ecutwfc, preset.pw.ecutrho = 25.0, 200.0
    preset.pw.conv_thr = 1e-7
    preset.k_spacing = 0.5  # 6x6
    preset.wannier.nbnd_per_atom = 8
    preset.band_tol_meV, preset.spread_max, preset.centre_max = 300.0, 5.0, 0.5
    d = write_configuration(tmp_path / "mono", atoms, {"kind": "monolayer"}, preset)
    launcher = Launcher(mpi="", npool=1, nice=0)
    st = run_configuration(d, launcher)
    assert st["state"] == "done", st
    assert append_configuration(tmp_path / "ds", d)
    frame = read(tmp_path / "ds" / "frames.extxyz")
    assert np.abs(frame.get_forces()).max() < 0.05  # symmetric structure
    h = load_hamiltonians(tmp_path / "ds")
    assert h["orb_label"].tolist() == ["pz", "pz"]
    # nearest-neighbour pz-pz hopping of graphene is about -2.7 to -2.9 eV
    assert np.min(h["block_values"]) < -2.5
