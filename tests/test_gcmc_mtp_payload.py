"""The GCMC-MD replica under the trainer's MTP: a "potential" payload in the inbox switches LAMMPS to pair_style
mtp (isolated zero, the active set), every cycle records gamma_max of its final configuration, frames carry
their gamma and only 2 < gamma < 10 go to the oracle, a checkpoint round trip re-applies the potential, and a
grade above gamma_stop halts the replica and rolls it back to its last good cycle.

The replica's LAMMPS types (Mn, Na) are in the opposite order to the MTP's species (trainer.species: Na, Mn),
so the pair_coeff mapping is exercised too.
"""
from __future__ import annotations

import logging
from types import SimpleNamespace

from mpi4py import MPI  # before lammps: it loads the MPI library that liblammps links
import ase.io
import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from conftest import write_campaign
from pbahpc.atomistic.gcmc_replica import GcmcMdReplica
from pbahpc.checkpoint import read_checkpoint_file, write_tree
from pbahpc.config import ConfigError, load
from pbahpc.driver.component import StepContext
from pbahpc.mlip.active_set import ActiveSet, basis_rows, read_active_set, write_active_set
from pbahpc.mlip.mtp_file import read_mtp, write_mtp
from pbahpc.mlip.templates import site_energy
from test_pair_mtp import random_atoms, random_potential

MTP_SPECIES = ("Na", "Mn")  # trainer.species: MTP species index order
TYPES = ("Mn", "Na")  # the replica's LAMMPS types 1, 2
MU = -5.0
GROUP = SimpleNamespace(index=0, name="replica-0", role="replicas")


def config(tmp_path, host, **gcmc):
    return load(write_campaign(tmp_path / "c.yaml", {
        "campaign": {"name": "gmtp", "seed": 3, "iterations": 2, "run_dir": str(tmp_path / "run")},
        "trainer": {"engine": "mtp", "species": list(MTP_SPECIES)},
        "replicas": {"engine": "lammps-gcmc", "temperatures_K": [600.0], "mu_eV": [MU], "cycles": 4,
                     "gcmc": {"structure": "file", "structure_file": str(host), "inserted": "Na",
                              "potential": "lammps", "species": list(TYPES), "masses_amu": [54.94, 22.99],
                              "pair_commands": ["pair_style zero 5.0", "pair_coeff * *"], "cutoff_A": 5.0,
                              "ensemble": "mc", "exchanges": 2, "translations": 20, "max_displacement_A": 0.1,
                              "frame_stride": 1, **gcmc}}}))


def context(iteration):
    return StepContext(MPI.COMM_SELF, GROUP, iteration, logging.getLogger("test"), lambda: False, lambda cb: cb)


def mtp_index(atoms) -> np.ndarray:
    return np.array([MTP_SPECIES.index(s) for s in atoms.get_chemical_symbols()])


def frame_atoms(frame):
    return ase.Atoms(numbers=frame["numbers"], positions=frame["positions_A"], cell=frame["cell_A"], pbc=True)


def reference(pot, als, frame) -> tuple[float, float]:
    """(energy with `isolated zero`, largest grade) of a frame, in numpy."""
    data, active = read_mtp(pot), read_active_set(als)
    atoms = frame_atoms(frame)
    species = mtp_index(atoms)
    i, j, d = neighbor_list("ijD", atoms, data.max_dist)
    energy = sum(site_energy(data, d[i == a], species[a], species[j[i == a]]) - data.species_coeffs[species[a]]
                 for a in range(len(atoms)))
    gamma = active.grades(basis_rows(data, atoms, species), species).max()
    return float(energy), float(gamma)


@pytest.fixture(scope="module")
def potential(tmp_path_factory):
    """A random level-10 Na/Mn MTP, its active set over six random cells, and a seventh cell as the host."""
    rng = np.random.default_rng(21)
    data = random_potential(10, 2, rng)
    training = [random_atoms(rng, 30, 2) for _ in range(6)]
    active = ActiveSet.select(data, [(a, mtp_index(a)) for a in training])
    folder = tmp_path_factory.mktemp("pot")
    write_mtp(folder / "pot.mtp", data)
    write_active_set(folder / "pot.als", active)
    host = random_atoms(rng, 30, 2)
    ase.io.write(folder / "host.extxyz", host)
    payload = {"mtp": str(folder / "pot.mtp"), "active_set": str(folder / "pot.als"), "iteration": 0,
               "n_train": 6, "rmse_energy_eV_atom": 0.0, "rmse_forces_eV_A": 0.0, "rmse_stress_GPa": 0.0}
    return payload, folder / "host.extxyz"


def check_cycles(replica, frames, pot, als, cycles):
    """pe_eV and gamma_max of the last ``cycles`` cycles against numpy on their frames (the cycle-end ones;
    "<cycle>.<step>" frames come from within a cycle)."""
    frames = {k: f for k, f in frames.items() if "." not in k}
    assert len(frames) == cycles
    for k, (name, frame) in enumerate(sorted(frames.items())):
        energy, gamma = reference(pot, als, frame)
        cycle = len(replica.obs["N"]) - cycles + k
        assert replica.obs["pe_eV"][cycle] == pytest.approx(energy, rel=1e-8, abs=1e-10)
        assert replica.obs["gamma_max"][cycle] == pytest.approx(gamma, rel=1e-8)
        assert frame["gamma"] == replica.obs["gamma_max"][cycle]
        assert frame["candidate"] == int(replica.gc.gamma_select < gamma < replica.gc.gamma_stop)


def test_payload_switches_to_the_mtp_and_grades_every_cycle(tmp_path, potential):
    payload, host = potential
    pot, als = payload["mtp"], payload["active_set"]
    cfg = config(tmp_path, host, gamma_stop=1e9)  # a random potential: grades run high, no halts here
    replica = GcmcMdReplica(cfg, GROUP, MPI.COMM_SELF, np.random.SeedSequence(4))
    frames = {}
    keep = replica._write_iteration
    replica._write_iteration = lambda ctx, done: (frames.update(replica.frames), keep(ctx, done))
    out = replica.step(context(1), {"potential": {"trainer": {}, "trainer-b": payload}})
    assert replica.mtp == {"mtp": pot, "active_set": als}
    check_cycles(replica, frames, pot, als, 4)
    assert sorted(out["candidates"]) == sorted(k for k, f in frames.items() if f["candidate"])
    assert any(abs(e) > 1e-3 for e in replica.obs["pe_eV"][-4:])  # no longer pair_style zero
    # the per-iteration file holds the grades too
    written, _ = read_checkpoint_file(tmp_path / "run" / "replicas" / "replica-0" / "iter-000001.h5")
    np.testing.assert_array_equal(written["observables"]["gamma_max"], replica.obs["gamma_max"][-4:])

    # checkpoint round trip into a fresh replica (which starts on pair_style zero): the MTP is re-applied
    write_tree(tmp_path / "ckpt.h5", {"replica": replica.state()}, meta={})
    state, _ = read_checkpoint_file(tmp_path / "ckpt.h5")
    resumed = GcmcMdReplica(cfg, GROUP, MPI.COMM_SELF, np.random.SeedSequence(99))
    resumed.load_state(state["replica"])
    assert resumed.mtp == replica.mtp
    frames.clear()
    keep = resumed._write_iteration
    resumed._write_iteration = lambda ctx, done: (frames.update(resumed.frames), keep(ctx, done))
    resumed.step(context(2), {"potential": {"trainer": payload}})  # the same payload: nothing to redo
    check_cycles(resumed, frames, pot, als, 4)
    assert len(resumed.obs["gamma_max"]) == 8
    replica.lmp.close()
    resumed.lmp.close()


def test_before_a_potential_every_frame_goes_out_ungraded_and_the_window_is_open(tmp_path, potential):
    _, host = potential
    replica = GcmcMdReplica(config(tmp_path, host), GROUP, MPI.COMM_SELF, np.random.SeedSequence(4))
    out = replica.step(context(0), {"potential": {"trainer": {}}})  # the trainer's payload before its first fit
    assert len(out["candidates"]) == 4 and all(set(f) == {"numbers", "positions_A", "cell_A"}
                                                for f in out["candidates"].values())
    assert np.isnan(replica.obs["gamma_max"]).all() and replica.mtp == {}
    assert set(replica.obs["pe_eV"]) == {0.0}  # still pair_style zero
    assert [replica.is_candidate(g) for g in (1.0, 2.0, 2.0001, 9.999, 10.0, 50.0)] == [False, False, True, True,
                                                                                          False, False]
    replica.lmp.close()
    replica = GcmcMdReplica(config(tmp_path, host, gamma_select=1.5, gamma_stop=3.0), GROUP, MPI.COMM_SELF,
                            np.random.SeedSequence(4))
    assert [replica.is_candidate(g) for g in (1.5, 2.0, 3.0)] == [False, True, False]
    replica.lmp.close()
    with pytest.raises(ConfigError) as err:
        config(tmp_path, host, gamma_select=5.0, gamma_stop=4.0)
    assert err.value.key == "replicas.gcmc.gamma_stop"


def sorted_rows(a):
    a = np.asarray(a)
    return a[np.lexsort(a.T[::-1])]


def test_gamma_above_stop_halts_and_rolls_back_to_the_last_good_cycle(tmp_path, potential):
    payload, host = potential
    inbox = {"potential": {"trainer": payload}}
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    free = GcmcMdReplica(config(tmp_path / "a", host, gamma_stop=1e9), GROUP, MPI.COMM_SELF, np.random.SeedSequence(4))
    free.step(context(1), inbox)
    gammas = np.array(free.obs["gamma_max"])
    free.lmp.close()
    # a threshold that the first cycle stays below and a later one exceeds (same seed: same chain until then)
    later = int(np.argmax(gammas[1:])) + 1
    assert gammas[later] > gammas[0], gammas
    stop = 0.5 * (gammas[:later].max() + gammas[later]) if gammas[:later].max() < gammas[later] else None
    assert stop is not None, gammas
    first_bad = int(np.argmax(gammas > stop))
    replica = GcmcMdReplica(config(tmp_path / "b", host, gamma_stop=float(stop), gamma_select=0.0), GROUP,
                            MPI.COMM_SELF, np.random.SeedSequence(4))
    frames = {}
    keep = replica._write_iteration
    replica._write_iteration = lambda ctx, done: (frames.update(replica.frames), keep(ctx, done))
    out = replica.step(context(1), inbox)
    assert out["sampling"]["halted"] == 1 and out["sampling"]["halt_gamma"] == pytest.approx(gammas[first_bad])
    assert len(replica.obs["N"]) == first_bad == len(out["candidates"]) == len(out["sampling"]["gamma_max"])
    np.testing.assert_allclose(out["sampling"]["gamma_max"], gammas[:first_bad], rtol=1e-10)
    assert replica.halts == [(1, first_bad, pytest.approx(gammas[first_bad]))]
    # the configuration that halted it comes out as "beyond", graded as numpy grades it
    beyond = out["beyond"]
    _, gamma = reference(payload["mtp"], payload["active_set"], beyond)
    assert beyond["gamma"] == pytest.approx(gamma, rel=1e-8) and gamma == pytest.approx(gammas[first_bad], rel=1e-8)
    # LAMMPS holds the configuration of the last good cycle again
    from pbahpc.atomistic.lammps_setup import atoms_from_lammps

    now = atoms_from_lammps(replica.lmp, replica.potential.species)
    last = frames[max(frames)]
    np.testing.assert_allclose(sorted_rows(now.positions), sorted_rows(last["positions_A"]), atol=1e-9)
    # the next iteration goes on from there on fresh random streams: not a replay of the path to the halt
    again = replica.step(context(2), inbox)
    replay = again["sampling"]["halted"] and not len(again["sampling"]["gamma_max"]) \
        and again["sampling"]["halt_gamma"] == pytest.approx(out["sampling"]["halt_gamma"])
    assert not replay
    assert replica.results()["halts"]["rows"].shape[0] == len(replica.halts) >= 1
    replica.lmp.close()


def test_md_steps_inside_a_cycle_are_graded_and_the_most_extrapolative_is_kept(tmp_path, potential):
    """NVT cycles of 6 MD steps, graded every 2nd step: each cycle adds one "<cycle>.<step>" frame from an
    even step strictly inside the run, whose recorded gamma is the numpy grade of its configuration."""
    payload, host = potential
    cfg = config(tmp_path, host, ensemble="nvt", md_steps=6, timestep_fs=0.5, gamma_select=0.0, gamma_stop=1e9,
                 gamma_check_steps=2, exchanges=0)
    replica = GcmcMdReplica(cfg, GROUP, MPI.COMM_SELF, np.random.SeedSequence(8))
    out = replica.step(context(1), {"potential": {"trainer": payload}})
    inner = {k: f for k, f in out["candidates"].items() if "." in k}
    assert len(inner) == 4  # one per cycle
    for key, frame in inner.items():
        cycle, step = (int(x) for x in key.split("."))
        first = cycle * 6  # the replica starts at step 0; each cycle is one run of 6 steps
        assert first < step < first + 6 and step % 2 == 0, key
        _, gamma = reference(payload["mtp"], payload["active_set"], frame)
        assert frame["gamma"] == pytest.approx(gamma, rel=1e-8)
    replica.lmp.close()
