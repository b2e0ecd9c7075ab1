"""Wannier90 ``.win`` files and ``pw2wannier90.x`` inputs.

The Wannier gauge used for learnable Hamiltonians is **projection-based in the
lab frame**: species projections with Wannier90's default axes (``C:pz``,
``Mo:d``, ``S:p``), disentanglement with a frozen window around E_F, and no (or
very few) maximal-localisation iterations.  Hopping signs and phases follow
Wannier90: ``H_mn(R) = <w_m,0|H|w_n,R>`` in eV, and with
``use_ws_distance = true`` each hopping is attached to its minimal-image vector.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from wander.dft.qe_input import atomic_write_text

__all__ = ["WannierSettings", "format_win", "write_win", "format_pw2wan", "write_pw2wan",
           "orbitals_per_atom", "count_wann", "set_frozen_window"]

# Number of Wannier functions of each angular-momentum projection name.
_PROJ_SIZE = {"s": 1, "p": 3, "d": 5, "pz": 1, "px": 1, "py": 1, "dz2": 1, "dxz": 1, "dyz": 1,
              "dx2-y2": 1, "dxy": 1, "sp2": 3, "sp3": 4}


@dataclass
class WannierSettings:
    """Wannier90 settings of one material.

    Attributes:
        projections: element -> projection list, e.g. ``{"C": "pz"}``,
            ``{"Mo": "d", "S": "p"}`` (Wannier90 syntax after the colon).
        nbnd_per_atom: bands computed by the NSCF step per atom (about 10 per C atom
            for 20 A of vacuum, so that the outer window contains the pi* band).
        exclude_bands_per_atom: element -> number of lowest (semicore) bands per atom
            to exclude, e.g. ``{"Mo": 4, "S": 1}``; empty for none.
        win_min_rel, win_max_rel: outer (disentanglement) window relative to E_F (eV).
        froz_min_rel, froz_max_rel: frozen window relative to E_F (eV).
        num_iter: maximal-localisation iterations (0 keeps the projected gauge).
        dis_num_iter: disentanglement iterations.
        kgrid: Wannier (= NSCF) grid.
        path: labels and fractional coordinates of the band path, used for
            ``bands_plot`` (may be empty).
        bands_num_points: Wannier90 points on the first path segment.
        projectability_frozen: shrink the frozen window after pw2wannier90 so that it holds
            no weakly projectable state (see ``quality.projectability_frozen_window``).
    """

    projections: dict[str, str]
    nbnd_per_atom: float = 10.0
    exclude_bands_per_atom: dict[str, int] = field(default_factory=dict)
    win_min_rel: float | None = -9.6
    win_max_rel: float | None = 16.0
    froz_min_rel: float | None = -3.0
    froz_max_rel: float | None = 3.0
    num_iter: int = 0
    dis_num_iter: int = 1000
    kgrid: tuple[int, int, int] = (9, 9, 1)
    path: list[tuple[str, tuple[float, float, float]]] = field(default_factory=list)
    bands_num_points: int = 20
    projectability_frozen: bool = False

    def to_dict(self) -> dict:
        return {
            "projections": dict(self.projections),
            "nbnd_per_atom": self.nbnd_per_atom,
            "exclude_bands_per_atom": dict(self.exclude_bands_per_atom),
            "outer_window_rel_EF_eV": [self.win_min_rel, self.win_max_rel],
            "frozen_window_rel_EF_eV": [self.froz_min_rel, self.froz_max_rel],
            "num_iter": self.num_iter,
            "dis_num_iter": self.dis_num_iter,
            "kgrid": list(self.kgrid),
            "guiding_centres": True,
            "use_ws_distance": True,
            "gauge": "projection-based, lab-frame default axes",
            "projectability_frozen": self.projectability_frozen,
        }


def orbitals_per_atom(projection: str) -> int:
    """Number of Wannier functions of one atom for a projection string like ``"d"`` or ``"s;p"``."""
    total = 0
    for part in projection.replace(",", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        if part not in _PROJ_SIZE:
            raise ValueError(f"unsupported projection {part!r}; known: {sorted(_PROJ_SIZE)}")
        total += _PROJ_SIZE[part]
    return total


def count_wann(atoms: Atoms, settings: WannierSettings) -> int:
    """Number of Wannier functions for ``atoms``."""
    n = 0
    for s in atoms.get_chemical_symbols():
        if s not in settings.projections:
            raise ValueError(f"no projection given for element {s}")
        n += orbitals_per_atom(settings.projections[s])
    return n


def num_excluded(atoms: Atoms, settings: WannierSettings) -> int:
    """Number of lowest bands excluded from the Wannierisation."""
    return int(sum(settings.exclude_bands_per_atom.get(s, 0) for s in atoms.get_chemical_symbols()))


def format_win(
    atoms: Atoms,
    settings: WannierSettings,
    kpoints: np.ndarray,
    *,
    num_bands: int,
    fermi_energy: float,
    bands_plot: bool = False,
) -> str:
    """Text of a Wannier90 ``.win`` file.

    Args:
        atoms: structure (Angstrom, cell rows).
        kpoints: (nk, 3) fractional NSCF grid in the NSCF order.
        num_bands: bands passed to Wannier90 (NSCF bands minus excluded bands).
        fermi_energy: E_F of the SCF step (eV); windows are placed relative to it.
        bands_plot: write ``seed_band.dat``/``seed_band.kpt`` along ``settings.path``.
    """
    num_wann = count_wann(atoms, settings)
    if num_bands < num_wann:
        raise ValueError(f"num_bands={num_bands} < num_wann={num_wann}")
    k = np.asarray(kpoints, dtype=float)
    n1, n2, n3 = settings.kgrid
    if k.shape != (n1 * n2 * n3, 3):
        raise ValueError(f"kpoints shape {k.shape} does not match mp_grid {settings.kgrid}")
    lines = [f"num_wann = {num_wann}", f"num_bands = {num_bands}"]
    nex = num_excluded(atoms, settings)
    if nex:
        lines.append(f"exclude_bands = 1-{nex}")
    if num_bands > num_wann:
        for key, rel in (("dis_win_min", settings.win_min_rel), ("dis_win_max", settings.win_max_rel),
                         ("dis_froz_min", settings.froz_min_rel),
                         ("dis_froz_max", settings.froz_max_rel)):
            if rel is not None:
                lines.append(f"{key} = {fermi_energy + rel:.6f}")
        lines.append(f"dis_num_iter = {settings.dis_num_iter}")
    lines += [
        f"num_iter = {settings.num_iter}",
        "guiding_centres = true",
        "use_ws_distance = true",
        "write_hr = true",
        "write_xyz = true",
        "translate_home_cell = false",
        f"fermi_energy = {fermi_energy:.6f}",
        "",
        "begin projections",
    ]
    for s in dict.fromkeys(atoms.get_chemical_symbols()):
        lines.append(f"{s}:{settings.projections[s]}")
    lines += ["end projections", "", "begin unit_cell_cart", "ang"]
    lines += [" ".join(f"{x:16.10f}" for x in row) for row in np.asarray(atoms.cell[:])]
    lines += ["end unit_cell_cart", "", "begin atoms_cart", "ang"]
    for s, p in zip(atoms.get_chemical_symbols(), atoms.positions):
        lines.append(f"{s} " + " ".join(f"{x:16.10f}" for x in p))
    lines += ["end atoms_cart", ""]
    if bands_plot and settings.path:
        lines += ["bands_plot = true", f"bands_num_points = {settings.bands_num_points}",
                  "begin kpoint_path"]
        for (l1, k1), (l2, k2) in zip(settings.path[:-1], settings.path[1:]):
            lines.append(f"{l1} {k1[0]:.8f} {k1[1]:.8f} {k1[2]:.8f}  "
                         f"{l2} {k2[0]:.8f} {k2[1]:.8f} {k2[2]:.8f}")
        lines += ["end kpoint_path", ""]
    lines += [f"mp_grid = {n1} {n2} {n3}", "", "begin kpoints"]
    lines += [f"{a:14.10f} {b:14.10f} {c:14.10f}" for a, b, c in k]
    lines.append("end kpoints")
    return "\n".join(lines) + "\n"


def write_win(path: str | os.PathLike, atoms: Atoms, settings: WannierSettings,
              kpoints: np.ndarray, **kwargs) -> None:
    """Write :func:`format_win` to ``path`` atomically."""
    atomic_write_text(path, format_win(atoms, settings, kpoints, **kwargs))


def format_pw2wan(prefix: str, outdir: str, seedname: str) -> str:
    """Text of a ``pw2wannier90.x`` input writing ``.amn``, ``.mmn`` and ``.eig``."""
    return (
        "&inputpp\n"
        f"  outdir = '{outdir}'\n"
        f"  prefix = '{prefix}'\n"
        f"  seedname = '{seedname}'\n"
        "  write_amn = .true.\n"
        "  write_mmn = .true.\n"
        "  write_unk = .false.\n"
        "/\n"
    )


def set_frozen_window(win_text: str, lo: float, hi: float) -> str:
    """``.win`` text with its ``dis_froz_min``/``dis_froz_max`` lines replaced (eV, absolute)."""
    if "dis_froz_min" not in win_text or "dis_froz_max" not in win_text:
        raise ValueError("the .win text has no frozen window to replace")
    out = []
    for ln in win_text.splitlines():
        if ln.startswith("dis_froz_min"):
            ln = f"dis_froz_min = {lo:.6f}"
        elif ln.startswith("dis_froz_max"):
            ln = f"dis_froz_max = {hi:.6f}"
        out.append(ln)
    return "\n".join(out) + "\n"


def write_pw2wan(path: str | os.PathLike, prefix: str, outdir: str, seedname: str) -> None:
    """Write :func:`format_pw2wan` to ``path`` atomically."""
    atomic_write_text(path, format_pw2wan(prefix, outdir, seedname))
