"""Exact linear solves of the P2D Jacobian by static condensation of the particle unknowns.

A particle's unknowns couple only to the unknowns of its own x-node (its rows see j, and only the
Butler-Volmer row sees its surface slots), so with the node blocks

    [A_pp  A_pe] [x_p]   [r_p]
    [A_ep  A_ee] [x_e] = [r_e]

A_pp is block diagonal (one small banded block per node, on the rank that owns the node): eliminating
x_p leaves the Schur complement S = A_ee - A_ep A_pp^-1 A_pe on the 4 electrolyte/solid/interface
unknowns per node (plus, with several particle sizes, each size's interfacial current), with A_ee's
sparsity (A_pe and A_ep reach only the node's own unknowns). The particle work is local (band LU of
A_pp on each rank, SuperLU (minimum degree on A^T + A) for 2-D particles and several sizes: all sizes of
a node are eliminated
together, they couple only through the kept unknowns); only S, 4 (+ sizes) unknowns per node instead
of 4 + slots, is factored as a whole (LU on one rank, redundantly on several). Used as a PETSc Python PC
with KSP preonly, it is a direct solver; `-pc_type lu` etc. still override it.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg.lapack import dgbtrf, dgbtrs
from scipy.sparse.linalg import splu

NODE_UNKNOWNS = 4  # c_e, phi_e, phi_s, j: the first slots of every node (cell.NE)


def _splu(A: sp.csc_matrix):
    # minimum degree on A^T + A: the particle blocks are structurally symmetric (2-D grid plus the dense
    # surface coupling); on 100 48 x 20 particles 40 % less fill than COLAMD, factor 1.37 vs 1.71 s,
    # solves 2x faster (the condensation solves 4 per Jacobian, the PC one per linear iteration)
    try:
        return splu(A, permc_spec="MMD_AT_PLUS_A")
    except RuntimeError as exc:  # SuperLU's "Factor is exactly singular"
        raise np.linalg.LinAlgError(str(exc)) from None


class CondensedLU:
    """PETSc Python PC context; `update(values)` gets the Jacobian's CSR values (owned rows) each time
    the cell assembles it (the pattern and its column layout are the cell's)."""

    def __init__(self, cell):
        self.cell = cell
        PETSc, dof, ne = cell.PETSc, cell.dof, NODE_UNKNOWNS
        bands = [r.particle.bandwidth for r in cell.regions]
        self.band = None if None in bands else max(bands)  # None: sparse LU (2-D particles, several sizes)
        # the unknowns S keeps at each node: its 4, and the sizes' own currents (particles.SizeMix), whose
        # Butler-Volmer rows read c_e and the potentials (with those eliminated, a saturated iterate left
        # the particle block singular where the whole Jacobian is not)
        kept = np.zeros((cell.n_nodes, dof), bool)
        kept[:, :ne] = True
        for r in cell.regions:
            kept[r.start:r.stop, ne + np.array(getattr(r.particle, "current_slots", ()), dtype=int)] = True
        xs, xe = cell.xs, cell.xe
        own = kept[xs:xe]
        self._own = own.ravel()
        self.n_own, self.n_e, self.np_ = xe - xs, int(own.sum()), int((~own).sum())
        snum = np.cumsum(kept.ravel()).reshape(kept.shape) - 1  # global numbering of S (node-major)
        e0 = int(snum[xs, 0])
        kidx = np.cumsum(kept, axis=1) - 1  # a kept unknown's place among its node's
        pnum = np.cumsum(~own.ravel()).reshape(own.shape) - 1  # local numbering of the particle unknowns
        rows, cols = cell._rows, cell._cols  # owned-local row, global column of each pattern entry
        rn, rs = rows // dof + xs, rows % dof
        cn, cs = cols // dof, cols % dof
        e_row, e_col = kept[rn, rs], kept[cn, cs]
        self._pp, self._pe, self._ep, self._ee = ~e_row & ~e_col, ~e_row & e_col, e_row & ~e_col, e_row & e_col
        # particle rows and columns reach only their own node: (cn - xs) is owned wherever it is used
        prow, pcol = pnum[rn - xs, rs], pnum[np.clip(cn - xs, 0, self.n_own - 1), cs]
        self._idx = {"pp": (prow[self._pp], pcol[self._pp]), "pe": (prow[self._pe], kidx[cn, cs][self._pe]),
                     "ep": ((snum[rn, rs] - e0)[self._ep], pcol[self._ep])}
        self.n_kept = int(kept.sum(axis=1).max())
        # the reduced matrix: A_ee's pattern in S's global numbering
        ee_rows, ee_cols = (snum[rn, rs] - e0)[self._ee], snum[cn, cs][self._ee]
        order = np.lexsort((ee_cols, ee_rows))
        self._ee_order = order
        self._ee_rows, self._ee_cols = ee_rows[order], ee_cols[order]
        self._ee_indptr = np.searchsorted(self._ee_rows, np.arange(self.n_e + 1)).astype(PETSc.IntType)
        # same-node entries of S receive the condensation correction, in column kidx of the node
        self._ee_same = (cn == rn)[self._ee][order]
        self._ee_kidx = kidx[cn, cs][self._ee][order]
        self.S = PETSc.Mat().createAIJ([[self.n_e, None], [self.n_e, None]], comm=cell.comm)
        self.S.setPreallocationCSR((self._ee_indptr, self._ee_cols.astype(PETSc.IntType)))
        self.ksp = PETSc.KSP().create(comm=cell.comm)
        self.ksp.setOptionsPrefix("condensed_")
        self.ksp.setType("preonly")
        self.ksp.getPC().setType("lu" if cell.comm.Get_size() == 1 else "redundant")
        self.ksp.setOperators(self.S)
        self.ksp.setFromOptions()
        self._xe, self._be = self.S.createVecs()
        # where each particle unknown finds its node's kept unknowns in the local x_e (n_e: a zero pad)
        place = np.full((self.n_own, self.n_kept), self.n_e)
        node, slot = np.nonzero(own)
        place[node, kidx[node + xs, slot]] = snum[node + xs, slot] - e0
        self._xe_of_p = place[np.nonzero(~own)[0]]
        self.singular = False

    def update(self, values: np.ndarray) -> None:
        """Factor A_pp, form S from the Jacobian's values (same order as the cell's pattern)."""
        n_p = self.np_
        r, c = self._idx["pp"]
        self.singular = False
        try:
            if self.band is None:  # 2-D particles or several sizes: SuperLU (COLAMD ordering), nodes decouple
                self._lu = _splu(sp.csc_matrix((values[self._pp], (r, c)), shape=(n_p, n_p)))
            else:
                self._band_lu(values[self._pp], r, c, n_p)
        except np.linalg.LinAlgError:
            # a wild Newton iterate (Butler-Volmer saturated, rows of zeros): fail this linear solve
            # as PETSc's LU does at a zero pivot, so that the time step is cut
            self.singular = True
            return
        self._condense(values)

    def _band_lu(self, v, r, c, n_p) -> None:
        # A_pp is banded (the particle bandwidth; nodes simply do not couple): LAPACK band LU
        kl = ku = self.band
        ab = np.zeros((2 * kl + ku + 1, n_p))
        ab[kl + ku + r - c, c] = v
        self._lu, self._piv, info = dgbtrf(np.asfortranarray(ab), kl, ku)
        if info < 0:
            raise RuntimeError(f"dgbtrf: illegal argument {-info}")
        if info > 0:
            raise np.linalg.LinAlgError(f"dgbtrf: zero pivot {info}")

    def _condense(self, values: np.ndarray) -> None:
        n_p = self.np_
        pe_r, pe_v = self._idx["pe"]
        pe = values[self._pe]
        r, c = self._idx["ep"]
        self.A_ep = sp.csr_matrix((values[self._ep], (r, c)), shape=(self.n_e, n_p))
        # A_pe's columns of a node's v-th kept unknown over all nodes are disjoint node blocks: one solve per v
        self.Z = np.empty((self.n_kept, n_p))
        corr = np.empty((self.n_e, self.n_kept))
        for v in range(self.n_kept):
            on_v = pe_v == v
            self.Z[v] = self._solve_pp(np.bincount(pe_r[on_v], weights=pe[on_v], minlength=n_p))
            corr[:, v] = self.A_ep @ self.Z[v]
        ee = values[self._ee][self._ee_order].copy()
        same = self._ee_same
        ee[same] -= corr[self._ee_rows[same], self._ee_kidx[same]]
        self.S.setValuesCSR(self._ee_indptr, self._ee_cols.astype(self.cell.PETSc.IntType), ee)
        self.S.assemble()
        self.ksp.setOperators(self.S)

    def _solve_pp(self, rhs: np.ndarray) -> np.ndarray:
        if self.band is None:
            return self._lu.solve(rhs)
        x, info = dgbtrs(self._lu, self.band, self.band, rhs, self._piv)
        if info:
            raise RuntimeError(f"dgbtrs failed (info {info})")
        return x

    # ---- PETSc Python PC protocol ----
    def apply(self, pc, b, x) -> None:
        if self.singular:
            pc.setFailedReason(self.cell.PETSc.PC.FailedReason.FACTOR_NUMERIC_ZEROPIVOT)
            x.set(0.0)
            return
        bb = b.getArray(readonly=True)
        y_p = self._solve_pp(bb[~self._own])
        self._be.getArray()[:] = bb[self._own] - self.A_ep @ y_p
        self.ksp.solve(self._be, self._xe)
        x_e = self._xe.getArray(readonly=True)
        x_p = y_p - np.einsum("vp,pv->p", self.Z, np.append(x_e, 0.0)[self._xe_of_p])
        out = x.getArray()
        out[self._own] = x_e
        out[~self._own] = x_p
