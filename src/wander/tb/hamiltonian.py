"""The immutable tight-binding Hamiltonian :class:`TBHamiltonian`.

Storage and gauges follow docs/conventions.md: one COO list of hoppings
``H_ij(R) = <w_i, 0 | H | w_j, R>`` holding half of the pairs (``R > 0`` lexicographically, or
``R = 0`` and ``i <= j``); the other half is ``H_ji(-R) = conj(H_ij(R))``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from wander.tb.bloch import BlochAssembler, check_k
from wander.tb.hoppings import canonicalize_hoppings, is_lower_half
from wander.tb.supercell import supercell_hoppings

__all__ = ["TBHamiltonian"]

_NPZ_FORMAT = 1


def _readonly(a: np.ndarray) -> np.ndarray:
    """A read-only array of ``a``: ``a`` itself when it is already read-only (nobody can change it
    through this name, and large Hamiltonians are not duplicated), else a read-only copy."""
    if isinstance(a, np.ndarray) and not a.flags.writeable:
        return a
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _orbital_positions(orbital_positions: np.ndarray) -> np.ndarray:
    pos = np.asarray(orbital_positions, dtype=float)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"orbital_positions must have shape (n_orb, 3), got {pos.shape}")
    return pos


def _check_hoppings(R: np.ndarray, i: np.ndarray, j: np.ndarray, t: np.ndarray, n: int,
                    pbc: tuple[bool, bool, bool]) -> tuple[bool, bool, bool]:
    """Index range, finite values and zero R along open axes of int64 / complex hoppings; returns
    ``pbc`` as three bools."""
    if len(i) and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= n):
        raise ValueError(f"orbital index out of range 0..{n - 1}")
    if not np.all(np.isfinite(t)):
        raise ValueError("hopping values must be finite")
    pbc = tuple(bool(p) for p in np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)))
    for axis in range(3):
        if not pbc[axis] and np.any(R[:, axis] != 0):
            bad = int(np.flatnonzero(R[:, axis] != 0)[0])
            raise ValueError(
                f"hopping {bad} has R={tuple(int(x) for x in R[bad])} along non-periodic direction {axis}"
            )
    return pbc


@dataclass(frozen=True, eq=False)
class TBHamiltonian:
    """Tight-binding Hamiltonian in an orthogonal Wannier basis.

    Build it with :meth:`from_hoppings`, :meth:`from_wannier90` or :meth:`load`; the arrays are
    read-only.

    Attributes
    ----------
    cell : (3, 3) float
        Cell vectors as rows, Angstrom.
    pbc : (bool, bool, bool)
        Periodic directions; hoppings have ``R = 0`` along non-periodic ones.
    orbital_positions : (n_orb, 3) float
        Cartesian orbital centres, Angstrom (used by the position gauge).
    orbital_atoms : (n_orb,) int
        Index of the host atom of each orbital.
    orbital_labels : (n_orb,) str
        Orbital names in Wannier90 notation (``"pz"``, ``"dxy"``, ...).
    R : (m, 3) int64
        Lattice vectors of the stored hoppings.
    i, j : (m,) int64
        Orbital indices.
    t : (m,) complex128
        Hopping values ``H_ij(R)``, eV. Onsite values are real.
    """

    cell: np.ndarray
    pbc: tuple[bool, bool, bool]
    orbital_positions: np.ndarray
    orbital_atoms: np.ndarray
    orbital_labels: np.ndarray
    R: np.ndarray
    i: np.ndarray
    j: np.ndarray
    t: np.ndarray
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cell = np.asarray(self.cell, dtype=float)
        if cell.shape != (3, 3) or not np.all(np.isfinite(cell)):
            raise ValueError(f"cell must be a finite (3, 3) array of row vectors, got shape {cell.shape}")
        if abs(np.linalg.det(cell)) < 1e-10:
            raise ValueError("cell is singular; give a non-zero out-of-plane vector for 2D systems")
        pbc = tuple(bool(p) for p in np.broadcast_to(np.asarray(self.pbc, dtype=bool), (3,)))
        pos = _orbital_positions(self.orbital_positions)
        n = len(pos)
        atoms = np.asarray(self.orbital_atoms, dtype=np.int64).reshape(-1)
        labels = np.asarray(self.orbital_labels, dtype=str).reshape(-1)
        if atoms.shape != (n,) or labels.shape != (n,):
            raise ValueError("orbital_atoms and orbital_labels need one entry per orbital")
        R = np.asarray(self.R, dtype=np.int64).reshape(-1, 3)
        i = np.asarray(self.i, dtype=np.int64).reshape(-1)
        j = np.asarray(self.j, dtype=np.int64).reshape(-1)
        t = np.asarray(self.t, dtype=np.complex128).reshape(-1)
        if not (len(R) == len(i) == len(j) == len(t)):
            raise ValueError("R, i, j and t must have the same length")
        if len(i) and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= n):
            raise ValueError(f"orbital index out of range 0..{n - 1}")
        if np.any(is_lower_half(R, i, j)):
            raise ValueError("hoppings are not in canonical half storage; build with TBHamiltonian.from_hoppings")
        for name, value in (
            ("cell", cell),
            ("pbc", pbc),
            ("orbital_positions", pos),
            ("orbital_atoms", atoms),
            ("orbital_labels", labels),
            ("R", R),
            ("i", i),
            ("j", j),
            ("t", t),
        ):
            object.__setattr__(self, name, value if name == "pbc" else _readonly(value))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_hoppings(
        cls,
        cell: np.ndarray,
        orbital_positions: np.ndarray,
        R: np.ndarray,
        i: np.ndarray,
        j: np.ndarray,
        t: np.ndarray,
        *,
        orbital_atoms: np.ndarray | None = None,
        orbital_labels: np.ndarray | None = None,
        pbc: tuple[bool, bool, bool] = (True, True, False),
        hermitian_tol: float = 1e-6,
    ) -> TBHamiltonian:
        """Build from any mix of the two halves of a hopping list.

        Parameters
        ----------
        cell : (3, 3) float
            Cell rows, Angstrom.
        orbital_positions : (n_orb, 3) float
            Cartesian, Angstrom.
        R : (m, 3) int
            Lattice vectors (integers; floats must be integral).
        i, j : (m,) int
            Orbital indices.
        t : (m,) complex
            ``H_ij(R)``, eV.
        orbital_atoms : (n_orb,) int, optional
            Defaults to ``arange(n_orb)``.
        orbital_labels : (n_orb,) str, optional
            Defaults to ``"?"``.
        pbc : 3 bools
        hermitian_tol : float, eV
            A pair given in both directions must satisfy ``t_ij(R) = conj(t_ji(-R))`` within
            this tolerance; it is then stored once. Same-direction repeats are summed.

        Raises
        ------
        ValueError
            Non-Hermitian pairs (naming the worst one), complex onsite energies, hoppings along a
            non-periodic direction, out-of-range indices, non-finite values.
        """
        pos = _orbital_positions(orbital_positions)
        n = len(pos)
        Rf = np.asarray(R)
        if Rf.size == 0:
            Rf = np.zeros((0, 3))
        Rf = Rf.reshape(-1, 3)
        if not np.all(np.isfinite(Rf)) or np.any(Rf != np.round(Rf)):
            raise ValueError("R must hold integer lattice vectors")
        R = np.round(Rf).astype(np.int64)
        i = np.asarray(i).reshape(-1)
        j = np.asarray(j).reshape(-1)
        t = np.asarray(t, dtype=np.complex128).reshape(-1)
        if not (len(R) == len(i) == len(j) == len(t)):
            raise ValueError(f"R, i, j, t lengths differ: {len(R)}, {len(i)}, {len(j)}, {len(t)}")
        if len(i) and (np.any(i != np.round(i)) or np.any(j != np.round(j))):
            raise ValueError("orbital indices must be integers")
        i, j = i.astype(np.int64), j.astype(np.int64)
        pbc = _check_hoppings(R, i, j, t, n, pbc)
        R, i, j, t = canonicalize_hoppings(R, i, j, t, n, hermitian_tol)
        return cls._assemble(cell, pbc, pos, orbital_atoms, orbital_labels, R, i, j, t)

    @classmethod
    def _assemble(cls, cell, pbc, pos, orbital_atoms, orbital_labels, R, i, j, t) -> TBHamiltonian:
        n = len(pos)
        atoms = np.arange(n) if orbital_atoms is None else orbital_atoms
        labels = np.full(n, "?") if orbital_labels is None else orbital_labels
        return cls(np.asarray(cell, dtype=float), pbc, pos, atoms, labels, R, i, j, t)

    @classmethod
    def from_half_hoppings(
        cls,
        cell: np.ndarray,
        orbital_positions: np.ndarray,
        R: np.ndarray,
        i: np.ndarray,
        j: np.ndarray,
        t: np.ndarray,
        *,
        orbital_atoms: np.ndarray | None = None,
        orbital_labels: np.ndarray | None = None,
        pbc: tuple[bool, bool, bool] = (True, True, False),
        hermitian_tol: float = 1e-6,
    ) -> TBHamiltonian:
        """Build from hoppings that are already in the stored half, each ``(R, i, j)`` once.

        The lean path of :meth:`from_hoppings` for large generated Hamiltonians (predicted by a
        model from a half-stored pair list): the arrays are checked (storage half, no repeated
        element, integer R, zero R along open axes, finite values, real onsite energies) but not
        merged, sorted or copied when they already have the stored dtypes (int64 R, i, j;
        complex128 t); they are made read-only, so the caller must not keep writing to them.

        Raises
        ------
        ValueError
            A hopping in the implied half, a repeated ``(R, i, j)``, or any check of
            :meth:`from_hoppings` failing.
        """
        from wander.tb.hoppings import pair_keys

        pos = _orbital_positions(orbital_positions)
        n = len(pos)

        def own(a: np.ndarray, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
            a = np.asarray(a, dtype=dtype)  # the caller's array itself when it has the dtype
            return a if a.ndim == len(shape) and a.shape[1:] == shape[1:] else a.reshape(shape)

        R = own(R, np.int64, (-1, 3))
        i, j, t = own(i, np.int64, (-1,)), own(j, np.int64, (-1,)), own(t, np.complex128, (-1,))
        if not (len(R) == len(i) == len(j) == len(t)):
            raise ValueError(f"R, i, j, t lengths differ: {len(R)}, {len(i)}, {len(j)}, {len(t)}")
        pbc = _check_hoppings(R, i, j, t, n, pbc)
        if np.any(is_lower_half(R, i, j)):
            raise ValueError("hoppings in the implied half (R < 0, or R = 0 and i > j): use from_hoppings")
        onsite = (i == j) & ~R.any(axis=1)
        if np.any(np.abs(t.imag[onsite]) > hermitian_tol):
            raise ValueError(f"complex onsite energies (|imaginary part| > hermitian_tol {hermitian_tol:g})")
        keys = pair_keys(R, i, j, n)
        keys.sort()
        if len(keys) > 1 and np.any(keys[1:] == keys[:-1]):
            raise ValueError("a hopping (R, i, j) appears more than once: use from_hoppings, which sums repeats")
        del keys
        if np.any(onsite) and np.any(t.imag[onsite] != 0):
            t = t.copy()
            t.imag[onsite] = 0.0
        for a in (R, i, j, t):
            a.setflags(write=False)
        return cls._assemble(cell, pbc, pos, orbital_atoms, orbital_labels, R, i, j, t)

    @classmethod
    def from_wannier90(
        cls,
        hr_path: str | os.PathLike,
        win_path: str | os.PathLike | None = None,
        centres_path: str | os.PathLike | None = None,
        wsvec_path: str | os.PathLike | None = None,
    ) -> TBHamiltonian:
        """Read a Wannier90 ``seedname_hr.dat`` (plus ``.win``, ``_centres.xyz``, ``_wsvec.dat``).

        The ``.win`` file gives the cell (required) and, when ``mp_grid`` has one k-point along
        the third axis, ``pbc = (True, True, False)``. Orbital positions are the Wannier centres
        if given, else the host-atom positions assigned from the projections, else zeros (the
        lattice gauge is unaffected; the position gauge is then meaningless and a warning is
        issued). ``_wsvec.dat`` applies Wannier90's minimal-distance replica shifts.
        """
        from wander.io import apply_wsvec, orbital_assignment, read_centres_xyz, read_hr, read_win, read_wsvec

        if win_path is None:
            raise ValueError("from_wannier90 needs the .win file (win_path) for the cell")
        hr = read_hr(hr_path)
        win = read_win(win_path)
        ws = read_wsvec(wsvec_path) if wsvec_path is not None else None
        R, i, j, t = apply_wsvec(hr, ws)
        centres = None
        if centres_path is not None:
            centres, _ = read_centres_xyz(centres_path)
            centres = np.asarray(centres, dtype=float)
        orbital_atoms, orbital_labels = orbital_assignment(win, centres)
        orbital_atoms = np.asarray(orbital_atoms, dtype=np.int64)
        nw = int(hr.num_wann)
        if centres is not None:
            positions = centres
        elif win.atoms is not None and len(win.atoms) and np.all((orbital_atoms >= 0) & (orbital_atoms < len(win.atoms))):
            positions = win.atoms.positions[orbital_atoms]
        else:
            warnings.warn(
                f"{hr_path}: no Wannier centres or atoms; orbital positions set to zero "
                "(the position gauge is then not meaningful)",
                stacklevel=2,
            )
            positions = np.zeros((nw, 3))
        mp = getattr(win, "mp_grid", None)
        two_d = mp is not None and len(mp) == 3 and int(mp[2]) == 1
        pbc = (True, True, not two_d)
        return cls.from_hoppings(
            win.cell,
            positions,
            R,
            i,
            j,
            t,
            orbital_atoms=orbital_atoms,
            orbital_labels=orbital_labels,
            pbc=pbc,
        )

    # ------------------------------------------------------------------ properties
    @property
    def n_orbitals(self) -> int:
        """Number of orbitals."""
        return len(self.orbital_positions)

    @property
    def n_hoppings(self) -> int:
        """Number of stored (half) hoppings, onsite terms included."""
        return len(self.t)

    @property
    def frac_positions(self) -> np.ndarray:
        """(n_orb, 3) orbital positions in fractional coordinates."""
        return self.orbital_positions @ np.linalg.inv(self.cell)

    # ------------------------------------------------------------------ Bloch sums
    def assembler(self, ordered: bool = False, diagonal: bool = False) -> BlochAssembler:
        """The cached :class:`~wander.tb.bloch.BlochAssembler`.

        Parameters
        ----------
        ordered : bool
            Assemble in :attr:`fill_reducing_order` (for sparse factorisations).
        diagonal : bool
            Keep slots for all diagonal elements (for shifts ``H - sigma``).
        """
        key = ("assembler", ordered, diagonal)
        if key not in self._cache:
            order = self.fill_reducing_order if ordered else None
            self._cache[key] = BlochAssembler(
                self.n_orbitals, self.R, self.i, self.j, self.t, self.frac_positions, order, diagonal
            )
        return self._cache[key]

    @cached_property
    def fill_reducing_order(self) -> np.ndarray:
        """Geometric nested-dissection ordering of the orbitals (see :mod:`wander.tb.ordering`)."""
        from wander.tb.ordering import nested_dissection_order

        order = nested_dissection_order(
            self.n_orbitals, self.R, self.i, self.j, self.frac_positions, self.cell, self.pbc
        )
        order.setflags(write=False)
        return order

    def hk(self, k: np.ndarray, gauge: str = "lattice") -> sp.csr_matrix:
        """Bloch Hamiltonian ``H(k)``.

        Parameters
        ----------
        k : (3,) float
            Fractional k-point (reciprocal basis of :attr:`cell`).
        gauge : {"lattice", "position"}
            ``"lattice"``: ``sum_R exp(2 pi i k.R) H(R)`` (Wannier90, periodic in k).
            ``"position"``: phases ``exp(2 pi i k.(R + tau_j - tau_i))``.

        Returns
        -------
        scipy.sparse.csr_matrix
            (n_orb, n_orb) complex128 Hermitian, eV.
        """
        k = check_k(k)
        for axis in range(3):
            if not self.pbc[axis] and k[axis] != 0:
                raise ValueError(f"k has a component along non-periodic direction {axis}: {k}")
        return self.assembler().matrix(k, gauge)

    # ------------------------------------------------------------------ derived models
    def supercell(self, P: np.ndarray) -> TBHamiltonian:
        """The same Hamiltonian on the supercell with rows ``P @ cell``.

        Parameters
        ----------
        P : (3, 3) int
            Supercell matrix, ``det(P) > 0``; identity along non-periodic directions.

        Returns
        -------
        TBHamiltonian
            ``det(P) * n_orb`` orbitals, ordered cell by cell (cell ``c`` holds orbitals
            ``c * n_orb ... (c + 1) * n_orb - 1``).
        """
        P = np.asarray(P)
        if P.shape == (3,):
            P = np.diag(P)
        R, i, j, t, pos, atoms, ncell = supercell_hoppings(
            P, self.cell, self.pbc, self.orbital_positions, self.R, self.i, self.j, self.t
        )
        n_atoms = int(self.orbital_atoms.max(initial=-1)) + 1
        cell_index = np.repeat(np.arange(ncell), self.n_orbitals)
        return TBHamiltonian.from_hoppings(
            P.astype(float) @ self.cell,
            pos,
            R,
            i,
            j,
            t,
            orbital_atoms=cell_index * n_atoms + np.tile(self.orbital_atoms, ncell),
            orbital_labels=np.tile(self.orbital_labels, ncell),
            pbc=self.pbc,
        )

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> None:
        """Write an ``.npz`` file (exact round trip with :meth:`load`; no pickles)."""
        from wander.tb.files import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                format=np.int64(_NPZ_FORMAT),
                cell=self.cell,
                pbc=np.asarray(self.pbc),
                orbital_positions=self.orbital_positions,
                orbital_atoms=self.orbital_atoms,
                orbital_labels=self.orbital_labels,
                R=self.R,
                i=self.i,
                j=self.j,
                t=self.t,
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> TBHamiltonian:
        """Read an ``.npz`` file written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            if "format" not in z or int(z["format"]) != _NPZ_FORMAT:
                raise ValueError(f"{path}: not a wander TBHamiltonian file (format {_NPZ_FORMAT})")
            return cls.from_hoppings(
                z["cell"],
                z["orbital_positions"],
                z["R"],
                z["i"],
                z["j"],
                z["t"],
                orbital_atoms=z["orbital_atoms"],
                orbital_labels=z["orbital_labels"],
                pbc=tuple(bool(x) for x in z["pbc"]),
                hermitian_tol=0.0,
            )

    def hr_blocks(self, max_elements: int = 50_000_000) -> tuple[np.ndarray, np.ndarray]:
        """Dense ``H(R)`` blocks for every lattice vector (both halves).

        Returns
        -------
        R : (nR, 3) int64, sorted lexicographically
        H : (nR, n_orb, n_orb) complex128, eV

        Raises
        ------
        ValueError
            If ``nR * n_orb**2`` exceeds ``max_elements`` (the dense format does not scale).
        """
        n = self.n_orbitals
        Rall, inv = np.unique(np.concatenate([self.R, -self.R]), axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        if len(Rall) * n * n > max_elements:
            raise ValueError(
                f"dense H(R) would need {len(Rall)} x {n} x {n} elements; hr.dat does not suit this size"
            )
        H = np.zeros((len(Rall), n, n), dtype=np.complex128)
        m = self.n_hoppings
        H[inv[:m], self.i, self.j] = self.t
        off = ~(np.all(self.R == 0, axis=1) & (self.i == self.j))
        H[inv[m:][off], self.j[off], self.i[off]] = np.conj(self.t[off])
        return Rall.astype(np.int64), H

    def to_hr(self, path: str | os.PathLike) -> None:
        """Write a Wannier90 ``_hr.dat`` (all lattice vectors, degeneracies 1)."""
        from wander.io import write_hr

        R, H = self.hr_blocks()
        write_hr(path, R, H, ndegen=None, header="written by wander.tb.TBHamiltonian.to_hr")
