"""Exact linear solves of the P2D Jacobian by static condensation of the particle unknowns.

A particle's unknowns couple only to the unknowns of its own x-node (its rows see j, and only the
Butler-Volmer row sees its surface slots), so with the node blocks

    [A_pp  A_pe] [x_p]   [r_p]
    [A_ep  A_ee] [x_e] = [r_e]

A_pp is block diagonal (one small banded block per node, on the rank that owns the node): eliminating
x_p leaves the Schur complement S = A_ee - A_ep A_pp^-1 A_pe on the 4 electrolyte/solid/interface
unknowns per node, with A_ee's sparsity (A_pe and A_ep reach only the node's own unknowns). The
particle work is local (band LU of A_pp on each rank, SuperLU for 2-D particles); only S, 4 unknowns per node instead of
4 + slots, is factored as a whole (LU on one rank, redundantly on several). Used as a PETSc Python PC
with KSP preonly, it is a direct solver; `-pc_type lu` etc. still override it.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg.lapack import dgbtrf, dgbtrs
from scipy.sparse.linalg import splu


class CondensedLU:
    """PETSc Python PC context; `update(values)` gets the Jacobian's CSR values (owned rows) each time
    the cell assembles it (the pattern and its column layout are the cell's)."""

    def __init__(self, cell):
        self.cell = cell
        PETSc, dof, ne = cell.PETSc, cell.dof, 4
        self.ne = ne
        bands = [r.particle.bandwidth for r in cell.regions]
        self.band = None if None in bands else max(bands)  # None: sparse LU (2-D particles)
        n_own = cell.xe - cell.xs
        rows = cell._rows  # owned-local row of each pattern entry
        cols = cell._cols  # global column
        row_node, row_slot = rows // dof + cell.xs, rows % dof
        col_node, col_slot = cols // dof, cols % dof
        self.n_own = n_own
        e_row, e_col = row_slot < ne, col_slot < ne
        # local numbering: particle unknowns of owned nodes, electrolyte unknowns (global numbering / 4)
        prow = (row_node - cell.xs) * (dof - ne) + row_slot - ne
        pcol = (col_node - cell.xs) * (dof - ne) + col_slot - ne
        erow = (row_node - cell.xs) * ne + row_slot
        ecol = (col_node - cell.xs) * ne + col_slot  # meaningful for the own node's columns only
        self._pp = ~e_row & ~e_col
        self._pe = ~e_row & e_col
        self._ep = e_row & ~e_col
        self._ee = e_row & e_col
        self._idx = {"pp": (prow[self._pp], pcol[self._pp]), "pe": (prow[self._pe], ecol[self._pe]),
                     "ep": (erow[self._ep], pcol[self._ep])}
        self.np_ = n_own * (dof - ne)
        self.n_e = n_own * ne
        # the reduced matrix: A_ee's pattern in global electrolyte numbering (node * 4 + slot)
        ee_rows, ee_cols = erow[self._ee], (col_node * ne + col_slot)[self._ee]
        order = np.lexsort((ee_cols, ee_rows))
        self._ee_order = order
        self._ee_rows, self._ee_cols = ee_rows[order], ee_cols[order]
        self._ee_indptr = np.searchsorted(self._ee_rows, np.arange(self.n_e + 1)).astype(PETSc.IntType)
        # same-node entries of S receive the condensation correction
        self._ee_same = (self._ee_cols // ne) == (self._ee_rows // ne + cell.xs)
        self.S = PETSc.Mat().createAIJ([[self.n_e, None], [self.n_e, None]], comm=cell.comm)
        self.S.setPreallocationCSR((self._ee_indptr, self._ee_cols.astype(PETSc.IntType)))
        self.ksp = PETSc.KSP().create(comm=cell.comm)
        self.ksp.setOptionsPrefix("condensed_")
        self.ksp.setType("preonly")
        self.ksp.getPC().setType("lu" if cell.comm.Get_size() == 1 else "redundant")
        self.ksp.setOperators(self.S)
        self.ksp.setFromOptions()
        self._xe, self._be = self.S.createVecs()
        self._node_of_p = np.repeat(np.arange(n_own), dof - ne)

    def update(self, values: np.ndarray) -> None:
        """Factor A_pp, form S from the Jacobian's values (same order as the cell's pattern)."""
        n_p = self.np_
        r, c = self._idx["pp"]
        if self.band is None:  # a 2-D particle's block: SuperLU (COLAMD ordering), nodes decouple
            self._lu = splu(sp.csc_matrix((values[self._pp], (r, c)), shape=(n_p, n_p)))
        else:
            self._band_lu(values[self._pp], r, c, n_p)
        self._condense(values)

    def _band_lu(self, v, r, c, n_p) -> None:
        # A_pp is banded (the particle bandwidth; nodes simply do not couple): LAPACK band LU
        kl = ku = self.band
        ab = np.zeros((2 * kl + ku + 1, n_p))
        ab[kl + ku + r - c, c] = v
        self._lu, self._piv, info = dgbtrf(np.asfortranarray(ab), kl, ku)
        if info < 0:
            raise RuntimeError(f"dgbtrf: illegal argument {-info}")

    def _condense(self, values: np.ndarray) -> None:
        ne, n_p = self.ne, self.np_
        pe_r, pe_c = self._idx["pe"]
        pe = values[self._pe]
        r, c = self._idx["ep"]
        self.A_ep = sp.csr_matrix((values[self._ep], (r, c)), shape=(self.n_e, n_p))
        # A_pe's columns of one slot v over all nodes are disjoint node blocks: one solve per v
        self.Z = np.empty((ne, n_p))
        corr = np.empty((self.n_e, ne))
        for v in range(ne):
            on_v = pe_c % ne == v
            rhs = np.bincount(pe_r[on_v], weights=pe[on_v], minlength=n_p)
            self.Z[v] = self._solve_pp(rhs)
            corr[:, v] = self.A_ep @ self.Z[v]
        ee = values[self._ee][self._ee_order].copy()
        same = self._ee_same
        ee[same] -= corr[self._ee_rows[same], self._ee_cols[same] % ne]
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
        ne, dof = self.ne, self.cell.dof
        bb = b.getArray(readonly=True).reshape(-1, dof)
        y_p = self._solve_pp(bb[:, ne:].ravel())
        self._be.getArray()[:] = bb[:, :ne].ravel() - self.A_ep @ y_p
        self.ksp.solve(self._be, self._xe)
        x_e = self._xe.getArray(readonly=True).reshape(-1, ne)
        x_p = y_p - np.einsum("vp,pv->p", self.Z, x_e[self._node_of_p])
        out = x.getArray().reshape(-1, dof)
        out[:, :ne] = x_e
        out[:, ne:] = x_p.reshape(-1, dof - ne)

