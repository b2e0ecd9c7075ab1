"""Reference implementations and small systems shared by the tests of wander.tb."""

from __future__ import annotations

import numpy as np

from wander.tb import TBHamiltonian


def reference_hk(ham: TBHamiltonian, k, gauge: str = "lattice") -> np.ndarray:
    """Dense H(k) straight from the definition, looping over nothing clever (tests only)."""
    n = ham.n_orbitals
    H = np.zeros((n, n), dtype=complex)
    tau = ham.frac_positions
    k = np.asarray(k, dtype=float)
    for R, i, j, t in zip(ham.R, ham.i, ham.j, ham.t):
        d = R + (tau[j] - tau[i] if gauge == "position" else 0.0)
        H[i, j] += t * np.exp(2j * np.pi * d @ k)
        if not (np.all(R == 0) and i == j):
            H[j, i] += np.conj(t) * np.exp(-2j * np.pi * d @ k)
    return H


def random_hermitian_hoppings(n: int, seed: int):
    """A full Hermitian hopping list: every (R, i, j) with R in {-1, 0, 1}^2 exactly once."""
    rng = np.random.default_rng(seed)
    R, i, j, t = [], [], [], []
    for a in (-1, 0, 1):
        for b in (-1, 0, 1):
            Rv = np.array([a, b, 0])
            if (a, b) < (0, 0):
                continue  # generated as the mirror of -R
            h = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
            if a == b == 0:
                h = 0.5 * (h + h.conj().T)
            for p in range(n):
                for q in range(n):
                    R.append(Rv), i.append(p), j.append(q), t.append(h[p, q])
                    if (a, b) != (0, 0):
                        R.append(-Rv), i.append(q), j.append(p), t.append(np.conj(h[p, q]))
    return np.array(R), np.array(i), np.array(j), np.array(t)


def folded_kpoints(k_super: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Primitive fractional k-points that fold onto ``k_super`` of the supercell ``P @ cell``."""
    P = np.asarray(P, dtype=float)
    n = np.array([[a, b, 0] for a in range(-6, 7) for b in range(-6, 7)], dtype=float)
    kp = (k_super[None, :] + n) @ np.linalg.inv(P).T
    kp = kp - np.floor(kp + 1e-9)
    _, first = np.unique(np.round(kp, 8), axis=0, return_index=True)
    return kp[np.sort(first)]
