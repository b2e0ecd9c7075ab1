"""Pseudopotential generation inputs and the long-line fix."""

import shutil

import pytest

from wander.dft.pseudo import (EXPECTED_TOTAL_PSENERGY, generate, shipped_inputs, total_psenergy,
                               wrap_long_lines)


def test_shipped_inputs():
    inputs = shipped_inputs()
    assert set(inputs) == {"Mo.pbe-spn-kjpaw_psl.1.0.0.UPF", "S.pbe-n-kjpaw_psl.1.0.0.UPF"}
    assert set(EXPECTED_TOTAL_PSENERGY) == set(inputs)
    for p in inputs.values():
        assert "lpaw=.true." in p.read_text()


def test_wrap_long_lines():
    nums = " ".join(f"{x:.6E}" for x in range(400))
    text = f'<PP_HEADER a="1"/>\n<PP_R>\n{nums}\n</PP_R>\n'
    out = wrap_long_lines(text)
    assert max(len(ln) for ln in out.splitlines()) < 200
    assert out.split() [2:-1] == text.split()[2:-1]
    assert wrap_long_lines("short 1 2 3\n") == "short 1 2 3\n"


def test_total_psenergy():
    assert total_psenergy('<PP_HEADER total_psenergy="-65.5" />') == -65.5
    assert total_psenergy("<PP_HEADER />") is None


def test_unknown_upf(tmp_path):
    with pytest.raises(ValueError, match="no ld1.x input"):
        generate("Xx.UPF", tmp_path)


@pytest.mark.dft
@pytest.mark.skipif(shutil.which("ld1.x") is None, reason="ld1.x not installed")
def test_generate_matches_expected(tmp_path):
    for name in shipped_inputs():
        out = generate(name, tmp_path)
        text = out.read_text()
        assert abs(total_psenergy(text) - EXPECTED_TOTAL_PSENERGY[name]) < 1e-4
        assert max(len(ln) for ln in text.splitlines()) < 1024
