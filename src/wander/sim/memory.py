"""Memory estimates for large runs, and refusal of runs that cannot fit.

:func:`estimate_memory` predicts the bytes of every stage of a relax -> Hamiltonian -> solve run from
the structure alone (atom count, cell area, layer planes) and the model / solver settings, before
anything large is allocated. :func:`check_memory` compares the peak with ``MemAvailable`` from
``/proc/meminfo`` and raises :class:`InsufficientMemoryError` with the breakdown when it does not fit.

The per-item costs below are what the implementations in this package allocate (numpy / torch
float64), rounded up; they are estimates, good to a factor of about 1.5, not guarantees.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

__all__ = [
    "InsufficientMemoryError",
    "MemoryEstimate",
    "available_memory",
    "check_memory",
    "estimate_memory",
    "format_bytes",
    "neighbors_per_atom",
    "peak_rss",
]

#: bytes per directed pair while matscipy builds the list (i, j, S int64, the sort and the copies)
NL_BUILD_BYTES_PER_PAIR = 72
#: bytes per directed pair of the compact list kept during the run (int32 j, int8 S, sorted by i)
NL_KEEP_BYTES_PER_PAIR = 7
#: bytes per stored (half) hopping of the COO list: R 3 x int64, i, j int64, t complex128
COO_BYTES_PER_HOPPING = 56
#: bytes per half-stored atom pair of the ML predictor's pair list (i, j, R int64, category, distance)
PAIR_LIST_BYTES_PER_PAIR = 56
#: bytes per atom of the ML heads besides the descriptors (equivariant density, species, layers)
HEADS_BYTES_PER_ATOM = 800
#: the ML heads' features, blocks and products of one chunk of pairs (50,000 pairs, both directions)
HEADS_CHUNK_BYTES = 600 * 2**20
#: bytes per non-zero of a complex128 CSR H(k) (value + int32/int64 index) with assembly temporaries
CSR_BYTES_PER_NNZ = 40
#: SuperLU fill per orbital of a 2D moire pz Hamiltonian at n = 1e5 (measured: 124 M at 100 352)
LU_FILL_PER_ROW_1E5 = 1240.0
#: KPM: vectors alive at once (three-term recursion, block of random vectors, work)
KPM_VECTORS = 12
#: interlayer term reaching beyond the descriptor: per list pair of a chunk (edge vectors and their
#: gradient, indices, masks) and per pair beyond the descriptor's cutoff (normal projectors gathered at
#: both ends and the autograd record of the pair energy); together about 0.7 GiB (peak RSS against the
#: same model with a 6 A term) against 1.0 GiB estimated
#: for the 11,908-atom 1.05 deg cell (10 A term, 6 A descriptor, chunks of 8,192 atoms)
TERM_LIST_BYTES_PER_PAIR = 120
TERM_BYTES_PER_PAIR = 600


class InsufficientMemoryError(MemoryError):
    """A run would need more memory than is available; the message lists the estimate."""


def format_bytes(n: float) -> str:
    """Human-readable size (binary prefixes)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024.0
    return f"{n:.2f} TiB"  # pragma: no cover


def available_memory(meminfo: str = "/proc/meminfo") -> int:
    """``MemAvailable`` in bytes (falls back to free physical pages where /proc/meminfo is absent)."""
    try:
        with open(meminfo) as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def peak_rss() -> int:
    """Peak resident set size of this process so far, bytes (Linux ``ru_maxrss`` is in KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def neighbors_per_atom(atoms: Atoms, cutoff: float) -> float:
    """Expected number of neighbours within ``cutoff`` (Angstrom) per atom, from densities alone.

    For a 2D system (pbc ``(T, T, False)``) atoms are grouped into planes by rounding z to 0.5 Angstrom;
    a plane of areal density ``sigma`` at height difference ``dz`` contributes
    ``pi (cutoff^2 - dz^2) sigma``. Otherwise the mean 3D density times the sphere volume is used.
    """
    n = len(atoms)
    if n == 0:
        return 0.0
    cell = np.array(atoms.cell)
    if tuple(atoms.pbc) == (True, True, False):
        area = float(np.linalg.norm(np.cross(cell[0], cell[1])))
        z = np.round(atoms.positions[:, 2] * 2.0) / 2.0
        planes, counts = np.unique(z, return_counts=True)
        sigma = counts / area                                      # (P,) atoms / Angstrom^2
        dz2 = (planes[:, None] - planes[None, :]) ** 2
        per_plane = np.pi * np.clip(cutoff ** 2 - dz2, 0.0, None) @ sigma   # (P,) neighbours
        return float((per_plane * counts).sum() / n)
    volume = abs(float(np.linalg.det(cell)))
    if volume <= 0:
        return float(n - 1)
    return float(n / volume * 4.0 / 3.0 * np.pi * cutoff ** 3)


@dataclass
class MemoryEstimate:
    """Estimated bytes per item, grouped into the stages of a run (stages run one after the other).

    ``stages[name]`` maps item names to bytes; the peak is the largest stage total.
    """

    stages: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: dict[str, float] = field(default_factory=dict)

    def stage_total(self, name: str) -> int:
        return int(sum(self.stages[name].values()))

    @property
    def peak(self) -> int:
        return max((self.stage_total(s) for s in self.stages), default=0)

    def to_dict(self) -> dict[str, object]:
        return {"stages": self.stages, "peak_bytes": self.peak, **self.notes}

    def report(self) -> str:
        lines = ["memory estimate:"]
        for name, items in self.stages.items():
            lines.append(f"  {name:<12s} {format_bytes(self.stage_total(name)):>12s}")
            for item, b in items.items():
                lines.append(f"    {item:<32s} {format_bytes(b):>12s}")
        lines.append(f"  {'peak':<12s} {format_bytes(self.peak):>12s}")
        return "\n".join(lines)


def estimate_memory(
    atoms: Atoms,
    model_cutoff: float = 6.0,
    descriptor_neurons: tuple[int, ...] = (25, 50, 100),
    fitting_neurons: tuple[int, ...] = (240, 240, 240),
    axis_neuron: int = 16,
    chunk_atoms: int = 8192,
    relax: bool = True,
    orbitals_per_atom: float = 1.0,
    hopping_cutoff: float = 6.0,
    solver: str = "auto",
    n_bands: int = 8,
    dense_limit: int = 6000,
    workers: int = 1,
    descriptor_dim: int | None = None,
    band_kpoints: int = 0,
    descriptor_cutoff: float | None = None,
) -> MemoryEstimate:
    """Estimate the memory of relaxing ``atoms`` and solving its tight-binding Hamiltonian.

    Parameters
    ----------
    atoms
        The structure (only counts, cell and z planes are used).
    model_cutoff, descriptor_neurons, fitting_neurons, axis_neuron, chunk_atoms
        Force-field settings (``rcut``, embedding widths, fitting widths, ``axis_neuron``, chunk size).
    relax
        Whether the force-field stage runs.
    orbitals_per_atom
        Mean Wannier orbitals per atom (1 for pz graphene).
    hopping_cutoff
        Longest hopping of the Hamiltonian, Angstrom.
    solver
        ``"dense"`` (eigh of the full H(k)), ``"shift-invert"`` (sparse LU + Lanczos), ``"kpm"``
        (matrix-vector products only) or ``"auto"`` (dense up to ``dense_limit`` orbitals, else
        shift-invert up to 5e4, else KPM).
    n_bands
        Eigenpairs requested from the sparse solver.
    workers
        Processes solving k-points at the same time (each holds its own factorisation).
    descriptor_dim
        Width of the shared descriptor when the Hamiltonian comes from ML heads (their descriptors,
        pair list and chunk features are added to the Hamiltonian stage); None for a two-centre model.
    descriptor_cutoff
        The descriptor's own ``rcut`` when the neighbour list reaches farther (``model_cutoff`` is then
        an interlayer term's ``r_off``): only the pairs inside it go through the embedding nets, and the
        term's interlayer pairs get their own line. None: the same as ``model_cutoff``.
    band_kpoints
        k-points whose band-state densities ``|psi|^2`` (``n_bands`` per k, float32) are kept for maps
        (``wander run``: the path points, twice with the rigid comparison).
    """
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    n = len(atoms)
    est = MemoryEstimate()
    base = {"structure arrays": int(n * 3 * 8 * 6 + n * 64)}
    if relax:
        k = max(neighbors_per_atom(atoms, model_cutoff), 1.0)
        pairs = n * k
        ng = descriptor_neurons[-1]
        per_edge = 8 * (2 * sum(descriptor_neurons) + ng + 40)   # measured ~3.8 kB/edge for (25, 50, 100)
        chunk = min(chunk_atoms, n)
        per_atom = 8 * (3 * (ng * axis_neuron + sum(fitting_neurons)) + 2 * 4 * ng)
        est.stages["neighbours"] = {**base, "neighbour list build": int(pairs * NL_BUILD_BYTES_PER_PAIR)}
        k_desc = k if descriptor_cutoff is None or descriptor_cutoff >= model_cutoff else \
            max(neighbors_per_atom(atoms, descriptor_cutoff), 1.0)
        est.stages["force field"] = {
            **base,
            "neighbour list (compact)": int(pairs * NL_KEEP_BYTES_PER_PAIR + 8 * n),
            "descriptor chunk (autograd)": int(chunk * k_desc * per_edge + chunk * per_atom),
            "optimizer state": int(n * 3 * 8 * 4),
        }
        if k_desc < k:  # the chunk's edge vectors and masks over the whole list, the term's pairs with autograd
            est.stages["force field"]["interlayer term chunk (autograd)"] = int(
                chunk * k * TERM_LIST_BYTES_PER_PAIR + chunk * (k - k_desc) * TERM_BYTES_PER_PAIR)
        est.notes["neighbors_per_atom"] = k
    n_orb = int(round(n * orbitals_per_atom))
    kh = max(neighbors_per_atom(atoms, hopping_cutoff), 1.0)
    hop_pairs = n * kh * orbitals_per_atom ** 2
    n_hop = int(hop_pairs / 2 + n_orb)
    nnz = int(2 * n_hop)
    est.stages["hamiltonian"] = {
        **base,
        "hamiltonian neighbour list": int(n * kh * NL_BUILD_BYTES_PER_PAIR),
        "hoppings (COO, half)": int(n_hop * COO_BYTES_PER_HOPPING),
    }
    if descriptor_dim is not None:
        est.stages["hamiltonian"].update({
            "descriptors (float64)": int(n * int(descriptor_dim) * 8),
            "pair list (half)": int((n * kh / 2 + n) * PAIR_LIST_BYTES_PER_PAIR),
            "heads: per-atom features": int(n * HEADS_BYTES_PER_ATOM),
            "heads: one chunk of pairs": int(min(HEADS_CHUNK_BYTES, (n * kh + n) * 6000)),
        })
    if solver == "auto":
        solver = "dense" if n_orb <= dense_limit else ("shift-invert" if n_orb <= 50000 else "kpm")
    if solver not in ("dense", "shift-invert", "kpm"):
        raise ValueError(f"solver must be 'auto', 'dense', 'shift-invert' or 'kpm', got {solver!r}")
    solve = {**base, "hoppings (COO, half)": int(n_hop * COO_BYTES_PER_HOPPING),
             "H(k) CSR": int(nnz * CSR_BYTES_PER_NNZ)}
    if solver == "dense":
        solve["dense H(k) + eigenvectors + workspace"] = int(3.5 * 16 * n_orb ** 2)
    elif solver == "shift-invert":
        fill = LU_FILL_PER_ROW_1E5 * n_orb * np.sqrt(max(n_orb, 1) / 1e5)
        solve["sparse LU fill" + (f" x {workers} workers" if workers > 1 else "")] = int(16 * fill * workers)
        solve["Lanczos basis" + (f" x {workers}" if workers > 1 else "")] = int(
            16 * n_orb * max(2 * n_bands + 1, 20) * 2 * workers)
    else:
        solve["KPM vectors"] = int(16 * n_orb * KPM_VECTORS)
    if band_kpoints and solver != "kpm":
        solve["band-state densities"] = int(4 * n_orb * n_bands * int(band_kpoints))
    est.stages["solver"] = solve
    est.notes.update(n_atoms=n, n_orbitals=n_orb, hamiltonian_nnz=nnz, solver=solver)  # type: ignore[dict-item]
    return est


def check_memory(estimate: MemoryEstimate, available: int | None = None, fraction: float = 0.9) -> int:
    """Raise :class:`InsufficientMemoryError` when the estimated peak exceeds ``fraction`` of ``available``.

    ``available`` defaults to :func:`available_memory`. Returns the available bytes.
    """
    avail = available_memory() if available is None else int(available)
    if estimate.peak > fraction * avail:
        raise InsufficientMemoryError(
            f"this run needs about {format_bytes(estimate.peak)} but only {format_bytes(avail)} is available "
            f"(MemAvailable; limit {fraction:.0%} of it). Use a smaller system, a smaller chunk size, or the KPM "
            f"solver, or run on a machine with more memory.\n{estimate.report()}"
        )
    return avail
