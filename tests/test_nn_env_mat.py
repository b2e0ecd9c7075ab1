"""Smooth switch, environment-matrix rows and DeePMD normalisation statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fixtures.ff.helpers import bilayer
from fixtures.ff.helpers import one_thread  # noqa: F401  (autouse fixture)
from wander.data.graph import AtomGraph
from wander.data.neighbors import neighbor_list
from wander.nn.env_mat import EnvStatAccumulator, environment_rows, smooth_switch

RS, RC = 1.0, 4.0


def test_switch_values_and_c2_continuity() -> None:
    r = torch.tensor([0.3, RS, 2.5, RC, 5.0], dtype=torch.float64)
    w = smooth_switch(r, RS, RC)
    u = (2.5 - RS) / (RC - RS)
    expected = [1.0, 1.0, u**3 * (-6 * u**2 + 15 * u - 10) + 1, 0.0, 0.0]
    assert torch.allclose(w, torch.tensor(expected, dtype=torch.float64), atol=1e-15, rtol=0)
    # first and second derivatives vanish at both ends of the switching region
    for r0 in (RS, RC):
        for side in (-1e-4, 1e-4):
            x = torch.tensor(r0 + side, dtype=torch.float64, requires_grad=True)
            (d1,) = torch.autograd.grad(smooth_switch(x, RS, RC), x, create_graph=True)
            (d2,) = torch.autograd.grad(d1, x)
            assert abs(float(d1.detach())) < 1e-6 and abs(float(d2)) < 1e-2
    with pytest.raises(ValueError, match="smaller"):
        smooth_switch(r, RC, RS)


def test_rows_match_formula_and_vanish_beyond_cutoff() -> None:
    rng = np.random.default_rng(0)
    vec = rng.normal(size=(50, 3)) * 2.0
    rows, switch = environment_rows(torch.tensor(vec), RS, RC)
    r = np.linalg.norm(vec, axis=1)
    u = np.clip((r - RS) / (RC - RS), 0, 1)
    w = u**3 * (-6 * u**2 + 15 * u - 10) + 1
    s = w / r
    expected = np.column_stack([s, s[:, None] * vec / r[:, None]])
    np.testing.assert_allclose(rows.numpy(), expected, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(switch.numpy(), w, atol=1e-15)
    assert (r > RC).any() and np.all(rows.numpy()[r >= RC] == 0.0)


def test_zero_length_vector_gives_finite_zero_gradient() -> None:
    vec = torch.tensor([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [0.0, 5.0, 0.0]], dtype=torch.float64,
                       requires_grad=True)
    rows, _ = environment_rows(vec, RS, RC)
    (grad,) = torch.autograd.grad(rows.sum(), vec)
    assert torch.isfinite(grad).all()
    assert torch.all(rows[0] == 0) and torch.all(grad[0] == 0) and torch.all(grad[2] == 0)
    assert grad[1].abs().sum() > 0


def test_statistics_equal_explicit_padded_slots() -> None:
    """davg / dstd equal DeePMD's definition computed on an explicit (N, sum(sel), 4) padded matrix."""
    sel = [30, 30]
    atoms = bilayer(n=2, seed=4)
    g = AtomGraph.from_atoms(atoms, ["C", "B"], RC)
    rows, _ = environment_rows(g.edge_vectors(), RS, RC)
    acc = EnvStatAccumulator(2, sel)
    acc.add(rows, g.edge_index, g.species)
    davg, dstd = acc.compute()

    # explicit padded environment matrix, neighbours of each type in their own sel block
    nl = neighbor_list(atoms, RC)
    species = g.species.numpy()
    padded = np.zeros((len(atoms), sum(sel), 4))
    fill = np.zeros((len(atoms), 2), dtype=int)
    for e, (i, j) in enumerate(zip(nl.i, nl.j)):
        t = species[j]
        padded[i, sum(sel[:t]) + fill[i, t]] = rows[e].numpy()
        fill[i, t] += 1
    for t in range(2):
        block = padded[species == t]
        s, a = block[..., 0].ravel(), block[..., 1:].ravel()
        np.testing.assert_allclose(davg[t].numpy(), [s.mean(), 0, 0, 0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(dstd[t].numpy(), [s.std(), a.std(), a.std(), a.std()], rtol=1e-10)


def test_statistics_defaults_for_unseen_type() -> None:
    acc = EnvStatAccumulator(2, [10, 10])
    acc.add(torch.zeros(0, 4, dtype=torch.float64), torch.zeros(2, 0, dtype=torch.int64),
            torch.zeros(3, dtype=torch.int64))
    davg, dstd = acc.compute()
    assert torch.all(davg == 0)
    assert torch.allclose(dstd[0], torch.full((4,), 1e-2, dtype=torch.float64))  # protection
    assert torch.allclose(dstd[1], torch.full((4,), 0.1, dtype=torch.float64))   # never seen


def test_statistics_with_more_neighbours_than_sel() -> None:
    """Overflowing neighbours add slots: a proper variance, equal to a padded matrix with wider blocks."""
    atoms = bilayer(n=2, seed=4)
    g = AtomGraph.from_atoms(atoms, ["C", "B"], RC)
    rows, _ = environment_rows(g.edge_vectors(), RS, RC)
    narrow, wide = EnvStatAccumulator(2, [3, 3]), EnvStatAccumulator(2, [200, 200])
    narrow.add(rows, g.edge_index, g.species)
    wide.add(rows, g.edge_index, g.species)
    d_narrow, s_narrow = narrow.compute()
    d_wide, s_wide = wide.compute()
    s = rows[:, 0]
    ci = g.species[g.edge_index[0]]
    for t in range(2):
        n_slots = sum(
            max(int(((g.edge_index[0] == i) & (g.species[g.edge_index[1]] == u)).sum()), 3)
            for i in torch.nonzero(g.species == t).ravel() for u in range(2)
        )
        mean = float(s[ci == t].sum()) / n_slots
        assert abs(float(d_narrow[t, 0]) - mean) < 1e-12
        assert float(s_narrow[t, 0]) > 0.05
    assert torch.all(d_wide[:, 0] < d_narrow[:, 0])  # more empty slots dilute the mean

