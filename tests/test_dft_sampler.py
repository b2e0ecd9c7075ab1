"""Configuration sampler: determinism, registry coverage, distance and strain ranges."""

import numpy as np
import pytest

from wander.dft.sampler import LAYERS, NAMED_SHIFTS, build_bilayer, sample_configurations


def test_deterministic_given_seed():
    a = sample_configurations("graphene", 30, seed=7)
    b = sample_configurations("graphene", 30, seed=7)
    c = sample_configurations("graphene", 30, seed=8)
    assert [x.name for x in a] == [x.name for x in b]
    for x, y in zip(a, b):
        assert np.array_equal(x.atoms.positions, y.atoms.positions)
        assert x.params == y.params
    assert any(not np.array_equal(x.atoms.positions, y.atoms.positions) for x, y in zip(a[5:], c[5:]))


def test_named_registries_first_and_exact():
    confs = sample_configurations("graphene", 10, seed=0)
    regs = [c.params["registry"] for c in confs[:3]]
    assert regs == ["AA", "AB", "SP"]
    ab = confs[1].atoms
    top = ab.positions[ab.arrays["layer"] == 1]
    bot = ab.positions[ab.arrays["layer"] == 0]
    # AB: one top atom exactly above a bottom atom, the other above a hexagon centre
    dxy = np.linalg.norm(top[:, None, :2] - bot[None, :, :2], axis=2)
    assert np.sort(dxy.min(axis=1))[0] < 1e-9
    assert confs[3].params["kind"] == "monolayer" and len(confs[3].atoms) == 2


def test_registry_and_distance_coverage():
    confs = sample_configurations("graphene", 150, seed=1)
    bil = [c for c in confs if c.params["kind"] == "bilayer"]
    shifts = np.array([c.params["shift"] for c in bil if c.params["registry"] is None])
    hist, _, _ = np.histogram2d(shifts[:, 0], shifts[:, 1], bins=3, range=[[0, 1], [0, 1]])
    assert hist.min() > 0  # every ninth of the registry cell is visited
    d = np.array([c.params["distance"] for c in bil])
    lo, hi = LAYERS["graphene"].distance_range
    assert d.min() >= lo and d.max() <= hi and d.max() - d.min() > 0.8 * (hi - lo)
    # the measured interlayer distance equals the sampled one for unrattled frames
    for c in bil:
        if c.params["rattle"] == 0 and not c.params["twist_deg"]:
            z = c.atoms.positions[:, 2]
            lay = c.atoms.arrays["layer"]
            assert z[lay == 1].mean() - z[lay == 0].mean() == pytest.approx(c.params["distance"])
    strains = np.array([c.params["strain"] for c in confs])
    assert np.abs(strains).max() <= 0.03
    kinds = {c.params["supercell"] for c in confs}
    assert {"1x1", "sqrt3"} <= kinds
    assert sum(c.params["kind"] == "monolayer" for c in confs) >= 5


def test_frames_follow_conventions():
    for c in sample_configurations("mos2", 12, seed=3):
        a = c.atoms
        assert tuple(a.pbc) == (True, True, False)
        assert np.allclose(a.cell[:2, 2], 0) and np.allclose(a.cell[2, :2], 0)
        assert abs(a.positions[:, 2].max() + a.positions[:, 2].min()) < 1e-9
        assert set(np.unique(a.arrays["layer"])) <= {0, 1}
        assert c.params["min_distance"] > 1.5
        frac = a.get_scaled_positions(wrap=False)
        assert frac[:, :2].min() >= 0 and frac[:, :2].max() < 1


def test_mos2_2h_stacking():
    a = build_bilayer("mos2", shift=NAMED_SHIFTS["AB"], orientation="H", distance=3.0)
    mo = a.positions[np.array(a.get_chemical_symbols()) == "Mo"]
    assert mo[1, 2] - mo[0, 2] == pytest.approx(3.0 + 3.13)
    assert len(a) == 6


def test_supercell_sizes():
    assert len(build_bilayer("graphene", supercell="sqrt3")) == 12
    assert len(build_bilayer("graphene", supercell="2x2")) == 16


@pytest.mark.parametrize("kw", [dict(material="xx"), dict(material="graphene", supercell="3x3"),
                                dict(material="graphene", distance=0.5),
                                dict(material="graphene", orientation="Q"),
                                dict(material="graphene", strain=np.array([[0, 0.1], [0, 0]]))])
def test_bad_input(kw):
    with pytest.raises(ValueError):
        build_bilayer(**kw)


def test_bad_n():
    with pytest.raises(ValueError):
        sample_configurations("graphene", 0)


def test_registry_scan_grid():
    from wander.dft.sampler import SCAN_SHIFTS, registry_scan

    confs = registry_scan("graphene", [3.45, 3.25])
    assert len(confs) == 2 * len(SCAN_SHIFTS)
    assert [c.name for c in confs] == [f"blgscan_{i:04d}" for i in range(len(confs))]
    # distance is the outer loop, in the order given
    assert [c.params["distance"] for c in confs[:len(SCAN_SHIFTS)]] == [3.45] * len(SCAN_SHIFTS)
    regs = [c.params["registry"] for c in confs[:len(SCAN_SHIFTS)]]
    assert regs.count("AA") == 1 and regs.count("AB") == 1 and regs.count("SP") == 1
    for c in confs:
        a = c.atoms
        assert c.params["scan"] and c.params["rattle"] == 0 and len(a) == 4
        assert np.allclose(a.cell[:2, :2], build_bilayer("graphene").cell[:2, :2])
        z = a.positions[:, 2]
        top = a.arrays["layer"] == 1
        assert np.isclose(z[top].mean() - z[~top].mean(), c.params["distance"])
        # the top layer is the bottom one shifted by the requested fraction of the primitive cell
        shift = np.asarray(c.params["shift"]) @ a.cell[:2, :2]
        bot = a.positions[~top, :2]
        moved = (bot + shift)[:, None, :] - a.positions[top][None, :, :2]
        frac = np.linalg.solve(a.cell[:2, :2].T, moved.reshape(-1, 2).T).T
        assert np.isclose(np.abs(frac - np.round(frac)).max(axis=1).reshape(2, 2).min(axis=1), 0).all()
    # (1/2, 1/2) is one of the three equivalent saddle points
    assert confs[5].params["registry"] == "SP" and np.allclose(confs[5].params["shift"], [0.5, 0.5])


def test_registry_scan_mos2_orientations_and_errors():
    from wander.dft.sampler import SCAN_SHIFTS, registry_scan

    confs = registry_scan("mos2", [3.0])
    assert len(confs) == 2 * len(SCAN_SHIFTS)
    assert {c.params["orientation"] for c in confs} == {"H", "R"}
    assert all(c.name.startswith("mos2scan_") for c in confs)
    with pytest.raises(ValueError, match="at least one distance"):
        registry_scan("graphene", [])
    with pytest.raises(ValueError, match="unknown material"):
        registry_scan("hbn", [3.3])


def test_registry_scan_extension_continues_names():
    from wander.dft.sampler import NAMED_SHIFTS, registry_scan

    confs = registry_scan("graphene", [5.0, 7.0], shifts=[NAMED_SHIFTS["AA"], NAMED_SHIFTS["AB"]], first_index=24)
    assert [c.name for c in confs] == ["blgscan_0024", "blgscan_0025", "blgscan_0026", "blgscan_0027"]
    assert [c.params["registry"] for c in confs] == ["AA", "AB", "AA", "AB"]
    assert [c.params["index"] for c in confs] == [24, 25, 26, 27]
    top = confs[3].atoms.arrays["layer"] == 1
    z = confs[3].atoms.positions[:, 2]
    assert np.isclose(z[top].mean() - z[~top].mean(), 7.0)
    with pytest.raises(ValueError, match="first_index"):
        registry_scan("graphene", [5.0], first_index=-1)
    with pytest.raises(ValueError, match="at least one is needed"):
        registry_scan("graphene", [5.0], shifts=[])


def test_scan_cli_shifts_and_name_clash(tmp_path, capsys):
    import json

    from wander.cli.main import main

    root = tmp_path / "scan"
    assert main(["dft", "scan", "--material", "graphene", "--distances", "6", "--shifts", "AA", "0.25,0",
                 "--first-index", "3", "--root", str(root)]) == 0
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["blgscan_0003", "blgscan_0004"]
    params = json.loads((root / "blgscan_0004" / "config.json").read_text())["params"]
    assert params["shift"] == [0.25, 0.0] and params["distance"] == 6.0
    assert "--shifts AA 0.25,0 --first-index 3" in json.loads((root / "sample.json").read_text())["command"]
    # the same scan again keeps its folders; another one under the same names is refused
    assert main(["dft", "scan", "--material", "graphene", "--distances", "6", "--shifts", "AA", "0.25,0",
                 "--first-index", "3", "--root", str(root)]) == 0
    assert main(["dft", "scan", "--material", "graphene", "--distances", "7", "--shifts", "AA",
                 "--first-index", "3", "--root", str(root)]) == 2
    assert "already has blgscan_0003" in capsys.readouterr().err
    assert main(["dft", "scan", "--material", "graphene", "--distances", "7", "--shifts", "XY",
                 "--root", str(root)]) == 2
    assert "give a name" in capsys.readouterr().err
