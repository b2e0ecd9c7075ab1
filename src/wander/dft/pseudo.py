"""Pseudopotentials: Debian's files for C, B, N; Mo and S regenerated with ``ld1.x``.

The package ships the ``ld1.x`` generation inputs of the pslibrary 1.0.0 PAW
potentials it needs in ``wander/dft/pseudo/*.in``.  :func:`generate` runs
``ld1.x`` on one of them and then wraps over-long lines: QE 6.7's ``ld1.x``
writes numeric lines longer than 1024 characters, which QE 6.7's own UPF
reader rejects ("xmlr_opentag: severe error, line too long").

``pseudo_dir = "@wander_pseudo"`` in a preset means "the folder of regenerated
potentials": ``$WANDER_PSEUDO_DIR`` or ``~/.cache/wander/pseudo``, filled on
first use.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

__all__ = ["shipped_inputs", "generate", "wrap_long_lines", "resolve_pseudo_dir",
           "total_psenergy", "EXPECTED_TOTAL_PSENERGY"]

#: ``total_psenergy`` (Ry) of the regenerated files with QE 6.7's ``ld1.x``; a
#: regeneration that differs by more than 1e-4 Ry is rejected.  (The suggested
#: cutoffs ld1.x prints for Mo, 49 / 306 Ry, are pslibrary's published ones.)
EXPECTED_TOTAL_PSENERGY: dict[str, float] = {
    "Mo.pbe-spn-kjpaw_psl.1.0.0.UPF": -363.10123866002220,
    "S.pbe-n-kjpaw_psl.1.0.0.UPF": -65.992150284675574,
}

MAX_LINE = 200


def shipped_inputs() -> dict[str, Path]:
    """``{UPF file name: ld1.x input path}`` of the shipped generation inputs."""
    folder = resources.files("wander.dft") / "pseudo"
    out = {}
    for p in sorted(Path(str(folder)).glob("*.in")):
        m = re.search(r"file_pseudopw\s*=\s*'([^']+)'", p.read_text())
        if m:
            out[m.group(1)] = p
    return out


def wrap_long_lines(text: str, per_line: int = 4, max_len: int = MAX_LINE) -> str:
    """Rewrap purely numeric lines longer than ``max_len`` to ``per_line`` numbers each."""
    out = []
    for ln in text.splitlines():
        if len(ln) > max_len and re.fullmatch(r"[\s0-9eEdD+\-.]+", ln):
            nums = ln.split()
            out += ["  " + " ".join(nums[i:i + per_line]) for i in range(0, len(nums), per_line)]
        else:
            out.append(ln)
    return "\n".join(out) + "\n"


def total_psenergy(upf_text: str) -> float | None:
    """``total_psenergy`` (Ry) from a UPF v2 header, or None."""
    m = re.search(r'total_psenergy="\s*([-0-9.Ee+]+)"', upf_text)
    return float(m.group(1)) if m else None


def generate(upf_name: str, dest: str | os.PathLike, ld1: str = "ld1.x") -> Path:
    """Run ``ld1.x`` for one shipped input and write the wrapped UPF into ``dest``.

    Raises:
        ValueError: no shipped input for ``upf_name``, or ``total_psenergy`` differs
            from :data:`EXPECTED_TOTAL_PSENERGY` by more than 1e-4 Ry.
        RuntimeError: ``ld1.x`` failed.
    """
    inputs = shipped_inputs()
    if upf_name not in inputs:
        raise ValueError(f"no ld1.x input shipped for {upf_name}; have {sorted(inputs)}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(inputs[upf_name], Path(tmp) / "ld1.in")
        with open(Path(tmp) / "ld1.out", "w") as fh, open(Path(tmp) / "ld1.in") as fin:
            proc = subprocess.run([ld1], cwd=tmp, stdin=fin, stdout=fh, stderr=subprocess.STDOUT)
        upf = Path(tmp) / upf_name
        if proc.returncode != 0 or not upf.exists():
            log = (Path(tmp) / "ld1.out").read_text()[-2000:]
            raise RuntimeError(f"ld1.x failed for {upf_name}:\n{log}")
        text = wrap_long_lines(upf.read_text())
    e = total_psenergy(text)
    ref = EXPECTED_TOTAL_PSENERGY.get(upf_name)
    if ref is not None and (e is None or abs(e - ref) > 1e-4):
        raise ValueError(f"{upf_name}: total_psenergy {e} Ry differs from pslibrary's {ref} Ry")
    out = dest / upf_name
    tmpf = dest / f".{upf_name}.tmp{os.getpid()}"
    tmpf.write_text(text)
    os.replace(tmpf, out)
    return out


def resolve_pseudo_dir(pseudo_dir: str) -> str:
    """Real folder for a preset's ``pseudo_dir`` (generates ``@wander_pseudo`` on first use)."""
    if pseudo_dir != "@wander_pseudo":
        if not Path(pseudo_dir).is_dir():
            raise FileNotFoundError(f"pseudopotential folder {pseudo_dir} does not exist")
        return pseudo_dir
    dest = Path(os.environ.get("WANDER_PSEUDO_DIR", Path.home() / ".cache" / "wander" / "pseudo"))
    for name in shipped_inputs():
        if not (dest / name).exists():
            generate(name, dest)
    return str(dest)
