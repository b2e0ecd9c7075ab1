"""Material presets: DFT, Wannier90 and quality-gate settings per material.

A preset is turned into plain JSON and stored in every configuration directory
(``config.json``) when the configuration is sampled, so a run never depends on
the preset values of a later version of the code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from wander.dft.qe_input import PWSettings
from wander.dft.wannier_input import WannierSettings

__all__ = ["Preset", "PRESETS", "get_preset", "kgrid_for_cell", "DEBIAN_PSEUDO_DIR"]

DEBIAN_PSEUDO_DIR = "/usr/share/espresso/pseudo"


@dataclass
class Preset:
    """Everything needed to run one configuration of a material.

    Attributes:
        name: preset name (``"graphene"``, ``"mos2"``).
        pw: plane-wave settings; ``pw.kgrid`` is replaced per cell by :func:`kgrid_for_cell`.
        wannier: Wannier90 settings; ``wannier.kgrid`` likewise.
        k_spacing: target reciprocal-space spacing of the NSCF / Wannier grid (1/Angstrom,
            including the 2 pi), giving 9x9 for the graphene primitive cell; also of the SCF
            grid unless ``scf_k_spacing`` is set.
        scf_k_spacing: spacing of the SCF grid (energy, forces, stress, charge density) when it
            must be denser than the Wannier grid; ``None`` = ``k_spacing``.
        band_tol_meV: gate on the max Wannier-vs-DFT error within ``band_window_eV`` of E_F.
        band_window_eV: half-width of the checked energy window.
        spread_max: gate on the largest Wannier spread (Angstrom^2).
        centre_max: gate on the largest distance of a Wannier centre from its host atom (Angstrom).
        check_bands_extra: bands above the Wannier count computed in the check run.
    """

    name: str
    pw: PWSettings
    wannier: WannierSettings
    k_spacing: float
    band_tol_meV: float = 30.0
    band_window_eV: float = 1.0
    spread_max: float = 2.5
    centre_max: float = 0.5
    check_bands_extra: int = 8
    pseudo_sources: dict[str, str] = field(default_factory=dict)
    scf_k_spacing: float | None = None

    def scf_kgrid(self, cell: np.ndarray) -> tuple[int, int, int]:
        """SCF grid of ``cell`` (``scf_k_spacing``, else ``k_spacing``)."""
        return kgrid_for_cell(cell, self.scf_k_spacing if self.scf_k_spacing is not None else self.k_spacing)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "pw": self.pw.to_dict(),
            "wannier": self.wannier.to_dict() | {"path": [[lab, list(k)] for lab, k in self.wannier.path],
                                                 "bands_num_points": self.wannier.bands_num_points},
            "k_spacing": self.k_spacing,
            "band_tol_meV": self.band_tol_meV,
            "band_window_eV": self.band_window_eV,
            "spread_max": self.spread_max,
            "centre_max": self.centre_max,
            "check_bands_extra": self.check_bands_extra,
            "pseudo_sources": dict(self.pseudo_sources),
            "scf_k_spacing": self.scf_k_spacing,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Preset":
        p = d["pw"]
        pw = PWSettings(
            pseudopotentials=dict(p["pseudopotentials"]), pseudo_dir=p["pseudo_dir"],
            ecutwfc=p["ecutwfc_Ry"], ecutrho=p["ecutrho_Ry"], vdw_corr=p["vdw_corr"],
            smearing=p["smearing"], degauss=p["degauss_Ry"], conv_thr=p["conv_thr_Ry"],
            bands_conv_thr=p["bands_conv_thr_Ry"], mixing_beta=p["mixing_beta"],
            kgrid=tuple(p["kgrid"]), electron_maxstep=p["electron_maxstep"],
            extra_system=dict(p.get("extra_system", {})))
        w = d["wannier"]
        wan = WannierSettings(
            projections=dict(w["projections"]), nbnd_per_atom=w["nbnd_per_atom"],
            exclude_bands_per_atom={k: int(v) for k, v in w["exclude_bands_per_atom"].items()},
            win_min_rel=w["outer_window_rel_EF_eV"][0], win_max_rel=w["outer_window_rel_EF_eV"][1],
            froz_min_rel=w["frozen_window_rel_EF_eV"][0], froz_max_rel=w["frozen_window_rel_EF_eV"][1],
            num_iter=w["num_iter"], dis_num_iter=w["dis_num_iter"], kgrid=tuple(w["kgrid"]),
            path=[(lab, tuple(k)) for lab, k in w.get("path", [])],
            bands_num_points=w.get("bands_num_points", 20),
            projectability_frozen=bool(w.get("projectability_frozen", False)))
        return cls(name=d["name"], pw=pw, wannier=wan, k_spacing=d["k_spacing"],
                   band_tol_meV=d["band_tol_meV"], band_window_eV=d["band_window_eV"],
                   spread_max=d["spread_max"], centre_max=d["centre_max"],
                   check_bands_extra=d["check_bands_extra"],
                   pseudo_sources=dict(d.get("pseudo_sources", {})),
                   scf_k_spacing=d.get("scf_k_spacing"))


def kgrid_for_cell(cell: np.ndarray, k_spacing: float) -> tuple[int, int, int]:
    """Gamma-centred in-plane grid with spacing <= ``k_spacing`` (1/Angstrom incl. 2 pi).

    Args:
        cell: (3, 3) rows in Angstrom; the third vector is the vacuum direction (1 k-point).
    """
    if k_spacing <= 0:
        raise ValueError(f"k_spacing must be positive, got {k_spacing}")
    b = 2 * np.pi * np.linalg.inv(np.asarray(cell, dtype=float)).T
    n = [max(1, math.ceil(np.linalg.norm(b[i]) / k_spacing - 1e-6)) for i in (0, 1)]
    return (n[0], n[1], 1)


_HEX_PATH = [("G", (0.0, 0.0, 0.0)), ("M", (0.5, 0.0, 0.0)), ("K", (2 / 3, 1 / 3, 0.0)),
             ("G", (0.0, 0.0, 0.0))]


def _graphene() -> Preset:
    pw = PWSettings(pseudopotentials={"C": "C.pbe-n-kjpaw_psl.0.1.UPF"}, pseudo_dir=DEBIAN_PSEUDO_DIR,
                    ecutwfc=40.0, ecutrho=320.0, conv_thr=1e-9)
    wan = WannierSettings(projections={"C": "pz"}, nbnd_per_atom=10.0, win_min_rel=-9.6,
                          win_max_rel=16.0, froz_min_rel=-2.5, froz_max_rel=2.8, num_iter=0,
                          path=list(_HEX_PATH), bands_num_points=20, projectability_frozen=True)
    # 2.95 / 9 (graphene primitive |b|) -> 9x9 Wannier grid. The SCF runs on 18x18: stacking
    # energies need it (docs/dft.md), and on 9x9 / 10x10 the density of a rattled bilayer can come
    # out layer-polarised, shifting the two layers' onsite energies by up to 130 meV (rewannier.py)
    return Preset("graphene", pw, wan, k_spacing=0.33, scf_k_spacing=0.165, band_tol_meV=30.0,
                  band_window_eV=1.0, spread_max=2.0, centre_max=0.3,
                  pseudo_sources={"C": "Debian quantum-espresso-data 6.7-2"})


def _mos2() -> Preset:
    pw = PWSettings(pseudopotentials={"Mo": "Mo.pbe-spn-kjpaw_psl.1.0.0.UPF",
                                      "S": "S.pbe-n-kjpaw_psl.1.0.0.UPF"},
                    pseudo_dir="@wander_pseudo", ecutwfc=50.0, ecutrho=400.0, conv_thr=1e-8,
                    mixing_beta=0.4)
    # 4s4p semicore of Mo and 3s of S are excluded; 3 + 3 + ... bands per Mo/S above them
    wan = WannierSettings(projections={"Mo": "d", "S": "p"}, nbnd_per_atom=10.0,
                          exclude_bands_per_atom={"Mo": 4, "S": 1}, win_min_rel=None,
                          win_max_rel=None, froz_min_rel=-3.0, froz_max_rel=1.5, num_iter=0,
                          path=list(_HEX_PATH), bands_num_points=20)
    return Preset("mos2", pw, wan, k_spacing=0.26, band_tol_meV=30.0, band_window_eV=1.0,
                  spread_max=4.0, centre_max=0.5,
                  pseudo_sources={"Mo": "regenerated with ld1.x (pslibrary 1.0.0 input)",
                                  "S": "regenerated with ld1.x (pslibrary 1.0.0 input)"})


PRESETS = {"graphene": _graphene, "mos2": _mos2}


def get_preset(name: str) -> Preset:
    """Fresh preset object by name."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}") from None
