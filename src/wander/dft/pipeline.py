"""Run one configuration directory: SCF -> NSCF -> wannier90 -pp -> pw2wannier90 ->
wannier90 -> check bands -> quality gate.  A configuration whose ``params["labels"]`` is
``"forcefield"`` (``wander dft add``) runs the SCF only and keeps energy, forces and stress.

A configuration directory holds ``config.json`` (sampling parameters and the full
preset) and ``structure.extxyz``.  Each finished step leaves ``.done.<step>``; a
rerun skips finished steps, so a killed run resumes where it stopped.  The
outcome is ``status.json`` (``state`` is ``done``, ``failed`` or ``running``)
and, on success, ``result.json`` with the gate metrics.  Failures (SCF not
converged, program errors, failed gate) are recorded, and a failed
configuration is never collected into a dataset.  Large scratch files are
removed once the configuration is finished.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write

from wander.dft.presets import Preset, kgrid_for_cell
from wander.dft.pseudo import resolve_pseudo_dir
from wander.dft.qe_input import atomic_write_text, kgrid_full, write_pw_input
from wander.dft.qe_output import read_pw_output
from wander.dft.quality import (band_errors, centre_offsets, check_kpoints, evaluate_gate,
                                projectability_frozen_window, wannier_eigenvalues)
from wander.dft.wannier_input import (count_wann, num_excluded, set_frozen_window, write_pw2wan,
                                      write_win)
from wander.dft.wannier_output import (assign_orbitals, load_wsvec, read_amn_eig, read_nnkp_projections,
                                       read_wout)
from wander.io import read_hr

__all__ = ["Launcher", "StepError", "run_configuration", "write_configuration", "read_status",
           "forcefield_only", "steps_of", "STEPS", "FF_STEPS", "SEED", "PREFIX"]

STEPS = ("scf", "nscf", "wpp", "pw2wan", "w90", "check", "gate")
FF_STEPS = ("scf", "ffresult")  # params["labels"] == "forcefield": no Wannier step
LABELS = ("full", "forcefield")
SEED = "wan"
PREFIX = "pw"
SCRATCH = ("tmp", f"{SEED}.mmn", f"{SEED}.amn", f"{SEED}.chk", f"{SEED}.eig")


class StepError(RuntimeError):
    """A pipeline step failed; ``reason`` is a short machine-friendly tag."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class Launcher:
    """How executables are started.

    Attributes:
        mpi: MPI prefix, e.g. ``"mpirun -np 2"`` (empty for serial).
        npool: ``-nk`` pools for pw.x (k-point parallelism).
        nice: niceness (0 for none).
        bindir: folder of the executables ("" = search PATH).
    """

    mpi: str = "mpirun -np 2"
    npool: int = 2
    nice: int = 10
    bindir: str = ""

    @classmethod
    def from_env(cls) -> "Launcher":
        """Defaults overridden by ``WANDER_MPI``, ``WANDER_NPOOL``, ``WANDER_NICE``, ``WANDER_QE_BIN``."""
        return cls(mpi=os.environ.get("WANDER_MPI", "mpirun -np 2"),
                   npool=int(os.environ.get("WANDER_NPOOL", "2")),
                   nice=int(os.environ.get("WANDER_NICE", "10")),
                   bindir=os.environ.get("WANDER_QE_BIN", ""))

    def exe(self, name: str) -> str:
        return os.path.join(self.bindir, name) if self.bindir else name

    def run(self, argv: list[str], cwd: Path, stdout: str, parallel: bool = True) -> float:
        """Run ``argv`` in ``cwd`` with stdout to ``cwd/stdout``; returns wall seconds."""
        cmd = list(argv)
        if parallel and self.mpi:
            cmd = shlex.split(self.mpi) + cmd
        if self.nice:
            cmd = ["nice", "-n", str(self.nice)] + cmd
            _warn_autogroup()
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        t0 = time.time()
        with open(cwd / stdout, "w") as fh:
            proc = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        if proc.returncode != 0:
            raise StepError("program_error", f"{' '.join(cmd)} exited with {proc.returncode}; see "
                            f"{cwd / stdout}")
        return time.time() - t0


_AUTOGROUP = "/proc/sys/kernel/sched_autogroup_enabled"
_autogroup_warned = False


def _warn_autogroup(path: str = _AUTOGROUP) -> bool:
    """Warn once when Linux autogroup scheduling makes ``nice`` ineffective across sessions.

    With ``sched_autogroup_enabled = 1`` every session (each terminal, each ``setsid`` job) gets an
    equal share of the CPU, and niceness only orders processes inside one session: a niced DFT run
    started with ``setsid``/``nohup`` in its own session still takes half the cores from a
    foreground job.  Returns whether a warning was issued.
    """
    global _autogroup_warned
    if _autogroup_warned:
        return False
    try:
        with open(path) as fh:
            enabled = fh.read().strip() == "1"
    except OSError:
        return False
    _autogroup_warned = True
    if enabled:
        warnings.warn("Linux autogroup scheduling is on (" + path + " = 1): niceness only orders "
                      "processes inside one session, so this niced DFT run still gets an equal CPU "
                      "share against other sessions.  As root: echo 0 > " + path + " (or write a "
                      "niceness to /proc/<pid>/autogroup of the DFT session).", RuntimeWarning,
                      stacklevel=3)
    return enabled


def write_configuration(directory: str | os.PathLike, atoms: Atoms, params: dict, preset: Preset) -> Path:
    """Create a configuration directory (``config.json`` + ``structure.extxyz``).

    An existing directory keeps its files (it is never overwritten), so sampling
    twice with the same seed is harmless.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if not (d / "config.json").exists():
        write(d / ".structure.tmp.extxyz", atoms, format="extxyz")
        os.replace(d / ".structure.tmp.extxyz", d / "structure.extxyz")
        cfg = {"name": d.name, "params": params, "preset": preset.to_dict()}
        atomic_write_text(d / "config.json", json.dumps(cfg, indent=1) + "\n")
    return d


def forcefield_only(params: dict) -> bool:
    """Whether a configuration's ``params`` ask for force-field labels only (no Wannier run)."""
    labels = params.get("labels", "full")
    if labels not in LABELS:
        raise ValueError(f"params['labels'] must be one of {LABELS}, got {labels!r}")
    return labels == "forcefield"


def steps_of(params: dict) -> tuple[str, ...]:
    """The steps a configuration runs: :data:`STEPS`, or :data:`FF_STEPS` for force-field labels only."""
    return FF_STEPS if forcefield_only(params) else STEPS


def read_status(directory: str | os.PathLike) -> dict:
    """``status.json`` of a configuration (``{"state": "pending"}`` if none)."""
    p = Path(directory) / "status.json"
    if not p.exists():
        return {"state": "pending"}
    return json.loads(p.read_text())


def _set_status(d: Path, **kw) -> None:
    st = read_status(d)
    st.update(kw)
    st["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    atomic_write_text(d / "status.json", json.dumps(st, indent=1) + "\n")


def _load(d: Path) -> tuple[dict, Atoms, Preset]:
    if not (d / "config.json").exists():
        raise FileNotFoundError(f"{d}: no config.json (not a configuration directory)")
    cfg = json.loads((d / "config.json").read_text())
    atoms = read(d / "structure.extxyz", format="extxyz")
    preset = Preset.from_dict(cfg["preset"])
    preset.pw.pseudo_dir = resolve_pseudo_dir(preset.pw.pseudo_dir)
    preset.pw.kgrid = preset.scf_kgrid(atoms.cell[:])
    preset.wannier.kgrid = kgrid_for_cell(atoms.cell[:], preset.k_spacing)
    return cfg, atoms, preset


def _acquire_lock(d: Path) -> bool:
    lock = d / ".lock"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            pid = int(lock.read_text().strip() or 0)
            os.kill(pid, 0)
            return False  # another live process owns it
        except (ValueError, ProcessLookupError, PermissionError):
            lock.unlink(missing_ok=True)
            return _acquire_lock(d)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def run_configuration(directory: str | os.PathLike, launcher: Launcher | None = None, *,
                      retry_failed: bool = False, keep_scratch: bool = False) -> dict:
    """Run (or resume) one configuration; returns its final status dict.

    Already finished configurations return immediately; failed ones are skipped
    unless ``retry_failed`` (which clears the failed step's marker).
    """
    d = Path(directory)
    launcher = launcher or Launcher.from_env()
    status = read_status(d)
    if status.get("state") == "done":
        return status
    if status.get("state") == "failed" and not retry_failed:
        return status
    cfg, atoms, preset = _load(d)
    steps = steps_of(cfg["params"])
    if not _acquire_lock(d):
        return {"state": "locked"}
    if steps == STEPS and not (d / "tmp").exists() and not (d / ".done.pw2wan").exists():
        for step in STEPS:  # scratch is gone: later steps need the SCF charge density
            (d / f".done.{step}").unlink(missing_ok=True)
    try:
        _set_status(d, state="running", error=None, reason=None)
        timings = dict(status.get("timings", {}))
        for step in steps:
            if (d / f".done.{step}").exists():
                continue
            _set_status(d, step=step)
            t0 = time.time()
            _STEP_FUNCS[step](d, atoms, preset, launcher)
            timings[step] = round(time.time() - t0, 1)
            (d / f".done.{step}").touch()
            _set_status(d, timings=timings)
        if not keep_scratch:
            for name in SCRATCH:
                p = d / name
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        _set_status(d, state="done", step=None)
    except StepError as exc:
        _set_status(d, state="failed", reason=exc.reason, error=str(exc))
        if not keep_scratch:
            shutil.rmtree(d / "tmp", ignore_errors=True)
    finally:
        (d / ".lock").unlink(missing_ok=True)
    return read_status(d)


# ----------------------------------------------------------------------------- steps


def _nbnd(atoms: Atoms, preset: Preset) -> int:
    nw = count_wann(atoms, preset.wannier)
    n = int(np.ceil(preset.wannier.nbnd_per_atom * len(atoms)))
    return max(n, nw + num_excluded(atoms, preset.wannier) + 4)


def _step_scf(d: Path, atoms: Atoms, preset: Preset, launcher: Launcher) -> None:
    write_pw_input(d / "scf.in", atoms, preset.pw, "scf", prefix=PREFIX, outdir="./tmp")
    try:
        launcher.run([launcher.exe("pw.x"), "-nk", str(launcher.npool), "-in", "scf.in"], d, "scf.out")
    except StepError:
        out = read_pw_output(d / "scf.out") if (d / "scf.out").exists() else None
        if out is not None and out.n_scf_iterations and not out.converged:
            raise StepError("scf_not_converged", f"{d}: SCF not converged") from None
        raise
    out = read_pw_output(d / "scf.out")
    if not out.converged:
        raise StepError("scf_not_converged", f"{d}: SCF not converged after {out.n_scf_iterations} "
                        "iterations")
    if out.forces is None or out.stress is None or out.fermi_energy is None or out.energy is None:
        raise StepError("scf_incomplete", f"{d}: scf.out lacks energy, forces, stress or E_F")


def _kgrid(preset: Preset) -> np.ndarray:
    return kgrid_full(*preset.wannier.kgrid)


def _step_nscf(d: Path, atoms: Atoms, preset: Preset, launcher: Launcher) -> None:
    write_pw_input(d / "nscf.in", atoms, preset.pw, "nscf", prefix=PREFIX, outdir="./tmp",
                   kpoints=_kgrid(preset), nbnd=_nbnd(atoms, preset))
    launcher.run([launcher.exe("pw.x"), "-nk", str(launcher.npool), "-in", "nscf.in"], d, "nscf.out")
    out = read_pw_output(d / "nscf.out")
    if not out.job_done:
        raise StepError("nscf_incomplete", f"{d}: nscf run did not finish")


def _win(d: Path, atoms: Atoms, preset: Preset) -> None:
    ef = read_pw_output(d / "scf.out").fermi_energy
    nb = _nbnd(atoms, preset) - num_excluded(atoms, preset.wannier)
    write_win(d / f"{SEED}.win", atoms, preset.wannier, _kgrid(preset), num_bands=nb,
              fermi_energy=ef)


def _step_wpp(d: Path, atoms: Atoms, preset: Preset, launcher: Launcher) -> None:
    _win(d, atoms, preset)
    launcher.run([launcher.exe("wannier90.x"), "-pp", SEED], d, "wpp.log", parallel=False)
    write_pw2wan(d / "pw2wan.in", PREFIX, "./tmp", SEED)


def _step_pw2wan(d: Path, atoms: Atoms, preset: Preset, launcher: Launcher) -> None:
    launcher.run([launcher.exe("pw2wannier90.x"), "-in", "pw2wan.in"], d, "pw2wan.out")


def _step_w90(d: Path, atoms: Atoms, preset: Preset, launcher: Launcher) -> None:
    w = preset.wannier
    if w.projectability_frozen and w.froz_min_rel is not None and w.froz_max_rel is not None:
        ef = read_pw_output(d / "scf.out").fermi_energy
        p, e = read_amn_eig(d / f"{SEED}.amn", d / f"{SEED}.eig")
        lo, hi = projectability_frozen_window(p, e, ef, w.froz_min_rel, w.froz_max_rel)
        if hi - lo < 2 * preset.band_window_eV:
            raise StepError("frozen_window", f"{d}: frozen window [{lo - ef:.2f}, {hi - ef:.2f}] eV "
                            "around E_F is narrower than the checked window")
        win = d / f"{SEED}.win"
        atomic_write_text(win, set_frozen_window(win.read_text(), lo, hi))
        atomic_write_text(d / "frozen_window.json",
                          json.dumps({"dis_froz_min": lo, "dis_froz_max": hi,
                                      "rel_EF": [lo - ef, hi - ef]}) + "\n")
    launcher.run([launcher.exe("wannier90.x"), SEED], d, "w90.log", parallel=False)
    try:
        read_wout(d / f"{SEED}.wout")
    except ValueError as exc:
        raise StepError("wannier_failed", str(exc)) from None
    if not (d / f"{SEED}_hr.dat").exists():
        raise StepError("wannier_failed", f"{d}: no {SEED}_hr.dat")


def _step_check(d: Path, atoms: Atoms, preset: Preset, launcher: Launcher) -> None:
    k = check_kpoints()
    nb = count_wann(atoms, preset.wannier) + num_excluded(atoms, preset.wannier) + preset.check_bands_extra
    nb = max(nb, int(np.ceil(read_pw_output(d / "scf.out").nelec / 2)) + preset.check_bands_extra)
    write_pw_input(d / "check.in", atoms, preset.pw, "bands", prefix=PREFIX, outdir="./tmp",
                   kpoints=k, nbnd=nb)
    launcher.run([launcher.exe("pw.x"), "-nk", str(launcher.npool), "-in", "check.in"], d, "check.out")
    if read_pw_output(d / "check.out").eigenvalues is None:
        raise StepError("check_incomplete", f"{d}: check.out has no eigenvalues")


def _step_gate(d: Path, atoms: Atoms, preset: Preset, launcher: Launcher) -> None:
    scf = read_pw_output(d / "scf.out")
    chk = read_pw_output(d / "check.out")
    hr = read_hr(d / f"{SEED}_hr.dat")
    ws = load_wsvec(d / f"{SEED}_wsvec.dat")
    e_w = wannier_eigenvalues(hr, ws, check_kpoints())
    errs = band_errors(chk.eigenvalues, e_w, scf.fermi_energy)
    # reverse direction (each Wannier eigenvalue to the nearest DFT one): insensitive to DFT
    # states outside the Wannier manifold (e.g. sigma bands near E_F); recorded, not gated
    errs_w2d = band_errors(e_w, chk.eigenvalues, scf.fermi_energy)
    wout = read_wout(d / f"{SEED}.wout")
    proj, labels = read_nnkp_projections(d / f"{SEED}.nnkp")
    host = assign_orbitals(proj, atoms.get_scaled_positions(wrap=False))
    off = centre_offsets(wout.centres, atoms.positions, host, atoms.cell[:])
    gate = evaluate_gate(errs, wout.spreads, off, band_tol_meV=preset.band_tol_meV,
                         band_window_eV=preset.band_window_eV, spread_max=preset.spread_max,
                         centre_max=preset.centre_max)
    result = {"fermi_energy_eV": scf.fermi_energy, "energy_eV": scf.energy,
              "num_wann": hr.num_wann, "kgrid": list(preset.wannier.kgrid), "scf_kgrid": list(preset.pw.kgrid),
              "nbnd_nscf": _nbnd(atoms, preset), "omega_total_A2": wout.omega_total,
              "max_imag_H_eV": float(np.abs(hr.H.imag).max()),
              "frozen_window_rel_EF_eV": _frozen_rel(d, scf.fermi_energy),
              "band_errors_wannier_to_dft": errs_w2d,
              "check_unconverged_warnings": chk.unconverged_eigenvalue_warnings,
              "gate": gate.to_dict()}
    atomic_write_text(d / "result.json", json.dumps(result, indent=1) + "\n")
    if not gate.passed:
        raise StepError("quality_gate", f"{d}: " + "; ".join(gate.reasons))


def _step_ffresult(d: Path, atoms: Atoms, preset: Preset, launcher: Launcher) -> None:
    """``result.json`` of a force-field-only configuration (the SCF step already checked its output)."""
    scf = read_pw_output(d / "scf.out")
    result = {"fermi_energy_eV": scf.fermi_energy, "energy_eV": scf.energy, "scf_kgrid": list(preset.pw.kgrid),
              "max_force_eV_A": float(np.abs(scf.forces).max()), "labels": "forcefield"}
    atomic_write_text(d / "result.json", json.dumps(result, indent=1) + "\n")


def _frozen_rel(d: Path, ef: float) -> list[float]:
    vals = {}
    for ln in (d / f"{SEED}.win").read_text().splitlines():
        if ln.startswith("dis_froz_"):
            key, val = ln.split("=")
            vals[key.strip()] = float(val) - ef
    return [vals.get("dis_froz_min"), vals.get("dis_froz_max")]


_STEP_FUNCS = {"scf": _step_scf, "nscf": _step_nscf, "wpp": _step_wpp, "pw2wan": _step_pw2wan,
               "w90": _step_w90, "check": _step_check, "gate": _step_gate,
               "ffresult": _step_ffresult}
