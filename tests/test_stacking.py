"""Stacking physics checks (GSFE, binding curve, lattice constant, scan comparison) on an analytic potential."""

import numpy as np
import pytest
from fixtures.ff.reference_potential import LJ, MORSE, BilayerPairPotential

from wander.dft.sampler import registry_scan
from wander.sim.stacking import monolayer_lattice_constant, scan_comparison, stacking_report


def test_monolayer_lattice_constant_is_the_morse_bond():
    # nearest-neighbour Morse: the energy minimum is at bond length r0, a = sqrt(3) r0
    a0 = monolayer_lattice_constant(BilayerPairPotential())
    assert a0 == pytest.approx(np.sqrt(3) * MORSE["r0"], abs=2e-4)


def test_gsfe_ordering_and_binding_minimum():
    rep = stacking_report(BilayerPairPotential(), distance=3.4)
    # Lennard-Jones: atoms on top of each other (AA) repel most, SP is in between
    assert rep.gsfe_meV["AA"] > rep.gsfe_meV["SP"] > 0 and rep.ordering_ok
    assert min(rep.binding_meV) == 0.0 and rep.d_min in rep.binding_distances
    # the AB minimum sits near the LJ pair minimum 2^(1/6) sigma, pulled in by the many farther pairs
    assert 3.0 < rep.d_min < 2 ** (1 / 6) * LJ["sigma"]
    assert "ordering AA > SP > AB              yes" in rep.table()
    assert set(rep.as_dict()) >= {"gsfe_meV", "d_min", "a0", "ordering_ok"}


class _Inverted(BilayerPairPotential):
    """The pair potential with its interlayer part flipped in sign: AA becomes the most stable."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        from ase.calculators.calculator import all_changes

        super().calculate(atoms, properties, system_changes or all_changes)
        mono = self.atoms.copy()
        top = mono.arrays["layer"] == 1
        e_intra = 0.0
        for sel in (top, ~top):
            part = mono[sel]
            part.calc = BilayerPairPotential()
            e_intra += part.get_potential_energy()
        self.results["energy"] = 2 * e_intra - self.results["energy"]
        self.results["free_energy"] = self.results["energy"]


def test_ordering_flag_catches_a_wrong_landscape():
    rep = stacking_report(_Inverted(), distance=3.4, distances=np.linspace(3.2, 3.6, 5))
    assert rep.gsfe_meV["AA"] < 0 and not rep.ordering_ok
    assert "NO" in rep.table()


def _labelled_scan(calc, distances):
    """Registry-scan frames labelled by ``calc``, with their metadata, as a dataset would hold them."""
    frames, meta = [], {}
    for c in registry_scan("graphene", distances):
        a = c.atoms.copy()
        a.calc = calc
        a.get_forces()
        a.info["config"] = c.name
        meta[c.name] = {"params": c.params}
        frames.append(a)
    return frames, meta


def test_scan_comparison_against_labelled_frames():
    ref = BilayerPairPotential()
    frames, meta = _labelled_scan(ref, [3.3, 3.6])
    rows = scan_comparison(ref, frames, meta)
    assert len(rows) == len(frames)
    for r in rows:
        assert r["model_meV"] == pytest.approx(r["dft_meV"], abs=1e-9)
        assert r["model_layer_force_meV_A"] == pytest.approx(r["dft_layer_force_meV_A"], abs=1e-9)
    aa = [r for r in rows if np.allclose(r["shift"], 0) and r["distance"] == 3.3][0]
    ab = [r for r in rows if np.allclose(r["shift"], 1 / 3) and r["distance"] == 3.3][0]
    assert aa["dft_meV"] > 0 and ab["dft_meV"] == 0
    # AA and AB are symmetric points: no in-plane force on the layer; between them there is one
    mid = [r for r in rows if np.allclose(r["shift"], 1 / 6) and r["distance"] == 3.3][0]
    assert aa["dft_layer_force_meV_A"] < 1e-6 and mid["dft_layer_force_meV_A"] > 1e-3
    # a model with the wrong landscape shows up against the same frames
    bad = scan_comparison(_Inverted(), frames, meta)
    assert [r for r in bad if np.allclose(r["shift"], 0) and r["distance"] == 3.3][0]["model_meV"] < 0
    # frames without scan parameters are ignored
    assert scan_comparison(ref, frames, {}) == []


def test_gsfe_path_and_plot(tmp_path):
    from wander.sim.stacking import gsfe_path, plot_stacking

    ref = BilayerPairPotential()
    s, e = gsfe_path(ref, "graphene", 3.4, npoints=7)
    assert s[0] == 0 and s[-1] == 0.5
    rep = stacking_report(ref, distance=3.4, distances=[3.4])
    assert e[0] == pytest.approx(rep.gsfe_meV["AA"]) and e[-1] == pytest.approx(rep.gsfe_meV["SP"])
    assert e.argmin() == 4 and e[4] == pytest.approx(0.0, abs=1e-9)  # s = 4/12 is AB
    frames, meta = _labelled_scan(ref, [3.4])
    plot_stacking(ref, "graphene", scan_comparison(ref, frames, meta), tmp_path / "gsfe.png")
    assert (tmp_path / "gsfe.png").stat().st_size > 10_000
