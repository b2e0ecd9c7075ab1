"""Eigensolvers for Hermitian ``H(k)``: dense ``eigh`` and sparse shift-invert near an energy.

Sparse route (:func:`eigsh_near`)
---------------------------------
SciPy's ``eigsh`` silently hands complex Hermitian input to ``eigs`` (ARPACK ``znaupd``, Arnoldi)
and returns real parts. We call that path explicitly, with our own shift-invert operator:

* ``H - sigma`` is factorised once per k-point by SuperLU with a *symmetric* fill-reducing
  ordering (geometric nested dissection, :mod:`wander.tb.ordering`, applied when the Hamiltonian
  is assembled) and diagonal pivots (``SymmetricMode``, ``diag_pivot_thresh=0``). The factors are
  then ``P (H - sigma) P^T = L D L^H`` and, by Sylvester's law of inertia, the number of negative
  entries of ``D`` is the number of eigenvalues below ``sigma``, for free. That count gives the
  global band index of every eigenvalue found, which the Fermi level needs.
* ARPACK (``eigs`` for complex, ``eigsh`` when ``H(k)`` is real) iterates with
  ``(H - sigma)^-1``; a few more Ritz values than asked for are computed so that a degenerate
  multiplet at the edge of the window is not cut. Single-vector Krylov methods can still miss
  copies of highly degenerate levels (six-fold and more, as in supercells of perfect crystals
  folded onto Gamma); the dense route is the safe choice for such small, symmetric cells.
* Eigenvalues come from a Rayleigh-Ritz step with ``H`` in the span of the Ritz vectors
  (accurate to the square of the vector error), and every residual ``|H x - e x|`` is checked
  (:data:`RESIDUAL_MAX`); if one is too large (``sigma`` extremely close to an eigenvalue), ARPACK
  is rerun with two steps of iterative refinement in each solve.
* Without pivoting, the factorisation is only as good as its element growth. Every
  factorisation is checked by the backward error of one probe solve; if it is singular, needs
  off-diagonal pivots, or is unstable (e.g. zero onsite energies of a bipartite lattice with
  ``sigma`` at the band centre), ``sigma`` is moved by up to ``1e-3 ||H||`` and the
  factorisation repeated. If that fails, a pivoted LU is used (robust solves, no inertia).
  A stable ``LDL^H`` is the exact factorisation of ``H - sigma + E`` with
  ``||E|| <= 1e-8 ||H||`` (:data:`BACKWARD_ERROR_MAX`), so its inertia is exact except for
  eigenvalues closer than that to ``sigma``, and the eigenpairs are not affected
  at all: they come from a Rayleigh-Ritz step with ``H`` itself and their residuals are checked.
  (A bound of 1e-10 rejected ordinary factorisations of a relaxed 1.05 deg cell with the ML
  Hamiltonian, backward error 2.7e-10, and sent those k-points through further factorisations
  at nudged shifts: the demo's band path ran at 80-165 s per k-point instead of about 10 s.)

The real-symmetric 2n embedding ``[[Re H, -Im H], [Im H, Re H]]`` was not used: its eigenvalues
come in exactly degenerate pairs, which Lanczos from one start vector resolves unreliably.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["ShiftInvert", "NearResult", "eigvalsh_dense", "eigsh_near", "eigenvalues_around", "DENSE_MAX"]

#: Above this many orbitals the dense route is refused by the automatic choice.
DENSE_MAX = 3000

#: Largest accepted backward error of the unpivoted factorisation (relative to ||H||).
BACKWARD_ERROR_MAX = 1e-8

#: Largest accepted eigenpair residual |H x - e x|, relative to max(1, |e|).
RESIDUAL_MAX = 1e-7

#: Relative shifts of sigma tried in turn when the unpivoted factorisation is unstable.
_NUDGES = (0.0, 1e-9, 1e-6, 1e-4, 3e-4, 1e-3)


def eigvalsh_dense(h: sp.spmatrix | np.ndarray) -> np.ndarray:
    """All eigenvalues of a Hermitian matrix (float64, ascending).

    Parameters
    ----------
    h : (n, n) sparse or dense, Hermitian

    Raises
    ------
    ValueError
        If ``n`` exceeds :data:`DENSE_MAX` (a dense matrix would not fit).
    """
    if h.shape[0] > DENSE_MAX:
        raise ValueError(
            f"{h.shape[0]} orbitals is too many for dense diagonalisation (limit {DENSE_MAX}); "
            "use the sparse shift-invert route (n_bands and energy) or KPM"
        )
    a = h.toarray() if sp.issparse(h) else np.asarray(h)
    return sla.eigvalsh(a.astype(np.complex128), driver="evd")


class ShiftInvert:
    """LDL^H-type factorisation of ``h - sigma`` with inertia.

    Parameters
    ----------
    h : (n, n) sparse Hermitian, CSR
        Already in a fill-reducing order (e.g. assembled with a nested-dissection order).
    sigma : float, eV
        Shift. If the diagonal-pivot factorisation is singular or unstable (element growth,
        e.g. a zero-onsite bipartite lattice with sigma at the band centre), sigma is moved by
        up to 1e-3 ||h|| until it is stable.

    Attributes
    ----------
    sigma : float
        The shift actually used.
    n_below : int or None
        Number of eigenvalues of ``h`` below ``sigma`` (None if no stable diagonal-pivot
        factorisation was found near the requested shift; a pivoted LU is used then).
    backward_error : float
        Backward error of a probe solve, relative to ``||h||``.
    """

    def __init__(self, h: sp.csr_matrix, sigma: float) -> None:
        n = h.shape[0]
        real = not np.iscomplexobj(h.data) or bool(np.all(h.data.imag == 0))
        dtype = np.float64 if real else np.complex128
        h = sp.csr_matrix((h.data.real if real else h.data, h.indices, h.indptr), shape=h.shape)
        norm = float(abs(h).sum(axis=1).max()) if h.nnz else 1.0  # ||h||_inf
        scale = max(1.0, norm)
        rng = np.random.default_rng(12345)
        probe = rng.uniform(-1.0, 1.0, n)
        last_error = "no attempt"
        for nudge in _NUDGES:
            s = float(sigma) + nudge * scale * rng.uniform(0.5, 1.0)
            a = (h - s * sp.identity(n, dtype=dtype, format="csr")).tocsr()
            # Hermitian: the CSC arrays of A are the CSR arrays of conj(A)
            csc = sp.csc_matrix((np.conj(a.data), a.indices, a.indptr), shape=a.shape)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", sp.SparseEfficiencyWarning)
                    lu = spla.splu(
                        csc, permc_spec="NATURAL", diag_pivot_thresh=0.0, options={"SymmetricMode": True}
                    )
            except RuntimeError as exc:  # exactly singular pivot
                last_error = str(exc)
                continue
            if not np.array_equal(lu.perm_r, lu.perm_c):
                last_error = "off-diagonal pivoting"
                continue
            # backward error of one solve with a random right-hand side: an unpivoted LDL^H is
            # only trusted (for solves and for its inertia) when the element growth is small
            x = lu.solve(probe.astype(dtype))
            eta = np.abs(a @ x - probe).max() / ((norm + abs(s)) * np.abs(x).max() + 1.0)
            if not eta < BACKWARD_ERROR_MAX:
                last_error = f"unstable factorisation (backward error {eta:.1e})"
                continue
            self.sigma, self.dtype, self._lu, self._a = s, dtype, lu, a
            self.backward_error = float(eta)
            self.n_below = int(np.count_nonzero(lu.U.diagonal().real < 0))
            return
        # fall back to a pivoted LU (robust solves, no inertia)
        a = (h - float(sigma) * sp.identity(n, dtype=dtype, format="csr")).tocsc()
        try:
            self._lu = spla.splu(a)
        except RuntimeError:
            s = float(sigma) + 1e-6 * scale
            a = (h - s * sp.identity(n, dtype=dtype, format="csr")).tocsc()
            self._lu = spla.splu(a)
            sigma = s
        warnings.warn(f"LDL^H factorisation at {sigma:.6g} eV failed ({last_error}); no inertia count", stacklevel=2)
        self.sigma, self.dtype, self.n_below, self.backward_error = float(sigma), dtype, None, float("nan")
        self._a = (h - self.sigma * sp.identity(n, dtype=dtype, format="csr")).tocsr()

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``(h - sigma)^-1 b`` for a vector or an (n, p) block."""
        if self.dtype == np.float64 and np.iscomplexobj(b):
            return self._lu.solve(np.ascontiguousarray(b.real)) + 1j * self._lu.solve(
                np.ascontiguousarray(b.imag)
            )
        return self._lu.solve(b)

    def operator(self, refine: int = 0) -> spla.LinearOperator:
        """``(h - sigma)^-1`` as a LinearOperator, with ``refine`` steps of iterative refinement
        (each costs one more solve and one product with ``h``; useful when sigma is very close
        to an eigenvalue and the factorisation is unpivoted)."""
        n = self._lu.shape[0]
        if refine == 0:
            return spla.LinearOperator((n, n), matvec=self._lu.solve, dtype=self.dtype)
        a = self._a

        def matvec(b):
            x = self._lu.solve(b)
            for _ in range(refine):
                x = x + self._lu.solve(b - a @ x)
            return x

        return spla.LinearOperator((n, n), matvec=matvec, dtype=self.dtype)


@dataclass(frozen=True)
class NearResult:
    """Eigenpairs of ``h`` nearest to ``sigma``.

    Attributes
    ----------
    eigenvalues : (n_eig,) float64, eV, ascending
    vectors : (n, n_eig) complex128 or float64, orthonormal columns (same basis as ``h``)
    n_below : int or None
        Global index of ``eigenvalues[0]`` (number of eigenvalues of ``h`` below it), from the
        inertia of the factorisation; None if unavailable.
    residual : float
        Largest ``|h x - e x|`` over the returned pairs, eV.
    """

    eigenvalues: np.ndarray
    vectors: np.ndarray
    n_below: int | None
    residual: float


def eigsh_near(
    h: sp.csr_matrix,
    sigma: float,
    n_eig: int,
    *,
    v0: np.ndarray | None = None,
    tol: float = 1e-12,
    extra: int | None = None,
    factor: ShiftInvert | None = None,
) -> NearResult:
    """The ``n_eig`` eigenpairs of a sparse Hermitian matrix nearest to ``sigma``.

    Parameters
    ----------
    h : (n, n) sparse Hermitian (CSR), ideally already in a fill-reducing order
    sigma : float, eV
        Target energy.
    n_eig : int
        Number of eigenpairs returned (the nearest to ``sigma``).
    v0 : (n,) array, optional
        ARPACK start vector (e.g. the sum of the previous k-point's eigenvectors).
    tol : float
        ARPACK relative tolerance on the shift-inverted eigenvalues.
    extra : int, optional
        Additional Ritz pairs computed and discarded (default ``max(2, n_eig // 2)``), so that
        degenerate multiplets straddling the window edge are not split by ARPACK.
    factor : ShiftInvert, optional
        A factorisation of ``h - sigma`` to reuse.

    Returns
    -------
    NearResult

    Raises
    ------
    ValueError
        If ``n_eig`` is not in ``1 .. n``.
    RuntimeError
        If ARPACK does not converge or the residuals are too large.
    """
    n = h.shape[0]
    if not 1 <= n_eig <= n:
        raise ValueError(f"n_eig must be between 1 and {n}, got {n_eig}")
    extra = max(2, n_eig // 2) if extra is None else int(extra)
    nev = min(n_eig + extra, n - 2)
    if n <= 64 or (3 * nev >= n and n <= DENSE_MAX):  # small matrices or wide windows: dense
        e, x = sla.eigh(h.toarray())
        order = np.argsort(np.abs(e - sigma), kind="stable")[:n_eig]
        order = np.sort(order)
        return NearResult(e[order], x[:, order], int(order[0]), 0.0)
    if 3 * nev >= n:
        raise ValueError(f"{n_eig} eigenpairs of a {n} x {n} matrix: too many for shift-invert")
    f = factor if factor is not None else ShiftInvert(h, sigma)
    ncv = min(n - 1, max(2 * nev + 1, nev + 16))
    if v0 is not None:
        v0 = np.asarray(v0)
        v0 = v0.real.astype(np.float64) if f.dtype == np.float64 else v0.astype(np.complex128)
        if v0.shape != (n,) or not np.any(v0):
            v0 = None
    if v0 is None:  # reproducible start vector
        rng = np.random.default_rng(2024)
        v0 = rng.standard_normal(n) + (1j * rng.standard_normal(n) if f.dtype == np.complex128 else 0.0)
    for refine in (0, 2):
        nu, vec = _arpack_shift_invert(h, f, nev, v0, ncv, tol, n_eig, sigma, refine)
        e, vec, res = _rayleigh_ritz(h, vec, f.sigma, n_eig)
        scale = max(1.0, float(np.abs(e).max()))
        if res.max() <= RESIDUAL_MAX * scale:
            break
    else:
        raise RuntimeError(
            f"shift-invert eigenpairs near {sigma} eV are inaccurate (residual {res.max():.2e} eV)"
        )
    n_below = None
    # an eigenvalue within the factorisation's backward error of sigma makes the count ambiguous
    ambiguous = np.abs(e - f.sigma).min() <= 100 * f.backward_error * scale
    if f.n_below is not None and not ambiguous:
        n_below = f.n_below - int(np.count_nonzero(e < f.sigma))
    return NearResult(e, vec, n_below, float(res.max()))


def _rayleigh_ritz(h, vec: np.ndarray, sigma: float, n_eig: int):
    """Rayleigh-Ritz of ``h`` in the span of ``vec``; keep the ``n_eig`` values nearest sigma.

    Exact for Hermitian ``h``: removes ARPACK's complex-eigenvalue noise (Arnoldi) and splits
    nearly degenerate pairs properly. Returns ascending values, vectors and residual norms.
    """
    vec, _ = np.linalg.qr(vec)  # Arnoldi Ritz vectors are normalised but not orthogonal
    hv = h @ vec
    small = vec.conj().T @ hv
    e, c = np.linalg.eigh(0.5 * (small + small.conj().T))
    vec, hv = vec @ c, hv @ c
    res = np.linalg.norm(hv - vec * e, axis=0)
    order = np.sort(np.argsort(np.abs(e - sigma), kind="stable")[:n_eig])
    return e[order], vec[:, order], res[order]


def _arpack_shift_invert(
    h, f: ShiftInvert, nev: int, v0, ncv: int, tol: float, n_min: int, sigma: float, refine: int = 0
):
    """ARPACK in shift-invert mode; on no-convergence retry once with more Ritz vectors, then
    accept the converged subset if it holds at least ``n_min`` pairs."""
    n = h.shape[0]
    op = f.operator(refine)
    hop = spla.LinearOperator((n, n), matvec=lambda x: (h @ x).real, dtype=np.float64)
    last = None
    for attempt in range(2):
        try:
            if f.dtype == np.float64:
                return spla.eigsh(hop, k=nev, sigma=f.sigma, OPinv=op, which="LM", v0=v0, ncv=ncv, tol=tol)
            return spla.eigs(h, k=nev, sigma=f.sigma, OPinv=op, which="LM", v0=v0, ncv=ncv, tol=tol)
        except spla.ArpackNoConvergence as exc:  # e.g. a degenerate multiplet cut by nev
            last = exc
            nev = min(nev + 6, n - 2)
            ncv = min(n - 1, max(2 * nev + 1, nev + 16))
        except spla.ArpackError as exc:
            raise RuntimeError(f"shift-invert failed near {sigma} eV: {exc}") from exc
    if last is not None and len(last.eigenvalues) >= n_min:
        return last.eigenvalues, last.eigenvectors
    raise RuntimeError(f"shift-invert did not converge near {sigma} eV: {last}")


def eigenvalues_around(h: sp.csr_matrix, factor: ShiftInvert, tol: float = 1e-12) -> tuple[float, float]:
    """The eigenvalue just below and just above the shift of ``factor``.

    In shift-invert space ``nu = 1 / (e - sigma)``, these are the most negative and the most
    positive ``nu``: one ARPACK run each, with the existing factorisation.

    Returns
    -------
    (below, above) : floats, eV (``-inf`` / ``inf`` if none)
    """
    n = h.shape[0]
    if n <= 64:
        e = sla.eigvalsh(h.toarray())
        lo, hi = e[e < factor.sigma], e[e > factor.sigma]
        return (float(lo[-1]) if len(lo) else -np.inf), (float(hi[0]) if len(hi) else np.inf)
    op = factor.operator()
    real = factor.dtype == np.float64
    out = []
    for which in (("SA", "SR"), ("LA", "LR")):
        ncv = min(n - 1, 20)
        if real:
            nu = spla.eigsh(op, k=1, which=which[0], ncv=ncv, tol=tol, return_eigenvectors=False)
        else:
            nu = spla.eigs(op, k=1, which=which[1], ncv=ncv, tol=tol, return_eigenvectors=False)
        out.append(float(factor.sigma + 1.0 / nu.real[0]))
    below, above = out
    # a side without eigenvalues shows up as a Ritz value on the wrong side of sigma
    return (below if below < factor.sigma else -np.inf), (above if above > factor.sigma else np.inf)
