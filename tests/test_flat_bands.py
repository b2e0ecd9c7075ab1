"""Locating flat bands in a window of bands: around charge neutrality, at the valence or conduction edge."""

from __future__ import annotations

import numpy as np
import pytest

from wander.sim.workflow import flat_bands


def _global_bands() -> np.ndarray:
    """Eight bands at three k-points; band b disperses by (b + 1) * 10 meV per k-point."""
    centres = np.array([-3.0, -2.0, -1.0, -0.2, 0.3, 1.0, 2.0, 3.0])
    return centres[None, :] + np.array([[0.0], [0.01], [0.02]]) * np.arange(1, 9)[None, :]


def _bands() -> tuple[np.ndarray, np.ndarray]:
    """Windows of :func:`_global_bands`; the window of the last k-point starts one band up."""
    e = _global_bands()
    offset = np.array([0, 0, 1])
    e[2, :-1] = e[2, 1:]          # window of k-point 2 holds global bands 1..7 (and a padding value)
    e[2, -1] = 4.0
    return e, offset


@pytest.mark.parametrize("position, first, width", [
    ("neutrality", 3, 0.6),      # bands 3 and 4: -0.2 .. 0.3 + 0.10
    ("valence", 2, 0.88),        # bands 2 and 3: -1.0 .. -0.2 + 0.08
    ("conduction", 4, 0.82),     # bands 4 and 5: 0.3 .. 1.0 + 0.12
])
def test_flat_band_positions(position, first, width) -> None:
    e, off = _bands()
    fb = flat_bands(e, off, n_electrons=8, n_flat=2, position=position)   # 4 filled bands: 0..3
    assert fb.first_band == first and fb.position == position
    glob = _global_bands()
    flat = glob[:, first:first + 2]
    assert fb.width == pytest.approx(width)
    assert fb.width == pytest.approx(flat.max() - flat.min())
    assert fb.gap_below == pytest.approx(flat.min() - glob[:, first - 1].max())
    assert fb.gap_above == pytest.approx(glob[:, first + 2].min() - flat.max())


def test_valence_flat_bands_of_a_semiconductor_sit_below_the_gap() -> None:
    """Valence: the flat bands end at the highest filled band and gap_above is the band gap."""
    e, off = _bands()
    fb = flat_bands(e, off, n_electrons=8, n_flat=1, position="valence")
    assert fb.first_band == 3
    assert fb.gap_above == pytest.approx(0.3 - (-0.2 + 0.08))


def test_flat_band_errors() -> None:
    e, off = _bands()
    with pytest.raises(ValueError, match="position"):
        flat_bands(e, off, n_electrons=8, n_flat=2, position="middle")
    with pytest.raises(ValueError, match="even"):
        flat_bands(e, off, n_electrons=8, n_flat=3)
    with pytest.raises(ValueError, match="increase n_bands"):
        flat_bands(e, off, n_electrons=8, n_flat=4, position="valence")   # band 0 is not in window 2
