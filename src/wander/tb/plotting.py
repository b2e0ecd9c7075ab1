"""Matplotlib figures of band structures (E - E_F) with an optional DOS side panel."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_band_structure", "pretty_label"]


def pretty_label(name: str) -> str:
    """``"G"`` -> ``"Γ"``; other labels unchanged."""
    return "Γ" if name in ("G", "Gamma") else name


def plot_band_structure(
    bs,
    *,
    dos=None,
    emin: float | None = None,
    emax: float | None = None,
    title: str | None = None,
    ax=None,
    color: str = "C0",
):
    """Plot bands against the path coordinate, energies relative to ``bs.reference``.

    Parameters
    ----------
    bs : ase.spectrum.band_structure.BandStructure
    dos : ase.spectrum.dosdata.GridDOSData, optional
        Drawn in a side panel sharing the energy axis (absolute energies, shifted by the same
        reference).
    emin, emax : float, eV, optional
        Limits of the energy axis relative to the reference (default: all computed bands).
    title : str, optional
    ax : matplotlib Axes, optional
        Draw into this axes (no DOS panel then).
    color : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    ref = float(bs.reference)
    e = np.asarray(bs.energies)[0] - ref  # (nk, nb)
    x, X, labels = bs.path.get_linear_kpoint_axis()
    if ax is None:
        if dos is not None:
            fig, (ax, ax_dos) = plt.subplots(
                1, 2, figsize=(7.5, 5), sharey=True, gridspec_kw={"width_ratios": [3, 1]}, layout="constrained"
            )
        else:
            fig, ax = plt.subplots(figsize=(5.5, 5), layout="constrained")
            ax_dos = None
    else:
        fig, ax_dos = ax.figure, None
    lo = float(e.min()) if emin is None else emin
    hi = float(e.max()) if emax is None else emax
    pad = 0.05 * (hi - lo) if (emin is None or emax is None) and hi > lo else 0.0
    lo, hi = (lo - pad if emin is None else lo), (hi + pad if emax is None else hi)
    ax.plot(x, e, color=color, lw=1.2)
    for xx in X[1:-1]:
        ax.axvline(xx, color="0.6", lw=0.8)
    ax.axhline(0.0, color="0.3", lw=0.8, ls="--")
    ax.set_xticks(X)
    ax.set_xticklabels([pretty_label(s) for s in labels])
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(lo, hi)
    unit, scale = ("meV", 1e3) if hi - lo < 0.2 else ("eV", 1.0)
    if scale != 1.0:
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v * scale:g}"))
    ax.set_ylabel(f"E - E_F ({unit})")
    if title:
        ax.set_title(title)
    if ax_dos is not None:
        energies = np.asarray(dos.get_energies()) - ref
        weights = np.asarray(dos.get_weights())
        sel = (energies >= lo) & (energies <= hi)
        ax_dos.plot(weights[sel], energies[sel], color="C1", lw=1.2)
        ax_dos.fill_betweenx(energies[sel], 0, weights[sel], color="C1", alpha=0.3)
        ax_dos.axhline(0.0, color="0.3", lw=0.8, ls="--")
        ax_dos.set_xlabel("DOS (states/eV/cell)")
        ax_dos.set_xlim(left=0)
    return fig
