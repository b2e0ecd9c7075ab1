"""Quality gates of one Wannierised configuration.

* Bands: Wannier-interpolated eigenvalues against DFT eigenvalues at k-points
  off the Wannier grid.  For each DFT eigenvalue with ``|E - E_F| < window`` the
  distance to the nearest Wannier eigenvalue at the same k is an error; the gate
  is on the maximum within ``band_window_eV``.
* Spreads: every Wannier spread below a bound (Angstrom^2).
* Centres: every Wannier centre within a distance of its host atom (Angstrom).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from wander.io import HrData, WsvecData, apply_wsvec

__all__ = ["wannier_eigenvalues", "band_errors", "centre_offsets", "GateResult", "evaluate_gate",
           "check_kpoints", "projectability_frozen_window"]


def wannier_eigenvalues(hr: HrData, wsvec: WsvecData | None, kpoints: np.ndarray) -> np.ndarray:
    """Eigenvalues (nk, num_wann) eV of the Wannier Hamiltonian at fractional ``kpoints`` (nk, 3)."""
    R, m, n, t = apply_wsvec(hr, wsvec)
    k = np.atleast_2d(np.asarray(kpoints, dtype=float))
    phase = np.exp(2j * np.pi * (k @ R.T))  # (nk, nh)
    nw = hr.num_wann
    Hk = np.zeros((len(k), nw * nw), dtype=complex)
    flat = m * nw + n
    for col in np.unique(flat):  # at most num_wann^2 columns
        sel = flat == col
        Hk[:, col] = phase[:, sel] @ t[sel]
    Hk = Hk.reshape(len(k), nw, nw)
    Hk = 0.5 * (Hk + Hk.conj().transpose(0, 2, 1))
    return np.linalg.eigvalsh(Hk)


def band_errors(e_dft: np.ndarray, e_wan: np.ndarray, fermi_energy: float,
                windows: tuple[float, ...] = (0.5, 1.0, 1.5)) -> dict[str, dict[str, float]]:
    """Max/mean distance (meV) of DFT eigenvalues to the nearest Wannier eigenvalue.

    Args:
        e_dft: (nk, nb) eV. e_wan: (nk, nw) eV. windows: half-widths around E_F (eV).

    Returns:
        ``{"0.5": {"max_meV", "mean_meV", "count"}, ...}``.
    """
    e_dft = np.asarray(e_dft, dtype=float)
    e_wan = np.asarray(e_wan, dtype=float)
    if e_dft.shape[0] != e_wan.shape[0]:
        raise ValueError(f"k-point counts differ: {e_dft.shape[0]} vs {e_wan.shape[0]}")
    dist = np.min(np.abs(e_dft[:, :, None] - e_wan[:, None, :]), axis=2)
    out = {}
    for w in windows:
        sel = np.abs(e_dft - fermi_energy) < w
        d = dist[sel] * 1000.0
        out[f"{w:g}"] = {"max_meV": float(d.max()) if d.size else 0.0,
                         "mean_meV": float(d.mean()) if d.size else 0.0, "count": int(d.size)}
    return out


def centre_offsets(centres: np.ndarray, atom_positions: np.ndarray, orbital_atoms: np.ndarray,
                   cell: np.ndarray) -> np.ndarray:
    """Distance (Angstrom) of each Wannier centre to its host atom, minimal image in-plane.

    Args:
        centres: (nw, 3) Cartesian. atom_positions: (nat, 3). orbital_atoms: (nw,) host index.
        cell: (3, 3) rows.
    """
    d = np.asarray(centres) - np.asarray(atom_positions)[np.asarray(orbital_atoms)]
    frac = d @ np.linalg.inv(cell)
    frac[:, :2] -= np.round(frac[:, :2])
    return np.linalg.norm(frac @ cell, axis=1)


def check_kpoints(n: int = 12) -> np.ndarray:
    """Fractional k-points along G-M-K-G at path fractions (j + 0.37)/n, shape (n + 3, 3).

    The offset keeps them off the usual Gamma-centred grids; three extra points sit
    next to K, where the Dirac cone of graphene is.
    """
    nodes = np.array([[0, 0, 0], [0.5, 0, 0], [2 / 3, 1 / 3, 0], [0, 0, 0]], dtype=float)
    seg = np.linalg.norm(np.diff(nodes, axis=0) @ np.array([[1, 0, 0], [0.5, np.sqrt(3) / 2, 0],
                                                              [0, 0, 1]]), axis=1)
    cum = np.r_[0, np.cumsum(seg)] / seg.sum()
    pts = []
    for j in range(n):
        s = (j + 0.37) / n
        i = min(np.searchsorted(cum, s, side="right") - 1, 2)
        u = (s - cum[i]) / (cum[i + 1] - cum[i])
        pts.append(nodes[i] + u * (nodes[i + 1] - nodes[i]))
    pts += [[2 / 3 - 0.0123, 1 / 3 + 0.0061, 0.0], [2 / 3 + 0.0217, 1 / 3 - 0.0071, 0.0],
            [2 / 3 + 0.0043, 1 / 3 + 0.0311, 0.0]]
    return np.array(pts)


@dataclass
class GateResult:
    """Outcome of the quality gate (all values JSON-friendly)."""

    passed: bool
    reasons: list[str]
    band_errors: dict
    max_spread: float
    max_centre_offset: float
    spreads: list[float]

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_gate(errors: dict, spreads: np.ndarray, offsets: np.ndarray, *, band_tol_meV: float,
                  band_window_eV: float, spread_max: float, centre_max: float) -> GateResult:
    """Apply the three gates; ``reasons`` lists every failed one."""
    reasons = []
    key = f"{band_window_eV:g}"
    if key not in errors:
        raise ValueError(f"band errors lack window {key}; have {sorted(errors)}")
    if errors[key]["count"] == 0:
        reasons.append(f"no DFT eigenvalue within +-{key} eV of E_F at the check k-points")
    elif errors[key]["max_meV"] > band_tol_meV:
        reasons.append(f"band error {errors[key]['max_meV']:.1f} meV > {band_tol_meV} meV within "
                       f"+-{key} eV")
    smax = float(np.max(spreads))
    if not np.isfinite(smax) or smax > spread_max:
        reasons.append(f"max spread {smax:.3f} A^2 > {spread_max}")
    cmax = float(np.max(offsets))
    if cmax > centre_max:
        reasons.append(f"centre {cmax:.3f} A from its atom > {centre_max}")
    return GateResult(not reasons, reasons, errors, smax, cmax, [float(s) for s in spreads])


def projectability_frozen_window(p: np.ndarray, e: np.ndarray, fermi_energy: float,
                                 lo_rel: float, hi_rel: float, *, threshold: float = 0.1,
                                 margin: float = 0.1) -> tuple[float, float]:
    """Frozen window [lo, hi] (eV, absolute) that keeps out weakly projectable states.

    Starts from ``[E_F + lo_rel, E_F + hi_rel]`` and shrinks it so that no state whose
    projectability ``p`` is below ``threshold`` times the largest one (e.g. the in-plane sigma
    bands of graphene, whose energy at Gamma moves by ~1 eV under 2 % shear strain) lies
    inside, with ``margin`` eV of clearance.

    Args:
        p, e: (nk, nb) projectabilities and energies (eV) from :func:`read_amn_eig`.
    """
    lo, hi = fermi_energy + lo_rel, fermi_energy + hi_rel
    weak = p < threshold * p.max()
    below = e[weak & (e < fermi_energy) & (e > lo - margin)]
    above = e[weak & (e > fermi_energy) & (e < hi + margin)]
    if below.size:
        lo = max(lo, float(below.max()) + margin)
    if above.size:
        hi = min(hi, float(above.min()) - margin)
    return lo, hi
