"""Stacking physics of a bilayer force field: the numbers a twisted-bilayer relaxation feeds on.

A relaxation of a small-angle twisted bilayer is driven by the generalised stacking-fault energy
(GSFE): the energy per cell of two untwisted layers as a function of their relative shift. AA
stacking must lie above the saddle point SP, which lies above AB, otherwise the relaxation grows
the wrong domains. Together with the binding curve (energy versus interlayer distance) and the
monolayer lattice constant these are cheap, decisive checks of a model before it is trusted on a
moire cell, and they can be compared point by point with the DFT registry-scan frames of a
dataset (``wander dft scan``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from wander.dft.sampler import LAYERS, NAMED_SHIFTS, build_bilayer

__all__ = ["StackingReport", "stacking_report", "scan_comparison", "monolayer_lattice_constant", "gsfe_path",
           "plot_stacking"]


@dataclass
class StackingReport:
    """Stacking energies and geometry of a model (energies in meV per primitive cell).

    Attributes:
        distance: interlayer distance of the GSFE values (Angstrom).
        gsfe_meV: E(registry) - E(AB) for AA and SP at ``distance``.
        binding_distances, binding_meV: AB binding curve, E(d) - E(d_min) on the grid.
        d_min: interlayer distance of the AB energy minimum on the grid (Angstrom).
        a0: monolayer lattice constant minimising the model's energy (Angstrom); None when the
            energy has no minimum within +-4 % of the sampler's lattice constant.
        ordering_ok: AA above SP above AB.
    """

    distance: float
    gsfe_meV: dict[str, float]
    binding_distances: list[float]
    binding_meV: list[float]
    d_min: float
    a0: float | None
    ordering_ok: bool = field(init=False)

    def __post_init__(self) -> None:
        self.ordering_ok = bool(self.gsfe_meV["AA"] > self.gsfe_meV["SP"] > 0.0)

    def as_dict(self) -> dict:
        return {"distance": self.distance, "gsfe_meV": self.gsfe_meV, "d_min": self.d_min, "a0": self.a0,
                "ordering_ok": self.ordering_ok, "binding_distances": self.binding_distances,
                "binding_meV": self.binding_meV}

    def table(self) -> str:
        rows = [f"E(AA) - E(AB) at d = {self.distance:.2f} A   {self.gsfe_meV['AA']:8.2f} meV / cell",
                f"E(SP) - E(AB) at d = {self.distance:.2f} A   {self.gsfe_meV['SP']:8.2f} meV / cell",
                f"AB energy minimum                  d = {self.d_min:.3f} A",
                (f"monolayer lattice constant         a0 = {self.a0:.4f} A" if self.a0 is not None else
                 "monolayer lattice constant         no energy minimum within +-4 %"),
                f"ordering AA > SP > AB              {'yes' if self.ordering_ok else 'NO'}"]
        return "\n".join(rows)


def _energy(calc: Calculator, atoms: Atoms) -> float:
    atoms = atoms.copy()
    atoms.calc = calc
    return float(atoms.get_potential_energy())


def _scaled(material: str, a: float | None, **kw) -> Atoms:
    atoms = build_bilayer(material, **kw)
    if a is not None:
        s = a / LAYERS[material].a
        cell = atoms.cell[:].copy()
        cell[:2] *= s
        pos = atoms.positions.copy()
        pos[:, :2] *= s
        atoms.set_cell(cell)
        atoms.positions = pos
    return atoms


def monolayer_lattice_constant(calc: Calculator, material: str = "graphene", span: float = 0.04) -> float:
    """Lattice constant minimising the monolayer energy within +-``span`` (relative) of the sampler's."""
    from scipy.optimize import minimize_scalar

    a_ref = LAYERS[material].a
    res = minimize_scalar(lambda a: _energy(calc, _scaled(material, a, monolayer=True)), method="bounded",
                          bounds=(a_ref * (1 - span), a_ref * (1 + span)), options={"xatol": 1e-5})
    if abs(res.x - a_ref) > 0.99 * span * a_ref:
        raise RuntimeError(f"monolayer energy has no minimum within +-{span:.0%} of a = {a_ref} A")
    return float(res.x)


def stacking_report(calc: Calculator, material: str = "graphene", distance: float = 3.5,
                    distances: np.ndarray | None = None, a: float | None = None) -> StackingReport:
    """GSFE (AA, SP against AB) at ``distance``, the AB binding curve and the monolayer a0.

    Args:
        calc: an ASE calculator (e.g. :class:`wander.calculator.WanderCalculator`).
        material: key of :data:`wander.dft.sampler.LAYERS` with a parallel (R) orientation.
        distance: interlayer distance of the GSFE (Angstrom).
        distances: grid of the binding curve (default 3.0-4.0 A in 0.025 A steps).
        a: in-plane lattice constant of the bilayers (default the sampler's).
    """
    if "R" not in LAYERS[material].orientations:
        raise ValueError(f"{material!r} has no parallel (R) stacking")
    e = {reg: _energy(calc, _scaled(material, a, shift=NAMED_SHIFTS[reg], distance=distance))
         for reg in ("AA", "AB", "SP")}
    gsfe = {reg: 1e3 * (e[reg] - e["AB"]) for reg in ("AA", "SP")}
    d = np.arange(3.0, 4.0001, 0.025) if distances is None else np.asarray(distances, dtype=float)
    eb = np.array([_energy(calc, _scaled(material, a, shift=NAMED_SHIFTS["AB"], distance=x)) for x in d])
    k = int(np.argmin(eb))
    try:
        a0 = monolayer_lattice_constant(calc, material)
    except RuntimeError:
        a0 = None
    return StackingReport(distance=float(distance), gsfe_meV=gsfe, binding_distances=[float(x) for x in d],
                          binding_meV=[float(v) for v in 1e3 * (eb - eb[k])], d_min=float(d[k]),
                          a0=a0)


def scan_comparison(calc: Calculator, frames: list[Atoms], configurations: dict[str, dict]) -> list[dict]:
    """Model against DFT on registry-scan frames, energies relative to AB at the same distance.

    Args:
        calc: an ASE calculator.
        frames: dataset frames (``info["config"]`` names the configuration) with DFT energies/forces.
        configurations: the dataset's ``metadata.json["configurations"]``; frames whose sampling
            parameters carry ``scan: true`` (``wander dft scan``) are compared.

    Returns:
        One row per frame: shift, distance, ``dft_meV`` and ``model_meV`` (E - E(AB), per cell), and
        the largest in-plane layer force of DFT and model (meV/Angstrom per atom, top layer mean).
    """
    rows = []
    groups: dict[float, list[Atoms]] = {}
    for f in frames:
        params = configurations.get(str(f.info.get("config")), {}).get("params", {})
        if params.get("scan"):
            f.info["scan_shift"] = params["shift"]
            groups.setdefault(round(float(params["distance"]), 4), []).append(f)
    for d, fs in sorted(groups.items()):
        ab = [f for f in fs if np.allclose(np.mod(f.info["scan_shift"], 1.0), NAMED_SHIFTS["AB"], atol=1e-6)]
        if not ab:
            continue
        e_dft_ab = ab[0].get_potential_energy()
        e_mod_ab = _energy(calc, ab[0])
        for f in fs:
            top = np.asarray(f.arrays["layer"]) == 1
            g = f.copy()
            g.calc = calc
            f_mod = g.get_forces()
            f_dft = f.get_forces()
            rows.append({"distance": d, "shift": [float(x) for x in f.info["scan_shift"]],
                         "dft_meV": 1e3 * (f.get_potential_energy() - e_dft_ab),
                         "model_meV": 1e3 * (g.get_potential_energy() - e_mod_ab),
                         "dft_layer_force_meV_A": 1e3 * float(np.linalg.norm(f_dft[top, :2].mean(axis=0))),
                         "model_layer_force_meV_A": 1e3 * float(np.linalg.norm(f_mod[top, :2].mean(axis=0)))})
    return rows


def gsfe_path(calc: Calculator, material: str, distance: float, npoints: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Model energy (meV per cell, relative to AB) along the diagonal shift (s, s), s in [0, 1/2]."""
    s = np.linspace(0.0, 0.5, npoints)
    e = np.array([_energy(calc, build_bilayer(material, shift=(x, x), distance=distance)) for x in s])
    e_ab = _energy(calc, build_bilayer(material, shift=NAMED_SHIFTS["AB"], distance=distance))
    return s, 1e3 * (e - e_ab)


def plot_stacking(calc: Calculator, material: str, rows: list[dict], path, distances=None) -> None:
    """GSFE along AA (s = 0) -> AB (1/3) -> SP (1/2): model curves and DFT scan points per distance."""
    import matplotlib.pyplot as plt

    ds = sorted({r["distance"] for r in rows}) if distances is None else list(distances)
    if not ds:
        ds = [3.5]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for k, d in enumerate(ds):
        colour = f"C{k}"
        s, e = gsfe_path(calc, material, d)
        ax.plot(s, e, color=colour, label=f"model, d = {d:.2f} A")
        pts = [r for r in rows if r["distance"] == d and np.isclose(r["shift"][0], r["shift"][1])]
        if pts:
            ax.plot([r["shift"][0] for r in pts], [r["dft_meV"] for r in pts], "o", color=colour,
                    label=f"DFT, d = {d:.2f} A")
    for x, name in ((0, "AA"), (1 / 3, "AB"), (0.5, "SP")):
        ax.axvline(x, color="0.8", lw=0.8, zorder=0)
        ax.text(x, 1.0, name, transform=ax.get_xaxis_transform(), ha="center", va="bottom")
    ax.set_xlabel("top-layer shift (s, s), fractions of the primitive cell")
    ax.set_ylabel("E - E(AB) (meV per 4-atom cell)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
