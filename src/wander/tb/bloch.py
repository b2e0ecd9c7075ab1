"""Vectorised Bloch sums ``H(k)`` with a sparsity pattern computed once.

The CSR pattern of ``H(k)`` does not depend on ``k``. :class:`BlochAssembler` sorts the full
(both halves) hopping list into CSR order once; each ``k`` then costs one complex exponential per
distinct lattice vector (lattice gauge) or per hopping (position gauge), one gather and, only when
several lattice vectors land on the same matrix element, one ``bincount``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["BlochAssembler", "GAUGES", "check_k"]

GAUGES = ("lattice", "position")


def check_k(k: np.ndarray | tuple | list) -> np.ndarray:
    """Validate one fractional k-point and return it as a float64 (3,) array."""
    k = np.asarray(k, dtype=float)
    if k.shape == (2,):
        k = np.append(k, 0.0)
    if k.shape != (3,) or not np.all(np.isfinite(k)):
        raise ValueError(f"k must be 3 finite fractional coordinates, got {k!r}")
    return k


class BlochAssembler:
    """Cached CSR pattern of ``H(k)`` for a fixed hopping list.

    Parameters
    ----------
    n_orbitals : int
    R : (m, 3) int64
        Lattice vectors of the stored (half) hoppings.
    i, j : (m,) int64
    t : (m,) complex128, eV
    frac_positions : (n_orbitals, 3) float
        Orbital positions in fractional coordinates (for the position gauge).
    order : (n_orbitals,) int, optional
        If given, the assembled matrix is ``H(k)[order][:, order]`` (used by the sparse solvers
        to apply a fill-reducing ordering once instead of at every k).
    diagonal : bool
        Keep a (possibly zero) slot for every diagonal element, so that a shift
        ``H - sigma I`` only changes data (see :meth:`shifted`).
    """

    def __init__(
        self,
        n_orbitals: int,
        R: np.ndarray,
        i: np.ndarray,
        j: np.ndarray,
        t: np.ndarray,
        frac_positions: np.ndarray,
        order: np.ndarray | None = None,
        diagonal: bool = False,
    ) -> None:
        n = int(n_orbitals)
        R = np.asarray(R, dtype=np.int64).reshape(-1, 3)
        i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
        t = np.asarray(t, dtype=np.complex128)
        # Built for up to ~1e8 entries: no (m, 3) copy of R is made and every whole-list
        # temporary is dropped as soon as it has been used.
        off = ~(np.all(R == 0, axis=1) & (i == j))
        lo = np.minimum(R.min(axis=0), -R.max(axis=0)) if len(R) else np.zeros(3, dtype=np.int64)
        span = tuple(int(x) for x in ((np.maximum(R.max(axis=0), -R.min(axis=0)) - lo + 1) if len(R)
                                      else np.ones(3, dtype=np.int64)))
        rkey = np.concatenate([np.ravel_multi_index(tuple((R - lo).T), span),
                               np.ravel_multi_index(tuple((-R[off] - lo).T), span)])
        tf = np.concatenate([t, np.conj(t[off])])
        rows = np.concatenate([i, j[off]])
        cols = np.concatenate([j, i[off]])
        del off
        if diagonal:
            rows = np.concatenate([rows, np.arange(n)])
            cols = np.concatenate([cols, np.arange(n)])
            rkey = np.concatenate([rkey, np.full(n, np.ravel_multi_index(tuple(-lo), span))])
            tf = np.concatenate([tf, np.zeros(n, dtype=complex)])
        if order is not None:
            inv = np.empty(n, dtype=np.int64)
            inv[np.asarray(order)] = np.arange(n)
            rows, cols = inv[rows], inv[cols]
            del inv
            frac_positions = np.asarray(frac_positions)[np.asarray(order)]
        keys = rows * n + cols
        del rows, cols
        perm = np.argsort(keys, kind="stable")
        keys = keys[perm]
        self._t = tf[perm]
        del tf
        rkey = rkey[perm]
        del perm
        new = np.empty(len(keys), dtype=bool)
        new[:1] = True
        new[1:] = keys[1:] != keys[:-1]
        self.nnz = int(new.sum())
        self._merge = self.nnz < len(keys)
        # data slot of every sorted entry (the identity, not stored, when no element repeats)
        self._slot = np.cumsum(new) - 1 if self._merge else None
        ukeys = keys[new] if self._merge else keys
        del keys, new
        idx_dtype = np.int32 if max(n, len(ukeys)) < 2**31 else np.int64
        self.indices = (ukeys % n).astype(idx_dtype)
        self.indptr = np.searchsorted(ukeys // n, np.arange(n + 1)).astype(idx_dtype)
        self.shape = (n, n)
        if diagonal:
            diag_keys = np.arange(n, dtype=np.int64) * (n + 1)
            self.diagonal_slots = np.searchsorted(ukeys, diag_keys)
        else:
            self.diagonal_slots = None
        del ukeys
        ukey, ridx = np.unique(rkey, return_inverse=True)
        del rkey
        self._R_unique = (np.stack(np.unravel_index(ukey, span), axis=1) + lo).astype(float)
        self._ridx = ridx.reshape(-1).astype(np.int32)
        del ridx
        self._t_real = bool(np.all(self._t.imag == 0))
        self._frac = np.asarray(frac_positions, dtype=float)
        self._dfrac: np.ndarray | None = None  # position-gauge offsets R + tau_j - tau_i, on first use

    def _sorted_rows_cols(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of every sorted entry (derived from the CSR pattern)."""
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        cols = self.indices
        if self._slot is not None:
            rows, cols = rows[self._slot], cols[self._slot]
        return rows, cols

    def data(self, k: np.ndarray, gauge: str = "lattice") -> np.ndarray:
        """CSR data array of ``H(k)`` (length :attr:`nnz`, complex128)."""
        k = check_k(k)
        if gauge == "lattice":
            phase = np.exp(2j * np.pi * (self._R_unique @ k))[self._ridx]
        elif gauge == "position":
            if self._dfrac is None:
                f = self._frac
                rows, cols = self._sorted_rows_cols()
                self._dfrac = self._R_unique[self._ridx] + f[cols] - f[rows]
            phase = np.exp(2j * np.pi * (self._dfrac @ k))
        else:
            raise ValueError(f"gauge must be one of {GAUGES}, got {gauge!r}")
        v = self._t * phase
        if not self._merge:
            return v
        return np.bincount(self._slot, weights=v.real, minlength=self.nnz) + 1j * np.bincount(
            self._slot, weights=v.imag, minlength=self.nnz
        )

    def matrix(self, k: np.ndarray, gauge: str = "lattice", shift: float = 0.0) -> sp.csr_matrix:
        """``H(k) - shift * I`` as a CSR matrix, complex128, shape (n, n)."""
        data = self.data(k, gauge)
        if shift != 0.0:
            if self.diagonal_slots is None:
                raise ValueError("this assembler has no diagonal slots; build it with diagonal=True")
            data = data.copy()
            data[self.diagonal_slots] -= shift
        m = sp.csr_matrix((data, self.indices, self.indptr), shape=self.shape, copy=False)
        m.has_sorted_indices = True
        return m

    def is_real_at(self, k: np.ndarray) -> bool:
        """True if ``H(k)`` is real in the lattice gauge (real hoppings, all phases +-1)."""
        if not self._t_real:
            return False
        x = 2.0 * (self._R_unique @ check_k(k))
        return bool(np.all(np.abs(x - np.round(x)) < 1e-12))
