"""Orbital basis: Wannier90 real harmonics vs e3nn's, Wigner matrices, OrbitalBasis tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("e3nn")
from e3nn import o3  # noqa: E402

from wander.nn.hamiltonian.basis import SHELL_LABELS, OrbitalBasis, w90_from_e3nn, wigner_w90  # noqa: E402

TOL = 1e-12


def w90_harmonics(l: int, v: np.ndarray) -> np.ndarray:
    """Wannier90 real orbitals (user guide Table 3.1) at unit vectors ``v`` (n, 3), Wannier90 order."""
    x, y, z = v.T
    pi = np.pi
    if l == 0:
        return np.full((len(v), 1), 1 / np.sqrt(4 * pi))
    if l == 1:
        return np.sqrt(3 / (4 * pi)) * np.stack([z, x, y], 1)
    if l == 2:
        return np.stack([
            np.sqrt(5 / (16 * pi)) * (3 * z**2 - 1),
            np.sqrt(15 / (4 * pi)) * x * z,
            np.sqrt(15 / (4 * pi)) * y * z,
            np.sqrt(15 / (16 * pi)) * (x**2 - y**2),
            np.sqrt(15 / (4 * pi)) * x * y,
        ], 1)
    raise ValueError(l)


def unit_vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("l", [0, 1, 2])
def test_conversion_reproduces_wannier90_functions(l):
    """Wannier90 orbitals = C_l @ e3nn harmonics (integral normalisation) at random directions."""
    v = unit_vectors(200, l)
    y = o3.spherical_harmonics(l, torch.tensor(v), normalize=True, normalization="integral").numpy()
    c = w90_from_e3nn(l)
    np.testing.assert_allclose(y @ c.T, w90_harmonics(l, v), atol=TOL)
    np.testing.assert_allclose(c @ c.T, np.eye(2 * l + 1), atol=TOL)


@pytest.mark.parametrize("l", [0, 1, 2])
def test_conversion_matches_projection_on_e3nn_basis(l):
    """Monte-Carlo projection <Y_e3nn | w90> on the sphere recovers C_l (independent estimate)."""
    v = unit_vectors(400_000, 10 + l)
    y = o3.spherical_harmonics(l, torch.tensor(v), normalize=True, normalization="integral").numpy()
    proj = 4 * np.pi * (w90_harmonics(l, v).T @ y) / len(v)
    np.testing.assert_allclose(proj, w90_from_e3nn(l), atol=0.02)


@pytest.mark.parametrize("l", [0, 1, 2])
@pytest.mark.parametrize("proper", [True, False])
def test_wigner_matrices_rotate_wannier90_functions(l, proper):
    """w(Q r) = D(Q) w(r) for the Wannier90 functions themselves, reflections included (parity)."""
    torch.manual_seed(l)
    q = o3.rand_matrix(dtype=torch.float64)
    if not proper:
        q = -q
    d = wigner_w90(l, q).numpy()
    v = unit_vectors(50, 20 + l)
    np.testing.assert_allclose(w90_harmonics(l, v @ q.numpy().T), w90_harmonics(l, v) @ d.T, atol=TOL)


def test_wigner_rejects_non_orthogonal():
    with pytest.raises(ValueError, match="orthogonal"):
        wigner_w90(1, torch.eye(3, dtype=torch.float64) * 2)
    with pytest.raises(ValueError, match="only s, p, d"):
        w90_from_e3nn(3)


def test_orbital_basis_parsing_and_tables():
    b = OrbitalBasis({"Mo": "d", "S": "p", "C": ["pz"], "Si": ["s", "p"]})
    assert b.labels("Mo") == SHELL_LABELS[2]
    assert b.labels("Si") == ("s", "pz", "px", "py")
    assert b.max_orbitals == 5 and b.lmax == 2
    (sh,) = b.shells("C")
    assert (sh.l, sh.components, sh.positions, sh.complete) == (1, (0,), (0,), False)
    atoms, labels, offsets = b.orbital_table(["S", "Mo", "C"])
    assert offsets.tolist() == [0, 3, 8, 9]
    assert atoms.tolist() == [0] * 3 + [1] * 5 + [2]
    assert labels.tolist() == ["pz", "px", "py", "dz2", "dxz", "dyz", "dx2-y2", "dxy", "pz"]
    assert OrbitalBasis.from_dict(b.to_dict()) == b


@pytest.mark.parametrize("spec, match", [
    (["px", "pz"], "Wannier90 order"),
    (["pz", "pz"], "repeated"),
    ("f", "unknown orbital"),
    ([], "no orbitals"),
])
def test_orbital_basis_rejects_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        OrbitalBasis({"C": spec})


def test_orbital_table_unknown_element():
    with pytest.raises(ValueError, match="no orbitals"):
        OrbitalBasis({"C": "pz"}).orbital_counts(["C", "N"])
