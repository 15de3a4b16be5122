"""The trainer's native evaluator (pbahpc/mlip/plugin/mtp_train.cpp on pair_style mtp's kernels) against motep's
train mode (an independent implementation) and against finite differences of its own energies."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("motep")

from pbahpc.atomistic.structure import build_pba  # noqa: E402
from pbahpc.mlip.evaluator import Evaluator  # noqa: E402
from pbahpc.mlip.templates import build_template  # noqa: E402
from pbahpc.mlip.train import _neighbours, to_motep  # noqa: E402

SPECIES = ("Na", "Mn", "Fe", "C", "N")
CASES = [(1, 2), (2, 4), (5, 4), (3, 6), (5, 8), (5, 12)]  # (species count, level)


def setup(species_count: int, level: int, seed: int):
    """motep's data of an MTP with random coefficients and a rattled PBA cell of random species, its
    neighbours (motep's layout) and species indices."""
    from motep.calculator import make_mtp_engine

    rng = np.random.default_rng(seed)
    species = SPECIES[:species_count]
    mtp = build_template(level).data(species_count, min_dist=0.9, max_dist=5.0, radial_basis_size=8)
    s, rfc, rbs = mtp.species_count, mtp.radial_funcs_count, mtp.radial_basis_size
    mtp.radial_coeffs = rng.uniform(-0.1, 0.1, (s, s, rfc, rbs))
    mtp.species_coeffs = rng.uniform(-5, 5, s)
    mtp.moment_coeffs = rng.uniform(-5, 5, mtp.alpha_scalar_moments)
    data = to_motep(mtp, species)
    atoms = build_pba(1, n_na=2, rng=rng)
    atoms.rattle(0.05, seed=seed)
    atoms.symbols = rng.choice(species, len(atoms))
    js, rs = _neighbours(atoms, data, make_mtp_engine("cext"))
    itypes = np.array([species.index(s) for s in atoms.get_chemical_symbols()], dtype=np.int32)
    return data, atoms, js, rs, itypes


def directions(natoms: int, seed: int):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1), rng.standard_normal((natoms, 3)), rng.standard_normal((3, 3))


@pytest.mark.parametrize("species_count,level", CASES)
def test_equals_motep_train_mode(species_count, level):
    """Basis values, position and strain derivatives, and the radial derivatives (motep forms the full
    Jacobians; contracted here with random directions) to 1e-10 of each quantity's largest entry (measured
    up to 5e-15: the same sums in another order)."""
    from motep.potentials.mtp.base import MomentBasisData, RadialBasisData
    from motep.potentials.mtp.cext import _mtp_cext

    data, atoms, js, rs, itypes = setup(species_count, level, seed=level + species_count)
    natoms, k = len(atoms), data.radial_coeffs.size
    mbd, rbd = MomentBasisData(mode="train"), RadialBasisData(mode="train")
    mbd.initialize(natoms, data)
    rbd.initialize(natoms, data)
    mbd.clean()
    rbd.clean()
    _mtp_cext.calc_train(js, rs, itypes, itypes[js], data, rbd, mbd)
    evaluator = Evaluator(data)
    values, dbdr, dbdeps = evaluator.design(js, rs, itypes)
    energy, displacements, strain = directions(natoms, seed=level)
    grad = evaluator.radial(js, rs, itypes, energy, displacements, strain)
    theirs = (energy * mbd.dvdcs.reshape(k, natoms).sum(axis=-1) + mbd.dgdcs.reshape(k, -1) @ displacements.ravel()
              + mbd.dsdcs.reshape(k, 9) @ strain.ravel())
    for ours, ref in ((values, mbd.vatoms.sum(axis=-1)), (dbdr, mbd.dbdris), (dbdeps, mbd.dbdeps), (grad, theirs)):
        assert np.abs(ours - ref).max() <= 1e-10 * np.abs(ref).max()


def _energy(evaluator, data, js, rs, itypes):
    """The MTP energy without the species terms, theta . b (eV)."""
    return data.moment_coeffs @ evaluator.design(js, rs, itypes)[0]


@pytest.mark.parametrize("species_count,level", [(2, 4), (5, 8)])
def test_equals_finite_differences(species_count, level):
    """theta . db/dR = dE/dR and theta . sum_n dB/dr_n (x) r_n = dE/dstrain (central differences of the
    energy, moving one atom's neighbour vectors / straining them all), and the radial derivative of
    a E + D . dE/dR + G : dE/dstrain from central differences of those over the radial coefficients.
    Step 1e-5 (A, strain, coefficient): truncation ~h^2 and round-off ~eps/h, measured up to 1.2e-9 of the
    largest entry, so 1e-8 (a 0.1 % error in one term of the radial derivative shows as 2e-7)."""
    data, atoms, js, rs, itypes = setup(species_count, level, seed=11)
    evaluator = Evaluator(data)
    theta = data.moment_coeffs
    _, dbdr, dbdeps = evaluator.design(js, rs, itypes)
    h = 1e-5
    rng = np.random.default_rng(3)
    # atom i moves: its own vectors shrink, the vectors pointing to it grow
    for i in rng.choice(len(atoms), 3, replace=False):
        for axis in range(3):
            fd = []
            for sign in (1, -1):
                moved = rs.copy()
                moved[i, :, axis] -= sign * h
                moved[js == i, axis] += sign * h
                fd.append(_energy(evaluator, data, js, moved, itypes))
            analytic = theta @ dbdr[:, i, axis]
            assert abs((fd[0] - fd[1]) / (2 * h) - analytic) <= 1e-8 * np.abs(theta @ dbdr.reshape(len(theta), -1)).max()
    strain_grad = np.einsum("k,kab->ab", theta, dbdeps)
    for a in range(3):
        for b in range(3):
            fd = []
            for sign in (1, -1):
                eps = np.eye(3)
                eps[a, b] += sign * h
                fd.append(_energy(evaluator, data, js, rs @ eps.T, itypes))
            assert abs((fd[0] - fd[1]) / (2 * h) - strain_grad[a, b]) <= 1e-8 * np.abs(strain_grad).max()
    energy, displacements, strain = directions(len(atoms), seed=5)
    grad = evaluator.radial(js, rs, itypes, energy, displacements, strain)

    def phi() -> float:
        evaluator.update()
        values, dbdr, dbdeps = evaluator.design(js, rs, itypes)
        return (energy * theta @ values + np.einsum("k,kia,ia", theta, dbdr, displacements)
                + np.einsum("k,kab,ab", theta, dbdeps, strain))

    start = data.radial_coeffs.copy()
    for index in rng.choice(start.size, 6, replace=False):
        fd = []
        for sign in (1, -1):
            data.radial_coeffs = start.copy()
            data.radial_coeffs.flat[index] += sign * h
            fd.append(phi())
        assert abs((fd[0] - fd[1]) / (2 * h) - grad[index]) <= 1e-8 * np.abs(grad).max()
    data.radial_coeffs = start
