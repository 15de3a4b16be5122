"""MTP trainer: exact recovery of linear coefficients, a fit to teacher data that beats the mean-energy
baseline on held-out cells, and the same potential on 1 and 2 MPI ranks."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("motep")


from pbahpc.atomistic.structure import build_pba  # noqa: E402
from pbahpc.mlip.mtp_file import read_mtp  # noqa: E402
from pbahpc.mlip.templates import build_template  # noqa: E402
from pbahpc.mlip.dataset import labelled_copy  # noqa: E402
from pbahpc.mlip.train import labels, loss, rmse, to_motep, train  # noqa: E402
from pbahpc.oracle.teacher import TeacherCalculator  # noqa: E402

from conftest import env, mpiexec  # noqa: E402

from mpi4py import MPI  # noqa: E402

SPECIES = ("Na", "Mn", "Fe", "C", "N")


def labelled(calc_factory, count: int, seed: int, rattle: float = 0.05, random_species: bool = False):
    """Single 1x1x1 PBA cells with 0..4 random Na and rattled atoms, labelled by a calculator;
    ``random_species`` draws every atom's species (so that the species counts vary between cells)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        atoms = build_pba(1, n_na=int(rng.integers(0, 5)), rng=rng)
        atoms.rattle(rattle, seed=int(rng.integers(1 << 30)))
        if random_species:
            atoms.symbols = rng.choice(SPECIES, len(atoms))
        atoms.calc = calc_factory()
        out.append(labelled_copy(atoms))
    return out


def template(level: int):
    return build_template(level).data(len(SPECIES), min_dist=0.9, max_dist=5.0, radial_basis_size=8)


def random_mtp(level: int, seed: int):
    """An MTP with random radial (+-0.1), species and moment (+-5) coefficients."""
    rng = np.random.default_rng(seed)
    mtp = template(level)
    s, rfc, rbs = mtp.species_count, mtp.radial_funcs_count, mtp.radial_basis_size
    mtp.radial_coeffs = rng.uniform(-0.1, 0.1, (s, s, rfc, rbs))
    mtp.species_coeffs = rng.uniform(-5, 5, s)
    mtp.moment_coeffs = rng.uniform(-5, 5, mtp.alpha_scalar_moments)
    return mtp


def test_linear_solve_recovers_random_coefficients():
    """Data labelled by an MTP with random coefficients: with its radial coefficients fixed, the linear
    solve gives back its moment and species coefficients."""
    from motep.calculator import MTP

    truth = random_mtp(8, seed=3)
    theirs = to_motep(truth, SPECIES)
    configs = labelled(lambda: MTP(theirs, engine="cext"), 12, seed=4, random_species=True)
    start = template(8)
    start.radial_coeffs = truth.radial_coeffs.copy()
    pot, errors = train(configs, start, SPECIES, MPI.COMM_SELF, radial_steps=0, ridge=1e-14)
    np.testing.assert_array_equal(pot.radial_coeffs, truth.radial_coeffs)
    np.testing.assert_allclose(pot.moment_coeffs, truth.moment_coeffs, rtol=0, atol=1e-8)
    np.testing.assert_allclose(pot.species_coeffs, truth.species_coeffs, rtol=0, atol=1e-8)
    # Exact data: what is left is round-off, so each error is bounded relative to its own scale. The
    # RMSEs: 1e-12 of the labels' RMS (per-atom energy, force component; measured 4e-15 and 2.4e-14: the
    # solve loses a few digits to the ridge and the conditioning of the normal equations). The loss is
    # reported from the normal equations, theta.A.theta - 2 theta.b + y.y, whose terms are each ~ the zero
    # potential's loss L0 = y.y/n and cancel: its round-off is bounded by ~ (number of linear coefficients)
    # x eps x L0 (measured 0 on one machine, 4.6e-16 L0 on another; an absolute 1e-16 failed there).
    zero = dataclasses.replace(pot, moment_coeffs=np.zeros_like(pot.moment_coeffs),
                               species_coeffs=np.zeros_like(pot.species_coeffs))
    scale_loss = loss(zero, SPECIES, configs, MPI.COMM_SELF)
    e_rms = np.sqrt(np.mean([(labels(a)[0] / len(a)) ** 2 for a in configs]))
    f_rms = np.sqrt(np.mean(np.concatenate([labels(a)[1].ravel() for a in configs]) ** 2))
    assert errors["energy"] < 1e-12 * e_rms and errors["forces"] < 1e-12 * f_rms, (errors, e_rms, f_rms)
    n_linear = pot.moment_coeffs.size + pot.species_coeffs.size
    assert errors["loss"] < n_linear * np.finfo(float).eps * scale_loss, (errors["loss"], scale_loss)


def test_isolated_energies_are_held_and_the_rest_is_solved():
    """train(isolated_eV=...): the species coefficients are the given isolated-atom energies exactly (an MTP
    atom without neighbours has that energy), and the moment coefficients of data made by an MTP with
    those species coefficients come back (fixed radial part)."""
    from motep.calculator import MTP

    truth = random_mtp(6, seed=5)
    configs = labelled(lambda: MTP(to_motep(truth, SPECIES), engine="cext"), 12, seed=6, random_species=True)
    start = template(6)
    start.radial_coeffs = truth.radial_coeffs.copy()
    pot, _ = train(configs, start, SPECIES, MPI.COMM_SELF, radial_steps=0, ridge=1e-14,
                   isolated_eV=tuple(truth.species_coeffs))
    np.testing.assert_array_equal(pot.species_coeffs, truth.species_coeffs)
    np.testing.assert_allclose(pot.moment_coeffs, truth.moment_coeffs, rtol=0, atol=1e-8)
    # held at wrong values, the same data cannot be fitted exactly: the species coefficients are not free
    wrong, errors = train(configs, start, SPECIES, MPI.COMM_SELF, radial_steps=0, ridge=1e-14,
                          isolated_eV=(0.0,) * len(SPECIES))
    np.testing.assert_array_equal(wrong.species_coeffs, 0.0)
    assert errors["energy"] > 1e-3
    with pytest.raises(ValueError, match="isolated_eV has 2 values for 5 species"):
        train(configs, start, SPECIES, MPI.COMM_SELF, radial_steps=0, isolated_eV=(0.0, 0.0))


@pytest.fixture(scope="module")
def teacher_sets():
    return labelled(TeacherCalculator, 20, seed=1), labelled(TeacherCalculator, 8, seed=2)


def test_fit_beats_baseline_on_held_out_cells(teacher_sets):
    train_set, test_set = teacher_sets
    pot, errors = train(train_set, template(6), SPECIES, MPI.COMM_SELF, seed=0, max_iter=3, radial_steps=10)
    held_out = rmse(pot, SPECIES, test_set)
    e = np.array([labels(a)[0] / len(a) for a in test_set])
    f = np.concatenate([labels(a)[1].ravel() for a in test_set])
    baseline_e = np.sqrt(np.mean((e - np.mean([labels(a)[0] / len(a) for a in train_set])) ** 2))
    baseline_f = np.sqrt(np.mean(f ** 2))  # predicting zero forces
    assert held_out["energy"] < 0.02 and held_out["energy"] < 0.3 * baseline_e
    assert held_out["forces"] < 0.5 * baseline_f
    # the loss went down from the first linear fit at the random radial start
    _, linear_only = train(train_set, template(6), SPECIES, MPI.COMM_SELF, seed=0, radial_steps=0)
    assert errors["loss"] < 0.7 * linear_only["loss"]


MPI_SCRIPT = """
import sys
from mpi4py import MPI
sys.path.insert(0, {tests!r})
from test_mtp_train import SPECIES, TeacherCalculator, labelled, template
from pbahpc.mlip.mtp_file import write_mtp
from pbahpc.mlip.train import train
comm = MPI.COMM_WORLD.Dup()
pot, errors = train(labelled(TeacherCalculator, 6, seed=5), template(6), SPECIES, comm, seed=7, max_iter=2,
                    radial_steps=4)
if comm.Get_rank() == 0:
    write_mtp(sys.argv[1], pot)
"""


def test_same_potential_on_one_two_and_three_ranks(tmp_path):
    """Configurations are dealt to ranks by atom count and the sums Allreduced: 1, 2 and 3 ranks differ
    only in the order of the sums, i.e. by round-off (amplified by the L-BFGS steps)."""
    from pathlib import Path

    script = tmp_path / "run.py"
    script.write_text(MPI_SCRIPT.format(tests=str(Path(__file__).parent)))
    pots = []
    for n in (1, 2, 3):
        out = tmp_path / f"pot{n}.mtp"
        subprocess.run([mpiexec(), "-n", str(n), sys.executable, str(script), str(out)], check=True, env=env(),
                       cwd=tmp_path, timeout=120, capture_output=True)
        pots.append(read_mtp(out))
    for other in pots[1:]:
        for name in ("radial_coeffs", "moment_coeffs"):
            a, b = getattr(pots[0], name), getattr(other, name)
            np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9 * np.abs(a).max())
    # species_coeffs of Mn, Fe, C, N are not separately determined (their counts are the same in every
    # cell; the ridge picks them, amplifying round-off): compare what the data determine, the energies
    from motep.calculator import MTP

    energies = []
    for pot in pots:
        theirs = to_motep(pot, SPECIES)
        cells = labelled(TeacherCalculator, 6, seed=5)
        for atoms in cells:
            atoms.calc = MTP(theirs, engine="cext")
        energies.append([atoms.get_potential_energy() for atoms in cells])
    for other in energies[1:]:
        np.testing.assert_allclose(energies[0], other, rtol=1e-9)


def test_streamed_normal_equations_equal_the_dense_solve():
    """The trainer never holds the design matrix: its linear fit (normal equations summed configuration by
    configuration) equals a least-squares solve of the whole design matrix stacked from motep's own
    train-mode engine (QR, with the same column-relative ridge as extra rows)."""
    from motep.calculator import make_mtp_engine

    from pbahpc.mlip.train import DEFAULT_WEIGHTS

    configs = labelled(TeacherCalculator, 6, seed=8, random_species=True)
    start = random_mtp(6, seed=9)
    ridge = 1e-10
    pot, _ = train(configs, start, SPECIES, MPI.COMM_SELF, radial_steps=0, ridge=ridge)
    theirs = to_motep(start, SPECIES)
    w_e, w_f, w_s = DEFAULT_WEIGHTS
    n, asm = len(configs), start.alpha_scalar_moments
    rows, targets = [], []
    for atoms in configs:
        energy, forces, stress = labels(atoms)
        engine = make_mtp_engine("cext")(theirs, mode="train")
        engine.calculate(atoms.copy())
        mbd, natoms = engine.mbd, len(atoms)
        counts = [np.sum(atoms.numbers == z) for z in theirs.species]
        rows.append(np.sqrt(w_e / n) / natoms * np.concatenate([mbd.values, counts])[None])
        targets.append([np.sqrt(w_e / n) / natoms * energy])
        x = -mbd.dbdris.reshape(asm, -1).T
        rows.append(np.sqrt(w_f / (n * natoms)) * np.hstack([x, np.zeros((len(x), len(SPECIES)))]))
        targets.append(np.sqrt(w_f / (n * natoms)) * forces.ravel())
        scale_s = np.sqrt(w_s / n) * atoms.get_volume() / natoms
        rows.append(scale_s * np.hstack([mbd.dbdeps.reshape(asm, 9).T, np.zeros((9, len(SPECIES)))]))
        targets.append(scale_s * stress.ravel())
    x, y = np.vstack(rows), np.concatenate(targets)
    d = np.linalg.norm(x, axis=0)
    d[d == 0] = 1.0
    theta = np.linalg.lstsq(np.vstack([x, np.sqrt(ridge) * np.diag(d)]), np.concatenate([y, np.zeros(len(d))]),
                            rcond=None)[0]
    ours = np.concatenate([pot.moment_coeffs, pot.species_coeffs])
    # the coefficients and the predictions X theta, relative to their scale; 1e-10 leaves room for the
    # normal equations' squared condition number against QR (measured: 9e-15 and 5e-14)
    assert np.abs(ours - theta).max() < 1e-10 * np.abs(theta).max()
    assert np.linalg.norm(x @ (ours - theta)) < 1e-10 * np.linalg.norm(x @ theta)


def test_warm_start_continues_from_the_previous_potential():
    """A training set grown by 10 %: retraining from the potential of the smaller set starts at that
    potential's loss on the grown set (its radial coefficients kept, the linear ones re-solved: not above
    it), only descends, and ends by the loss test (``tol``) in a fraction of a cold training's passes
    (measured: 29 against 337, at a loss 1.38x the cold one's: a warm start keeps the previous basin)."""
    data = labelled(TeacherCalculator, 11, seed=1)
    kw = dict(max_iter=400, tol=1e-2)
    before, _ = train(data[:10], template(4), SPECIES, MPI.COMM_SELF, **kw)
    _, cold = train(data, template(4), SPECIES, MPI.COMM_SELF, **kw)
    trace = []
    _, warm = train(data, before, SPECIES, MPI.COMM_SELF, progress=lambda it, passes, value: trace.append(value),
                    **kw)
    previous = loss(before, SPECIES, data)
    assert trace[0] <= previous * (1 + 1e-9), (trace[0], previous)
    assert warm["loss"] <= trace[0] and warm["loss"] == min(trace), (warm, trace)
    assert cold["passes"] < 2 * 400, cold  # two passes per evaluation: the cap would be over 800
    assert warm["passes"] < 0.2 * cold["passes"], (warm, cold)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_variable_projection_beats_alternation_at_equal_passes(seed):
    """From the same random radial start, L-BFGS on the loss with the linear coefficients solved out reaches
    a lower loss than alternating linear solves with 5 radial steps, in no more passes (measured on seeds
    0/1/2: 3.9x/5.4x/23x lower in 71/69/67 against 84/89/90 passes). A wrong reduced gradient (not taken at
    the solved coefficients) stalls the line searches and fails this."""
    data = labelled(TeacherCalculator, 11, seed=1)
    _, alt = train(data, template(4), SPECIES, MPI.COMM_SELF, seed=seed, max_iter=10, radial_steps=5, tol=1e-12,
                   method="alternation")
    _, vp = train(data, template(4), SPECIES, MPI.COMM_SELF, seed=seed, max_iter=30, tol=1e-12)
    assert vp["passes"] <= alt["passes"], (vp, alt)
    assert vp["loss"] < 0.5 * alt["loss"], (vp, alt)


def test_configurations_are_dealt_by_atom_count():
    """Every configuration on exactly one rank, the same deal everywhere, and loads (atoms) within one
    configuration of each other (largest first to the least loaded: Graham's bound), where round-robin
    puts all large cells on one rank."""
    from pbahpc.mlip.train import balance

    sizes = [498, 64, 498, 64, 498, 64, 498, 64, 120, 300, 77]
    for ranks in (1, 2, 3, 4):
        deal = balance(sizes, ranks)
        assert sorted(k for part in deal for k in part) == list(range(len(sizes)))
        loads = [sum(sizes[k] for k in part) for part in deal]
        assert max(loads) - min(loads) <= max(sizes)
    loads = [sum(sizes[k] for k in part) for part in balance(sizes, 2)]
    assert max(loads) / min(loads) < 1.1  # round-robin: 2189 against 556
