"""Shared helpers of the benchmark suite: timers, memory from /proc, machine info, child processes.

Every measurement that allocates much runs in a fresh child process (``run_child``), so its peak
resident memory is its own and a crash or a timeout only loses that figure.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
MARK = "@@BENCH-RESULT@@"


# ---------------------------------------------------------------------------- timing and memory
def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


class Timer:
    """Wall time (perf_counter) and CPU time of this process (process_time, all threads)."""

    def __enter__(self) -> "Timer":
        self.load_start = loadavg()
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._w
        self.cpu = time.process_time() - self._c
        self.load_end = loadavg()

    def as_dict(self) -> dict:
        return {"wall_s": self.wall, "cpu_s": self.cpu, "load": self.load_end}


def _status(key: str) -> int:
    """A ``VmXXX`` entry of /proc/self/status in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss() -> int:
    return _status("VmRSS")


def peak_rss() -> int:
    return _status("VmHWM")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); False where not supported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


@contextmanager
def measure(out: dict, key: str):
    """Time a block and record wall/CPU time, load and the peak RSS increase above the RSS at entry."""
    reset_peak()
    base = rss()
    t = Timer()
    with t:
        yield t
    out[key] = {**t.as_dict(), "peak_rss_bytes": peak_rss(), "peak_increase_bytes": max(0, peak_rss() - base)}


# ---------------------------------------------------------------------------- child processes
def run_child(module: str, func: str, kwargs: dict | None = None, *, python: str | None = None,
              threads: int = 1, timeout: float = 900) -> dict:
    """Run ``bench.<module>.<func>(**kwargs)`` in a fresh interpreter; returns its dict result.

    On failure the dict holds ``error`` (and the last lines of stderr) instead.
    """
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("MPLBACKEND", "Agg")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    cmd = [python or sys.executable, str(BENCH / "child.py"), module, func, json.dumps(kwargs or {})]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(ROOT))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(p.stdout.splitlines()):
        if line.startswith(MARK):
            res = json.loads(line[len(MARK):])
            res.setdefault("child_wall_s", time.perf_counter() - t0)
            return res
    tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-6:])
    return {"error": f"exit status {p.returncode}", "stderr_tail": tail}


# ---------------------------------------------------------------------------- machine / versions
def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {"cpu_model": cpu, "logical_cores": os.cpu_count(), "usable_cores": affinity,
            "memory_bytes": mem, "platform": platform.platform(), "hostname": platform.node()}


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("torch", "numpy", "scipy", "ase", "e3nn", "matscipy", "wander"):
        try:
            mod = __import__(name)
            out[name] = getattr(mod, "__version__", "?")
        except Exception:  # noqa: BLE001 - optional packages
            out[name] = None
    try:
        out["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                           text=True, timeout=10).stdout.strip() or None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        out["git_dirty"] = bool(dirty)
    except Exception:  # noqa: BLE001
        out["git_commit"] = None
    return out


def fit_exponent(n, t) -> float | None:
    """Slope of log(t) against log(n) (least squares); None with fewer than two valid points."""
    import numpy as np

    n, t = np.asarray(n, float), np.asarray(t, float)
    ok = (n > 0) & (t > 0) & np.isfinite(t)
    if ok.sum() < 2:
        return None
    return float(np.polyfit(np.log(n[ok]), np.log(t[ok]), 1)[0])


def fmt_bytes(b) -> str:
    if b is None:
        return "-"
    b = float(b)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(b) < 1024 or unit == "GiB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.2f} {unit}"
        b /= 1024
    return f"{b:.2f} GiB"


def ab_bilayer(n_atoms: int):
    """AB bilayer graphene of about ``n_atoms`` atoms (square repeat of the 4-atom cell), layer tags kept."""
    import math

    from wander.structures import bilayer

    m = max(1, round(math.sqrt(n_atoms / 4)))
    return bilayer("graphene", stacking="AB").repeat((m, m, 1))
