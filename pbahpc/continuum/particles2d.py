"""The 2-D particle of the P2D cell: an axisymmetric (r, theta) sphere with Butler-Volmer at every
surface cell (issue 17; the paper's P2D section ends on the need for it: a 1-D particle's Na-rich shell
seals it on discharge).

Finite volumes on r in [0, R] (cells_r uniform shells) x theta in [0, pi] (cells_theta uniform polar
cells), axisymmetric about the z axis. Cell (i, k) has volume (2 pi / 3)(r_i+1^3 - r_i^3)(cos t_k -
cos t_k+1), radial faces 2 pi r^2 (cos t_k - cos t_k+1), polar faces pi (r_i+1^2 - r_i^2) sin t, and
the polar distance r_centre dtheta. With theta-independent fields every radial row is the 1-D sphere's
(particles.SplitSphere) exactly: the face areas and volumes carry the same factor (cos t_k - cos t_k+1).

Cahn-Hilliard split c/mu as in the 1-D sphere: dc/dt = div(M grad mu), mu = mu_hom(c) - k lap c (lap c
with dc/dn = 0 on the surface). Each surface cell k reacts with its own Butler-Volmer current (Eq. 29)

    j_k = j0(c_e, x_k, T) [exp(alpha f eta_k) - exp(-(1 - alpha) f eta_k)],   eta_k = phi_s - phi_e - U_k,
    U_k = -mu_k / F (Eq. 30, mu_k includes -k lap c) for Cahn-Hilliard, OCV(c_k) for Fickian,

evaluated at the surface cell's centre (O(dr) from the surface; the 1-D sphere extrapolates with its
single flux). The node's j (the cell's unknown) is the area mean: its row is j - sum_k A_k j_k / A.
The molar flow out of surface cell k is A_k (j_k - jbar + j) / F: equal to A_k j_k / F once that row
holds, and summing to A j / F at any iterate, so particle plus electrolyte conserve the ion to
round-off whatever the Newton iterate (the electrolyte receives a j / F).

Symmetry breaking: the initial state carries a seeded zero-mean (volume-weighted) stoichiometry noise,
and j0 may vary between surface cells (`exchange_current_variation`, area mean unchanged): the noise is
erased once the particle is single-phase (the end of a charge), the facets are not.

The Jacobian's sparsity is known: a c row sees c, mu of its cell and its 4 neighbours, a mu row mu of
its cell and c of the 5; surface c rows (through jbar) and the node's j row see every surface slot. The
cell differences it with the distance-2 colouring `colours` (10 colours for the interior, (i + 2k) mod 5
per field, one colour per surface slot) and eliminates the particle block with a sparse LU
(condensed.py).
"""
from __future__ import annotations

import numpy as np

from .model import FARADAY_C_MOL, CahnHilliardParticle, butler_volmer_A_m2, slot_scales

Array = np.ndarray


class AxisymmetricSphere:
    """Unknowns interleaved per cell q = i * cells_theta + k: [c_q, mu_q] (c mol/m^3, mu J/mol or = c)."""

    bandwidth = None  # not banded: pattern() and colours describe the block
    local_reaction = True

    def __init__(self, electrode, temperature_K: float, cells_theta: int | None = None,
                 perturbation_x: float | None = None, seed: int | None = None):
        law = electrode.particle
        self.electrode, self.law, self.T = electrode, law, temperature_K
        self.ch = isinstance(law, CahnHilliardParticle)
        nr = electrode.cells_r
        nt = int(cells_theta if cells_theta is not None else law.cells_theta)
        self.perturbation_x = float(perturbation_x if perturbation_x is not None
                                    else getattr(law, "perturbation_x", 0.0))
        self.seed = int(seed if seed is not None else getattr(law, "seed", 0))
        self.nr, self.nt = nr, nt
        self.cells, self.slots = nr * nt, 2 * nr * nt
        self.fu = electrode.formula_units_mol_m3
        R = electrode.particle_radius_m
        rf = np.linspace(0.0, R, nr + 1)
        tf = np.linspace(0.0, np.pi, nt + 1)
        self.h, dth = R / nr, np.pi / nt
        self.rc = 0.5 * (rf[1:] + rf[:-1])
        self.theta_c = 0.5 * (tf[1:] + tf[:-1])
        dcos = np.cos(tf[:-1]) - np.cos(tf[1:])
        self.V = 2.0 * np.pi / 3.0 * np.diff(rf**3)[:, None] * dcos[None, :]
        self.wr = 2.0 * np.pi * rf[1:-1, None] ** 2 * dcos[None, :] / self.h  # radial face area / distance
        self.wt = (np.pi * np.diff(rf**2)[:, None] * np.sin(tf[1:-1])[None, :]) / (self.rc[:, None] * dth)
        self.As = 2.0 * np.pi * R**2 * dcos  # surface area of each surface cell, m^2
        self.mobility = law.mobility if self.ch else law.diffusivity_m2_s
        # facets of different reactivity: j0 factors with area mean 1 (a second stream of the seed)
        spread = np.random.default_rng([self.seed, 1]).uniform(-1.0, 1.0, nt)
        spread -= spread @ self.As / self.As.sum()
        self.j0_factor = 1.0 + getattr(law, "exchange_current_variation", 0.0) * spread
        self.surface_slots = tuple(range(2 * (nr - 1) * nt, self.slots))
        self.differential, self.mass, self.typical, self.row_scale = slot_scales(self.slots, self.fu, self.ch,
                                                                                 temperature_K)
        i, k = np.divmod(np.arange(self.cells), nt)
        cell_colour = (i + 2 * k) % 5
        surface = i == nr - 1
        self.colours = np.empty(self.slots, dtype=int)
        self.colours[0::2] = np.where(surface, 10 + 2 * k, cell_colour)
        self.colours[1::2] = np.where(surface, 11 + 2 * k, 5 + cell_colour)
        self.n_colours = 10 + 2 * nt

    # ---- geometry of the unknowns -------------------------------------------------------------
    def _fields(self, u: Array) -> tuple[Array, Array]:
        shape = u.shape[:-1] + (self.nr, self.nt)
        return u[..., 0::2].reshape(shape), u[..., 1::2].reshape(shape)

    def _lap(self, c: Array) -> Array:
        """(1/V) sum_faces w (c_nb - c), dc/dn = 0 on the surface (and by symmetry on the axis)."""
        inflow = np.zeros(c.shape)
        d = self.wr * np.diff(c, axis=-2)
        inflow[..., :-1, :] += d
        inflow[..., 1:, :] -= d
        d = self.wt * np.diff(c, axis=-1)
        inflow[..., :, :-1] += d
        inflow[..., :, 1:] -= d
        return inflow / self.V

    def _rows(self, c: Array, mu: Array, surface_flow: Array) -> Array:
        """Particle rows given the molar flow out of each surface cell (mol/s)."""
        fu, M = self.fu, self.mobility
        out = np.zeros(c.shape)  # net outward molar flow of each cell, mol/s
        g = -self.wr * M(0.5 * (c[..., 1:, :] + c[..., :-1, :]) / fu) * np.diff(mu, axis=-2)
        out[..., :-1, :] += g
        out[..., 1:, :] -= g
        g = -self.wt * M(0.5 * (c[..., :, 1:] + c[..., :, :-1]) / fu) * np.diff(mu, axis=-1)
        out[..., :, :-1] += g
        out[..., :, 1:] -= g
        out[..., -1, :] += surface_flow
        R = np.empty(c.shape[:-2] + (self.slots,))
        R[..., 0::2] = (out / self.V).reshape(R.shape[:-1] + (self.cells,))
        if self.ch:
            mu_row = mu - self.law.mu_hom_J_mol(c / fu) + self.law.kappa_J_m5_mol2 * self._lap(c)
        else:
            mu_row = mu - c
        R[..., 1::2] = mu_row.reshape(R.shape[:-1] + (self.cells,))
        return R

    def _surface(self, c_s: Array, mu_s: Array) -> tuple[Array, Array]:
        """(U in V, x) of surface values."""
        if self.ch:
            return -mu_s / FARADAY_C_MOL, c_s / self.fu
        return self.law.ocv_V(mu_s / self.fu), mu_s / self.fu

    # ---- the particle interface (particles.py) -------------------------------------------------
    def rows(self, u: Array, j: Array) -> tuple[Array, Array, Array]:
        """Uniform surface flux j (A/m^2, > 0 out) and the surface-mean U and x, with the surface value
        extrapolated by the flux as in the 1-D sphere: the 1-D sphere's rows for a theta-uniform state."""
        c, mu = self._fields(u)
        j = np.asarray(j, dtype=float)
        R = self._rows(c, mu, self.As * j[..., None] / FARADAY_C_MOL)
        inward = -j[..., None] / FARADAY_C_MOL
        mu_s = mu[..., -1, :] + 0.5 * self.h * inward / self.mobility(c[..., -1, :] / self.fu)
        U, x = self._surface(c[..., -1, :] if self.ch else mu_s, mu_s)
        w = self.As / self.As.sum()
        return R, U @ w, x @ w

    def reaction_rows(self, u: Array, j: Array, c_e: Array, dphi_V: Array, f: float
                      ) -> tuple[Array, Array]:
        """Particle rows with Butler-Volmer at each surface cell (phi_s - phi_e = dphi_V, f = F/RT) and
        the node's j row j - area-mean(j_k) (A/m^2, unscaled)."""
        c, mu = self._fields(u)
        jk = self.surface_currents(c[..., -1, :], mu[..., -1, :], c_e, dphi_V, f)
        jbar = jk @ (self.As / self.As.sum())
        flow = self.As * (jk - jbar[..., None] + j[..., None]) / FARADAY_C_MOL
        return self._rows(c, mu, flow), j - jbar

    def surface_currents(self, c_s: Array, mu_s: Array, c_e: Array, dphi_V: Array, f: float) -> Array:
        """Butler-Volmer current density (A/m^2, > 0 out) of each surface cell."""
        U, x = self._surface(c_s, mu_s)
        return butler_volmer_A_m2(self.electrode, c_e[..., None], dphi_V[..., None], U, x, f, self.T) * self.j0_factor

    def initial(self) -> tuple[Array, float]:
        """x_initial plus the seeded zero-mean noise of amplitude perturbation_x; its mean surface U."""
        rng = np.random.default_rng(self.seed)
        noise = rng.uniform(-1.0, 1.0, (self.nr, self.nt))
        noise -= np.sum(noise * self.V) / np.sum(self.V)
        c0 = self.fu * (self.electrode.x_initial + self.perturbation_x * noise)
        mu0 = self.law.mu_hom_J_mol(c0 / self.fu) - self.law.kappa_J_m5_mol2 * self._lap(c0) if self.ch else c0
        u0 = np.empty(self.slots)
        u0[0::2], u0[1::2] = c0.ravel(), mu0.ravel()
        U, _ = self._surface(c0[-1], mu0[-1])
        return u0, float(U @ (self.As / self.As.sum()))

    def stoichiometry(self, u: Array) -> Array:
        """x per cell, (..., cells_r * cells_theta), cell q = i * cells_theta + k."""
        return u[..., 0::2] / self.fu

    @property
    def volumes_m3(self) -> Array:
        return self.V.ravel()

    @property
    def centres_m(self) -> Array:
        """Radius of each cell (in stoichiometry order): maps reshape to (cells_r, cells_theta)."""
        return np.repeat(self.rc, self.nt)

    def pattern(self) -> tuple[Array, Array]:
        """(row slot, column slot) of every structural entry of the particle block."""
        nr, nt = self.nr, self.nt
        q = np.arange(self.cells)
        i, k = np.divmod(q, nt)
        rows, cols = [q * 2, q * 2 + 1], [q * 2, q * 2 + 1]  # c row: own c, mu; mu row: own c, mu
        rows += [q * 2, q * 2 + 1]
        cols += [q * 2 + 1, q * 2]
        for di, dk in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            ok = (i + di >= 0) & (i + di < nr) & (k + dk >= 0) & (k + dk < nt)
            src, nb = q[ok], (q + di * nt + dk)[ok]
            rows += [2 * src, 2 * src, 2 * src + 1]
            cols += [2 * nb, 2 * nb + 1, 2 * nb]
        surf = np.array(self.surface_slots)
        s_c = surf[0::2]
        rows.append(np.repeat(s_c, surf.size))
        cols.append(np.tile(surf, s_c.size))
        pairs = np.unique(np.stack([np.concatenate(rows), np.concatenate(cols)]), axis=1)
        return pairs[0], pairs[1]
