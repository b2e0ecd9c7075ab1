"""Matplotlib figures of moire maps: colour maps on the triangulated samples, displacement arrows,
stacking-registry scatter. Every function takes an optional ``ax`` and returns the figure; the cell
(parallelogram of the two in-plane vectors) is drawn for orientation. Axes are in Angstrom, equal aspect.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from wander.moire.maps import MoireMap

__all__ = ["plot_displacement", "plot_map", "plot_registry", "save_figure"]

_REGISTRY_COLOURS = {"AA": "tab:red", "AB": "tab:blue", "BA": "tab:green", "SP": "0.75"}


def _axes(ax: Any, figsize: tuple[float, float] = (5.5, 5.0)) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    return ax.figure, ax


def _cell_outline(ax: Any, cell2: np.ndarray) -> None:
    corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], dtype=float) @ cell2
    ax.plot(corners[:, 0], corners[:, 1], color="k", lw=0.8)
    ax.set_aspect("equal")
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")


def _tiled(m: MoireMap, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Samples and values repeated on the 3x3 neighbouring cells, so contours fill the whole cell."""
    shifts = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)], dtype=float) @ m.cell2
    xy = (m.xy[None, :, :] + shifts[:, None, :]).reshape(-1, 2)
    return xy, np.tile(values, 9)


def plot_map(m: MoireMap, ax: Any = None, cmap: str = "viridis", title: str | None = None,
             levels: int = 40) -> Any:
    """Filled contours of a scalar map (triangulation of the samples), clipped to the cell region."""
    if m.values.ndim != 1:
        raise ValueError("plot_map needs a scalar map; use plot_displacement for vector fields")
    fig, ax = _axes(ax)
    xy, v = _tiled(m, m.values)
    lo, hi = float(m.values.min()), float(m.values.max())
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        lo, hi = lo - 0.5e-3 * max(1.0, abs(lo)), hi + 0.5e-3 * max(1.0, abs(hi))
    cs = ax.tricontourf(xy[:, 0], xy[:, 1], v, levels=np.linspace(lo, hi, levels), cmap=cmap, extend="both")
    fig.colorbar(cs, ax=ax, label=f"{m.name} ({m.unit})", shrink=0.85)
    corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float) @ m.cell2
    pad = 0.05 * np.ptp(corners, axis=0).max()
    ax.set_xlim(corners[:, 0].min() - pad, corners[:, 0].max() + pad)
    ax.set_ylim(corners[:, 1].min() - pad, corners[:, 1].max() + pad)
    _cell_outline(ax, m.cell2)
    ax.set_title(title or m.name)
    return fig


def plot_displacement(m: MoireMap, ax: Any = None, layer: np.ndarray | None = None, which: int = 1,
                      max_arrows: int = 4000, title: str | None = None) -> Any:
    """In-plane displacement arrows (coloured by magnitude) of one layer (``which``, needs ``layer``)."""
    if m.values.ndim != 2 or m.values.shape[1] < 2:
        raise ValueError("plot_displacement needs a vector map (M, 2 or 3)")
    fig, ax = _axes(ax)
    sel = np.arange(len(m.xy)) if layer is None else np.flatnonzero(np.asarray(layer) == which)
    if len(sel) > max_arrows:
        sel = sel[:: int(np.ceil(len(sel) / max_arrows))]
    u = m.values[sel, :2]
    mag = np.linalg.norm(u, axis=1)
    scale = None if mag.max() > 0 else 1.0  # all-zero field: fixed scale instead of autoscaling by zero
    q = ax.quiver(m.xy[sel, 0], m.xy[sel, 1], u[:, 0], u[:, 1], mag, cmap="magma", angles="xy", pivot="mid",
                  scale=scale, scale_units=None if scale is None else "xy")
    fig.colorbar(q, ax=ax, label=f"|u| ({m.unit})", shrink=0.85)
    _cell_outline(ax, m.cell2)
    ax.set_title(title or ("in-plane displacement" + ("" if layer is None else f", layer {which}")))
    return fig


def plot_registry(m: MoireMap, ax: Any = None, title: str | None = None) -> Any:
    """Top-layer A sites coloured by their stacking class (AA, AB, BA, SP)."""
    fig, ax = _axes(ax)
    labels = m.extra["label"]
    size = max(2.0, 4000.0 / max(len(labels), 1))
    for name, colour in _REGISTRY_COLOURS.items():
        sel = labels == name
        if sel.any():
            ax.scatter(m.xy[sel, 0], m.xy[sel, 1], s=size, c=colour, label=f"{name} ({int(sel.sum())})")
    ax.legend(loc="upper left", fontsize=8, markerscale=2.0)
    _cell_outline(ax, m.cell2)
    ax.set_title(title or "local stacking registry")
    return fig


def save_figure(fig: Any, path: str, dpi: int = 150) -> None:
    """Write a figure atomically (temporary file + ``os.replace``) and close it."""
    import os
    import tempfile

    import matplotlib.pyplot as plt

    directory = os.path.dirname(os.path.abspath(path))
    suffix = os.path.splitext(path)[1] or ".png"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".fig.", suffix=suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        plt.close(fig)
