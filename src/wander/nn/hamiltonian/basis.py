"""Orbital basis of the Hamiltonian heads and the one conversion between orbital conventions.

Wannier90 real orbitals (user guide, Table 3.1), for a unit vector ``(x, y, z)``::

    s                      1 / sqrt(4 pi)
    pz, px, py             sqrt(3 / 4 pi) * (z, x, y)
    dz2                    sqrt(5 / 16 pi) * (3 z^2 - 1)
    dxz, dyz               sqrt(15 / 4 pi) * (x z, y z)
    dx2-y2                 sqrt(15 / 16 pi) * (x^2 - y^2)
    dxy                    sqrt(15 / 4 pi) * x y

The model works in e3nn's real spherical-harmonic basis (``e3nn.o3.spherical_harmonics`` called
with Cartesian ``(x, y, z)``; e3nn 0.6 uses y as its polar axis). For e3nn 0.6 the l = 1 components
are ``(x, y, z)`` and the l = 2 components are, up to normalisation,
``(x z, x y, y^2 - (x^2 + z^2) / 2, y z, (z^2 - x^2) / 2)``. :func:`w90_from_e3nn` holds the
orthogonal matrices ``C_l`` with ``w90 = C_l @ e3nn`` (both orthonormal on the sphere); every
conversion in the package goes through it.

A block ``H_ij`` between shells l_i and l_j then transforms under a rotation (or improper rotation)
``Q`` of the structure as ``H_ij -> D_i(Q) H_ij D_j(Q)^T`` with ``D_l = C_l D_l^{e3nn}(Q) C_l^T``
(:func:`wigner_w90`), parity ``(-1)^l`` included.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch

__all__ = [
    "SHELL_LABELS",
    "LABEL_LM",
    "OrbitalBasis",
    "Shell",
    "default_dtype",
    "w90_from_e3nn",
    "wigner_w90",
]

#: Wannier90 orbital names of each full shell, in Wannier90 order.
SHELL_LABELS: dict[int, tuple[str, ...]] = {
    0: ("s",),
    1: ("pz", "px", "py"),
    2: ("dz2", "dxz", "dyz", "dx2-y2", "dxy"),
}
_SHELL_LETTERS = {"s": 0, "p": 1, "d": 2}

#: Orbital name -> (l, index of the orbital within its Wannier90 shell).
LABEL_LM: dict[str, tuple[int, int]] = {
    name: (l, m) for l, names in SHELL_LABELS.items() for m, name in enumerate(names)
}

_S3 = np.sqrt(3.0) / 2.0
# rows: Wannier90 orbitals of the shell; columns: e3nn components (e3nn 0.6, input (x, y, z)).
_C = {
    0: np.array([[1.0]]),
    1: np.array([[0.0, 0.0, 1.0],          # pz = e3nn z
                 [1.0, 0.0, 0.0],          # px = e3nn x
                 [0.0, 1.0, 0.0]]),        # py = e3nn y
    2: np.array([[0.0, 0.0, -0.5, 0.0, _S3],    # dz2
                 [1.0, 0.0, 0.0, 0.0, 0.0],     # dxz
                 [0.0, 0.0, 0.0, 1.0, 0.0],     # dyz
                 [0.0, 0.0, -_S3, 0.0, -0.5],   # dx2-y2
                 [0.0, 1.0, 0.0, 0.0, 0.0]]),   # dxy
}


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Temporarily set torch's default dtype (e3nn computes its constants in the default dtype)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def w90_from_e3nn(l: int) -> np.ndarray:
    """Orthogonal ``(2l+1, 2l+1)`` matrix ``C_l``: Wannier90 orbitals = ``C_l @`` e3nn harmonics.

    Holds for any common normalisation of both (the matrix is orthogonal). ``l`` in {0, 1, 2}.
    """
    if l not in _C:
        raise ValueError(f"orbital angular momentum l={l} is not supported (only s, p, d)")
    return _C[l].copy()


def wigner_w90(l: int, rotation: torch.Tensor) -> torch.Tensor:
    """Real Wigner matrix of shell ``l`` in Wannier90 order, ``(2l+1, 2l+1)``.

    ``rotation`` is a (3, 3) orthogonal matrix acting on Cartesian column vectors (``x -> Q x``);
    improper matrices (det = -1) include the orbital parity ``(-1)^l``. Orbitals rotate as
    ``w(Q^{-1} r)`` -> coefficients ``c -> D c``, so a block ``H_ij`` of a rotated structure is
    ``D_{l_i} H_ij D_{l_j}^T``.
    """
    from e3nn import o3

    q = torch.as_tensor(rotation)
    if q.shape != (3, 3):
        raise ValueError(f"rotation must be (3, 3), got {tuple(q.shape)}")
    eye = torch.eye(3, dtype=q.dtype)
    if not torch.allclose(q @ q.T, eye, atol=1e-6):
        raise ValueError("rotation must be an orthogonal matrix")
    with default_dtype(torch.float64):
        d = o3.Irrep(l, (-1) ** l).D_from_matrix(q.to(torch.float64)).to(q.dtype)
    c = torch.as_tensor(w90_from_e3nn(l), dtype=q.dtype)
    return c @ d @ c.T


@dataclass(frozen=True)
class Shell:
    """Orbitals of one angular momentum on one element.

    Attributes
    ----------
    l : int
        Angular momentum.
    components : tuple of int
        Indices (within the full Wannier90 shell) of the orbitals present, e.g. ``(0,)`` for pz only.
    positions : tuple of int
        Where those orbitals sit in the atom's orbital list.
    """

    l: int
    components: tuple[int, ...]
    positions: tuple[int, ...]

    @property
    def complete(self) -> bool:
        return len(self.components) == 2 * self.l + 1


def _expand(spec: str | Sequence[str], element: str) -> tuple[str, ...]:
    tokens = [spec] if isinstance(spec, str) else list(spec)
    labels: list[str] = []
    for tok in tokens:
        if not isinstance(tok, str):
            raise TypeError(f"{element}: orbital names must be strings, got {tok!r}")
        t = tok.strip()
        if t in _SHELL_LETTERS:
            labels.extend(SHELL_LABELS[_SHELL_LETTERS[t]])
        elif t in LABEL_LM:
            labels.append(t)
        else:
            raise ValueError(
                f"{element}: unknown orbital {tok!r}; use a shell letter (s, p, d) or a Wannier90 "
                f"name {sorted(LABEL_LM)}"
            )
    if not labels:
        raise ValueError(f"{element}: no orbitals given")
    if len(set(labels)) != len(labels):
        raise ValueError(f"{element}: orbitals repeated in {labels}")
    canonical = sorted(labels, key=lambda s: LABEL_LM[s])
    if labels != canonical:
        raise ValueError(f"{element}: orbitals must follow Wannier90 order {canonical}, got {labels}")
    return tuple(labels)


class OrbitalBasis:
    """Orbitals of every element, in Wannier90 order.

    Parameters
    ----------
    orbitals
        ``{element: spec}`` where ``spec`` is a shell letter (``"d"``), a Wannier90 name
        (``"pz"``) or a sequence of either (``["s", "p"]``, ``["pz"]``). Orbitals must be listed in
        Wannier90 order (s; pz, px, py; dz2, dxz, dyz, dx2-y2, dxy); shells may be incomplete.

    Examples
    --------
    >>> b = OrbitalBasis({"Mo": "d", "S": "p", "C": "pz"})
    >>> b.labels("C"), b.n_orbitals("Mo"), b.max_orbitals
    (('pz',), 5, 5)
    """

    def __init__(self, orbitals: Mapping[str, str | Sequence[str]]) -> None:
        if not orbitals:
            raise ValueError("OrbitalBasis needs at least one element")
        self._labels = {str(el): _expand(spec, str(el)) for el, spec in orbitals.items()}
        self._shells: dict[str, tuple[Shell, ...]] = {}
        for el, labels in self._labels.items():
            shells = []
            for l in sorted({LABEL_LM[s][0] for s in labels}):
                pos = tuple(k for k, s in enumerate(labels) if LABEL_LM[s][0] == l)
                shells.append(Shell(l, tuple(LABEL_LM[labels[k]][1] for k in pos), pos))
            self._shells[el] = tuple(shells)

    # ------------------------------------------------------------------ queries
    @property
    def elements(self) -> tuple[str, ...]:
        return tuple(self._labels)

    def labels(self, element: str) -> tuple[str, ...]:
        """Wannier90 names of the orbitals of ``element``, in order."""
        return self._labels[self._check(element)]

    def n_orbitals(self, element: str) -> int:
        return len(self._labels[self._check(element)])

    def shells(self, element: str) -> tuple[Shell, ...]:
        """Shells of ``element`` in increasing l."""
        return self._shells[self._check(element)]

    @property
    def max_orbitals(self) -> int:
        """Largest orbital count of any element (the padded block size ``M``)."""
        return max(len(v) for v in self._labels.values())

    @property
    def lmax(self) -> int:
        return max(sh.l for shells in self._shells.values() for sh in shells)

    def _check(self, element: str) -> str:
        if element not in self._labels:
            raise KeyError(f"element {element!r} has no orbitals in the basis {sorted(self._labels)}")
        return element

    # ------------------------------------------------------------------ per-structure tables
    def orbital_counts(self, symbols: Sequence[str]) -> np.ndarray:
        """Orbitals per atom, ``(n_atoms,)`` int64."""
        table = {el: len(v) for el, v in self._labels.items()}
        missing = sorted(set(symbols) - table.keys())
        if missing:
            raise ValueError(f"elements {missing} have no orbitals in the basis {sorted(table)}")
        return np.fromiter((table[s] for s in symbols), dtype=np.int64, count=len(symbols))

    def orbital_table(self, symbols: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Orbitals of a structure, grouped by atom in atom order.

        Returns
        -------
        orbital_atoms : (n_orb,) int64
            Host atom of every orbital.
        orbital_labels : (n_orb,) str
            Wannier90 name of every orbital.
        offsets : (n_atoms + 1,) int64
            Orbitals of atom ``a`` are ``offsets[a]:offsets[a + 1]``.
        """
        counts = self.orbital_counts(symbols)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        atoms = np.repeat(np.arange(len(symbols), dtype=np.int64), counts)
        local = np.arange(offsets[-1], dtype=np.int64) - offsets[atoms]
        padded = np.array([list(self._labels[el]) + [""] * (self.max_orbitals - len(self._labels[el]))
                           for el in self._labels], dtype=object)
        row = {el: k for k, el in enumerate(self._labels)}
        el_index = np.fromiter((row[s] for s in symbols), dtype=np.int64, count=len(symbols))
        labels = padded[el_index[atoms], local].astype(str) if len(atoms) else np.zeros(0, dtype=str)
        return atoms, labels, offsets

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, list[str]]:
        return {el: list(v) for el, v in self._labels.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[str]]) -> "OrbitalBasis":
        return cls(data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OrbitalBasis) and self._labels == other._labels

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._labels.items())))

    def __repr__(self) -> str:
        return f"OrbitalBasis({self.to_dict()})"
