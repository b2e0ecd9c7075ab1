"""Dataset assembly (extxyz + H(R) blocks + DeePMD npy) from a committed BLG run."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase.io import read, write

from wander.dft.dataset import (append_configuration, collected_names, load_hamiltonians, split_of,
                                summary_markdown)
from wander.dft.deepmd_npy import write_deepmd_system
from wander.dft.presets import get_preset
from wander.dft.qe_output import read_pw_output
from wander.io import apply_wsvec, read_hr, read_wsvec

FIX = Path(__file__).parent / "fixtures"


def _config_dir(root: Path, name: str, state: str = "done") -> Path:
    d = root / name
    d.mkdir(parents=True)
    atoms = read(FIX / "blg_w90" / "scf.in", format="espresso-in")
    atoms.pbc = (True, True, False)
    atoms.arrays["layer"] = np.array([0, 0, 1, 1])
    write(d / "structure.extxyz", atoms, format="extxyz")
    params = {"kind": "bilayer", "registry": None, "shift": [1 / 3, 1 / 3], "distance": 3.35}
    (d / "config.json").write_text(json.dumps({"name": name, "params": params,
                                               "preset": get_preset("graphene").to_dict()}))
    shutil.copy(FIX / "qe" / "blg_scf.out", d / "scf.out")
    for src, dst in (("blg_hr.dat", "wan_hr.dat"), ("blg_wsvec.dat", "wan_wsvec.dat"),
                     ("blg.nnkp", "wan.nnkp")):
        shutil.copy(FIX / "blg_w90" / src, d / dst)
    errs = {w: {"max_meV": 5.0, "mean_meV": 1.0, "count": 10} for w in ("0.5", "1", "1.5")}
    gate = {"passed": state == "done", "reasons": [] if state == "done" else ["x"],
            "band_errors": errs, "max_spread": 0.94, "max_centre_offset": 0.004,
            "spreads": [0.94] * 4}
    (d / "result.json").write_text(json.dumps({"num_wann": 4, "kgrid": [9, 9, 1], "gate": gate}))
    st = {"state": state, "timings": {"scf": 10.0}}
    if state == "failed":
        st["reason"] = "quality_gate"
    (d / "status.json").write_text(json.dumps(st))
    return d


def test_append_and_reload(tmp_path):
    ds = tmp_path / "ds"
    d1 = _config_dir(tmp_path / "runs", "blg_0001")
    d2 = _config_dir(tmp_path / "runs", "blg_0002")
    d3 = _config_dir(tmp_path / "runs", "blg_0003", state="failed")
    assert append_configuration(ds, d1)
    assert not append_configuration(ds, d1)  # idempotent
    assert append_configuration(ds, d2)
    assert append_configuration(ds, d3)
    assert collected_names(ds) == {"blg_0001", "blg_0002", "blg_0003"}

    frames = read(ds / "frames.extxyz", index=":")
    assert [f.info["config"] for f in frames] == ["blg_0001", "blg_0002"]
    scf = read_pw_output(FIX / "qe" / "blg_scf.out")
    assert frames[0].get_potential_energy() == pytest.approx(scf.energy)
    assert np.allclose(frames[0].get_forces(), scf.forces)
    assert np.allclose(frames[0].get_stress(voigt=False), scf.stress)
    assert frames[0].arrays["layer"].tolist() == [0, 0, 1, 1]

    h = load_hamiltonians(ds)
    assert h["frame_names"].tolist() == ["blg_0001", "blg_0002"]
    assert h["pair_offset"][0] == 0 and len(h["pair_offset"]) == 3
    assert h["orb_label"].tolist() == ["pz"] * 8
    # frame 2 blocks equal frame 1 blocks
    n1 = h["pair_offset"][1]
    assert np.array_equal(h["pair_R"][:n1], h["pair_R"][n1:])
    v1 = h["block_values"][: h["block_offset"][n1]]
    v2 = h["block_values"][h["block_offset"][n1]:]
    assert np.allclose(v1, v2)
    # every physical hopping of hr.dat is found in its (i, j, R) block
    R, m, n, t = apply_wsvec(read_hr(FIX / "blg_w90" / "blg_hr.dat"),
                             read_wsvec(FIX / "blg_w90" / "blg_wsvec.dat"))
    lookup = {(i, j, tuple(r)): h["block_values"][h["block_offset"][p]]
              for p, (i, j, r) in enumerate(zip(h["pair_i"][:n1], h["pair_j"][:n1], h["pair_R"][:n1]))}
    big = np.abs(t) > 1e-3
    for r, a, b, v in zip(R[big], m[big], n[big], t[big]):
        assert lookup[(a, b, tuple(r))] == pytest.approx(v.real, abs=1e-9)

    meta = json.loads((ds / "metadata.json").read_text())
    assert meta["statistics"]["done"] == 2 and meta["statistics"]["failed"] == 1
    assert meta["statistics"]["failure_reasons"] == {"quality_gate": 1}
    assert meta["units"]["energy"] == "eV"

    table = summary_markdown(ds)
    assert "| configurations finished / failed | 2 / 1 |" in table
    assert "| SCF grid of energy / force / stress labels | 9x9: 2 |" in table

    split = split_of("blg_0001")
    sysdir = ds / "deepmd" / split / "C4"
    assert (sysdir / "type.raw").read_text().split() == ["0"] * 4
    assert (sysdir / "type_map.raw").read_text().split() == ["C"]
    e = np.load(sysdir / "set.000" / "energy.npy")
    assert e.shape[0] >= 1 and e[0] == pytest.approx(scf.energy)
    vir = np.load(sysdir / "set.000" / "virial.npy")
    assert vir.shape[1] == 9
    assert vir[0, 0] == pytest.approx(-scf.stress[0, 0] * frames[0].get_volume())


def test_split_is_stable():
    assert split_of("blg_0042") == split_of("blg_0042")
    assert split_of("anything", {"registry": "AB"}) == "train"
    names = [f"blg_{i:04d}" for i in range(400)]
    frac = np.mean([split_of(n) == "valid" for n in names])
    assert 0.08 < frac < 0.25


def test_deepmd_errors(tmp_path):
    from ase import Atoms

    with pytest.raises(ValueError):
        write_deepmd_system([], tmp_path / "x", ["C"])
    a = Atoms("C2", positions=[[0, 0, 0], [1, 0, 0]], cell=[5, 5, 5])
    with pytest.raises(ValueError, match="type_map"):
        write_deepmd_system([a], tmp_path / "x", ["B"])
    with pytest.raises(ValueError, match="lack"):
        write_deepmd_system([a], tmp_path / "x", ["C"])


def _write_synthetic_w90(d: Path, H: dict, nw: int, proj_frac: list, lm: list) -> None:
    Rs = sorted(H)
    lines = ["synthetic", f"{nw}", f"{len(Rs)}", " ".join("1" for _ in Rs)]
    for R in Rs:
        for n in range(nw):
            for m in range(nw):
                v = H[R][m, n]
                lines.append(f"{R[0]} {R[1]} {R[2]} {m + 1} {n + 1} {v.real:.10f} {v.imag:.10f}")
    (d / "wan_hr.dat").write_text("\n".join(lines) + "\n")
    (d / "wan_wsvec.dat").write_text("## header only: no extra shifts\n")
    proj = ["begin projections", f"{nw}"]
    for f, (l, mr) in zip(proj_frac, lm):
        proj.append(f"{f[0]:.5f} {f[1]:.5f} {f[2]:.5f} {l} {mr} 1")
        proj.append(" 0 0 1 1 0 0 1.0")
    proj.append("end projections")
    (d / "wan.nnkp").write_text("\n".join(proj) + "\n")


def test_multi_orbital_blocks(tmp_path):
    from ase import Atoms

    from wander.dft.dataset import frame_blocks

    cell = [[3.19, 0, 0], [1.595, 2.7626, 0], [0, 0, 25.0]]
    atoms = Atoms("MoS", scaled_positions=[[0, 0, 0], [1 / 3, 1 / 3, 0.0626]], cell=cell,
                  pbc=(True, True, False))
    nw = 8
    rng = np.random.default_rng(0)
    A = rng.normal(size=(nw, nw))
    H = {(0, 0, 0): A + A.T, (1, 0, 0): rng.normal(size=(nw, nw))}
    H[(-1, 0, 0)] = H[(1, 0, 0)].T.copy()
    H = {k: v.astype(complex) for k, v in H.items()}
    frac = atoms.get_scaled_positions()
    proj_frac = [frac[0]] * 5 + [frac[1]] * 3
    lm = [(2, i) for i in range(1, 6)] + [(1, i) for i in range(1, 4)]
    _write_synthetic_w90(tmp_path, H, nw, proj_frac, lm)
    b = frame_blocks(atoms, tmp_path / "wan_hr.dat", tmp_path / "wan_wsvec.dat", tmp_path / "wan.nnkp")
    assert b["orb_count"].tolist() == [5, 3]
    assert b["orb_label"].tolist() == ["dz2", "dxz", "dyz", "dx2-y2", "dxy", "pz", "px", "py"]
    for p, (i, j, R) in enumerate(zip(b["pair_i"], b["pair_j"], b["pair_R"])):
        block = b["block_values"][b["block_offset"][p]:b["block_offset"][p + 1]]
        rows = slice(0, 5) if i == 0 else slice(5, 8)
        cols = slice(0, 5) if j == 0 else slice(5, 8)
        ref = H[tuple(int(x) for x in R)][rows, cols].real
        assert block.shape == (ref.size,)
        assert np.allclose(block.reshape(ref.shape), ref, atol=1e-9)
    assert len(b["pair_i"]) == 12  # 4 atom pairs x 3 R
