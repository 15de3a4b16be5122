"""Particle discretisations for the P2D cell: what each x-node's representative particle contributes.

The cell (cell.py) treats a particle as a block of `slots` unknowns per node and asks its
discretisation for their rows, given the interfacial current density j (A/m^2, > 0 takes the ion out),
and for the equilibrium potential U (V vs the metal) that enters Butler-Volmer. A new particle model
(the paper's 1-D particle cannot discharge through its Na-rich shell; particles2d.py's can)
implements the same small interface and is chosen in `discretise` from the electrode's particle law.

Interface of a discretisation (all arrays may carry leading batch axes before `nodes`):
    slots, bandwidth        unknowns per node; a row depends on slots at most `bandwidth` away
    surface_slots           the slots U depends on (besides j); their rows may see the node's 4 unknowns
    pattern() -> (rows, cols) the particle block's structural entries (slot pairs); colours, n_colours:
                            a colour per slot, distinct among the columns of any row (finite differences)
    local_reaction          optional, true: reaction_rows(u, j, c_e, phi_s - phi_e, F/RT) -> (R, j row)
                            replaces rows(); the particle computes Butler-Volmer per surface point
                            (particles2d.py); bandwidth None: not banded (sparse LU in condensed.py)
    rows(u, j) -> (R, U, x) residual rows (..., nodes, slots) without the time derivative, U, and the
                            surface stoichiometry x that the exchange current j0(c_e, x, T) sees
    mass, typical, row_scale, differential   per-slot arrays: M in M du/dt + R, magnitudes, row
                            scaling, and which slots carry the time-step error control
    initial() -> (u0, U0)   uniform state at the electrode's x_initial and its potential
    stoichiometry(u)        x per radial cell (..., nodes, cells); `volumes_m3` of those cells
"""
from __future__ import annotations

import numpy as np

from .model import (FARADAY_C_MOL, CahnHilliard2DParticle, CahnHilliardParticle, Electrode,
                    FickianParticle, slot_scales)
from .particle import Mesh

Array = np.ndarray


class SplitSphere:
    """Radial finite volumes of a sphere, unknowns interleaved [c_0, mu_0, c_1, mu_1, ...].

    Cahn-Hilliard: dc/dt = div(M grad mu), mu = mu_hom(c) - k lap c, U = -mu_surf / F (Eq. 30).
    Fickian: the same with mu := c, M := D(x), U = OCV(c_surf). The surface value is extrapolated
    from the last cell with the flux condition; the inward surface flux is -j / F. The exchange
    current's surface stoichiometry is that extrapolated c_surf for Fickian particles and the last
    cell's c for Cahn-Hilliard ones, whose natural boundary condition dc/dr = 0 makes it the surface
    value to O(dr^2) (c is not extrapolated with the flux: the flux condition is on mu).
    """

    bandwidth = 3  # c_i's row reaches mu_{i+1} (3 slots on), mu_i's row c_{i-1} (3 slots back)

    def __init__(self, electrode: Electrode, temperature_K: float):
        self.electrode, law = electrode, electrode.particle
        self.ch = isinstance(law, CahnHilliardParticle)
        self.law = law
        self.mesh = Mesh(electrode.particle_radius_m, electrode.cells_r, "sphere")
        self.cells, self.slots = self.mesh.cells, 2 * self.mesh.cells
        self.fu = electrode.formula_units_mol_m3
        # the mesh's arrays, computed once (the residual runs ~20x per Jacobian)
        self.lap = self.mesh.laplacian()
        self.A, self.volumes_m3, self.h = self.mesh.areas_m2, self.mesh.volumes_m3, self.mesh.dr_m
        self.mobility = law.mobility if self.ch else law.diffusivity_m2_s
        self.surface_slots = (self.slots - 2, self.slots - 1)
        self.differential, self.mass, self.typical, self.row_scale = slot_scales(self.slots, self.fu, self.ch,
                                                                                 temperature_K)
        # finite-difference colours: slot mod (2 bandwidth + 1) is distinct within any row's reach
        self.n_colours = 2 * self.bandwidth + 1
        self.colours = np.arange(self.slots) % self.n_colours

    def pattern(self) -> tuple[Array, Array]:
        """(row slot, column slot) of every entry of the particle block: the band."""
        rows, cols = np.meshgrid(np.arange(self.slots), np.arange(-self.bandwidth, self.bandwidth + 1), indexing="ij")
        cols = rows + cols
        ok = (cols >= 0) & (cols < self.slots)
        return rows[ok], cols[ok]

    def rows(self, u: Array, j: Array) -> tuple[Array, Array, Array]:
        c, mu = u[..., 0::2], u[..., 1::2]
        fu, A, h = self.fu, self.A, self.h
        inward = -j / FARADAY_C_MOL  # mol/m^2/s into the particle
        G = np.zeros(c.shape[:-1] + (self.cells + 1,))  # outward molar flow through each radial face, mol/s
        G[..., 1:-1] = -A[1:-1] * self.mobility(0.5 * (c[..., 1:] + c[..., :-1]) / fu) * np.diff(mu, axis=-1) / h
        G[..., -1] = -A[-1] * inward
        R = np.empty(u.shape)
        R[..., 0::2] = np.diff(G, axis=-1) / self.volumes_m3
        mu_surf = mu[..., -1] + 0.5 * h * inward / self.mobility(c[..., -1] / fu)
        if self.ch:
            R[..., 1::2] = mu - self.law.mu_hom_J_mol(c / fu) + self.law.kappa_J_m5_mol2 * (c @ self.lap.T)
            return R, -mu_surf / FARADAY_C_MOL, c[..., -1] / fu
        R[..., 1::2] = mu - c
        return R, self.law.ocv_V(mu_surf / fu), mu_surf / fu

    def initial(self) -> tuple[Array, float]:
        c0 = np.full(self.cells, self.electrode.x_initial * self.fu)
        u0 = np.empty(self.slots)
        u0[0::2] = c0
        if self.ch:
            u0[1::2] = self.law.mu_hom_J_mol(c0 / self.fu) - self.law.kappa_J_m5_mol2 * (self.lap @ c0)
            return u0, -float(u0[-1]) / FARADAY_C_MOL
        u0[1::2] = c0
        return u0, float(self.law.ocv_V(np.array([self.electrode.x_initial]))[0])

    def stoichiometry(self, u: Array) -> Array:
        return u[..., 0::2] / self.fu

    @property
    def centres_m(self) -> Array:
        return self.mesh.centres_m


def discretise(electrode: Electrode, temperature_K: float):
    """The discretisation of an electrode's particle law (the place to add new particle models)."""
    if isinstance(electrode.particle, CahnHilliard2DParticle):
        from .particles2d import AxisymmetricSphere
        return AxisymmetricSphere(electrode, temperature_K)
    if isinstance(electrode.particle, (CahnHilliardParticle, FickianParticle)):
        return SplitSphere(electrode, temperature_K)
    raise TypeError(f"no discretisation for particle law {type(electrode.particle).__name__}")
