"""GCMC-MD replicas in real LAMMPS, run through the driver, against exact statistical mechanics.

LAMMPS's metal-unit constants define mu: an insertion is accepted with
min(1, V / (Lambda^3 (N + 1)) exp(beta (mu - dU))), Lambda = h / sqrt(2 pi m kT).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate

from pbahpc.checkpoint import read_checkpoint_file

from conftest import run_pbahpc, write_campaign

H_EV_PS = 4.135667403e-3  # LAMMPS metal units: hplanck (eV ps), mvv2e, boltz
MVV2E = 1.0364269e-4
KB = 8.617343e-5
MASS_AR = 39.948


def thermal_wavelength_A(mass_amu: float, T: float) -> float:
    return math.sqrt(H_EV_PS**2 / (2 * math.pi * mass_amu * MVV2E * KB * T))


def replica_campaign(tmp_path: Path, name: str, gcmc: dict, temps, mus, cycles=50, iterations=3,
                     ranks_each=1) -> Path:
    return write_campaign(tmp_path / f"{name}.yaml", {
        "campaign": {"name": name, "seed": 11, "iterations": iterations, "run_dir": str(tmp_path / name)},
        "layout": {"replicas": {"ranks_each": ranks_each}},
        "replicas": {"engine": "lammps-gcmc", "temperatures_K": list(temps), "mu_eV": list(mus),
                     "cycles": cycles, "gcmc": gcmc}})


def replica_results(tmp_path: Path, name: str) -> dict:
    payload, _ = read_checkpoint_file(tmp_path / name / "results.h5")
    return payload["groups"]


IDEAL_GAS = {"structure": "box", "box_A": 20.0, "inserted": "Ar", "potential": "lammps", "species": ["Ar"],
             "masses_amu": [MASS_AR], "pair_commands": ["pair_style zero 3.0", "pair_coeff * *"],
             "ensemble": "mc", "exchanges": 200, "translations": 0, "frame_stride": 1000}


def ideal_gas_mu(T: float, n_mean: float, volume: float) -> float:
    return KB * T * math.log(n_mean * thermal_wavelength_A(MASS_AR, T) ** 3 / volume)


def test_ideal_gas_matches_lammps_definition_of_mu(tmp_path):
    """Empty box, no interactions: N is Poisson with mean V exp(beta mu) / Lambda^3."""
    T, V = 300.0, 20.0**3
    mus = [ideal_gas_mu(T, 10.0, V), ideal_gas_mu(T, 40.0, V)]
    out = run_pbahpc(2, "run", str(replica_campaign(tmp_path, "ideal", IDEAL_GAS, [T], mus, cycles=100)))
    assert out.returncode == 0, out.stderr
    res = replica_results(tmp_path, "ideal")
    for i, expected in enumerate((10.0, 40.0)):
        n = res[f"replica-{i}"]["N"][20:]  # 20 cycles to fill the box from empty
        # 200 exchange attempts per cycle decorrelate N between cycles; 280 samples of a Poisson
        # variable: sigma of the mean = sqrt(mean / 280) = 0.19 / 0.38; allow 4 sigma
        assert abs(n.mean() - expected) < 4 * math.sqrt(expected / n.size), (i, n.mean())
        assert 0.7 < n.var() / expected < 1.4  # Poisson: variance = mean


def _langmuir_setup(depth_eV=0.8, alpha=2.0, cutoff=2.9, spacing=6.0, n=3):
    """27 frozen attractive sites (type S) on a cubic lattice; Na-Na repulsion keeps one Na per site."""
    sites = (np.indices((n, n, n)).reshape(3, -1).T + 0.5) * spacing
    return sites, {
        "structure": "file", "inserted": "Na", "potential": "lammps", "species": ["Na", "He"],
        "masses_amu": [22.98977, 4.0026], "cutoff_A": cutoff,
        "pair_commands": [f"pair_style hybrid morse {cutoff} born {cutoff}",
                          f"pair_coeff 1 2 morse {depth_eV} {alpha} 0.0",
                          "pair_coeff 1 1 born 50.0 0.3 0.0 0.0 0.0",
                          "pair_coeff 2 2 none"],
        "ensemble": "mc", "exchanges": 1000, "translations": 100, "max_displacement_A": 0.3,
        "frame_stride": 1000}


def test_langmuir_isotherm_on_independent_sites(tmp_path):
    """theta = z e^{beta mu} / (1 + z e^{beta mu}), z = (1/Lambda^3) * integral of e^{-beta U} over one site."""
    import ase
    import ase.io

    sites, gcmc = _langmuir_setup()
    host = tmp_path / "host.extxyz"
    ase.io.write(host, ase.Atoms("He27", positions=sites, cell=[18.0] * 3, pbc=True))
    gcmc["structure_file"] = str(host)
    T = 600.0
    beta = 1 / (KB * T)
    D, a, rc = 0.8, 2.0, 2.9
    well = integrate.quad(lambda r: 4 * math.pi * r * r * math.exp(-beta * D * ((1 - math.exp(-a * r)) ** 2 - 1)),
                          0, rc)[0]
    cube = 6.0**3  # each site's share of the box; outside the cutoff U = 0
    z = (well + (cube - 4 / 3 * math.pi * rc**3)) / thermal_wavelength_A(22.98977, T) ** 3
    thetas = (0.25, 0.5, 0.75)
    mus = [KB * T * math.log(th / (1 - th) / z) for th in thetas]
    out = run_pbahpc(3, "run", str(replica_campaign(tmp_path, "lang", gcmc, [T], mus, cycles=60, iterations=2)))
    assert out.returncode == 0, out.stderr
    res = replica_results(tmp_path, "lang")
    for i, th in enumerate(thetas):
        n = res[f"replica-{i}"]["N"][20:]
        # binomial over 27 sites: sd of N ~ 2.3-2.6; 100 samples with correlation -> allow 0.05 in theta
        assert abs(n.mean() / 27 - th) < 0.05, (th, n.mean() / 27)


def biased_ideal_gas_mean(T, mu, V, phi, target, n_max=400):
    """Exact <N> of an ideal gas under the bias phi (N - N_t)^2: P(N) ~ (V/L^3)^N / N! e^{beta(mu N - B(N))}."""
    beta = 1 / (KB * T)
    N = np.arange(n_max)
    from scipy.special import gammaln

    logp = N * math.log(V / thermal_wavelength_A(MASS_AR, T) ** 3) - gammaln(N + 1) + beta * (mu * N - phi * (N - target) ** 2)
    p = np.exp(logp - logp.max())
    return float((N * p).sum() / p.sum())


def test_bias_windows_shift_follows_eq17(tmp_path):
    """Harmonic-bias windows pull <N> toward N_t by what the exact biased sum and Eq. 17 predict."""
    T, V, phi, targets = 300.0, 20.0**3, 0.01, (35, 8)
    mu = ideal_gas_mu(T, 20.0, V)
    gcmc = {**IDEAL_GAS, "bias": {"phi_eV": phi, "targets_N": list(targets), "min_cycles": 90, "max_cycles": 90}}
    out = run_pbahpc(1, "run", str(replica_campaign(tmp_path, "bias", gcmc, [T], [mu], cycles=60, iterations=3)))
    assert out.returncode == 0, out.stderr
    rep = replica_results(tmp_path, "bias")["replica-0"]
    summary = rep["windows"]["summary"]
    assert summary.shape == (2, 7) and list(summary[:, 2]) == list(targets) and rep["windows"]["finished"]
    for w, target in enumerate(targets):
        sel = rep["target_N"] == target
        n = rep["N"][sel][15:]  # 15 cycles to relax from the previous window
        exact = biased_ideal_gas_mean(T, mu, V, phi, target)
        assert abs(exact - 20.0) > 3  # the bias matters here
        sd = math.sqrt(KB * T / (2 * phi + KB * T / exact))  # window width (analysis reference)
        assert abs(n.mean() - exact) < 4 * sd / math.sqrt(n.size) + 0.1, (target, n.mean(), exact)
        # Eq. 17 (fixed volume): mu(<N>) = mu_b - 2 phi (<N> - N_t), with mu(N) = kT ln(N Lambda^3 / V)
        mu_eq17 = mu - 2 * phi * (n.mean() - target)
        assert abs(ideal_gas_mu(T, n.mean(), V) - mu_eq17) < 0.01  # eV; statistical noise ~1e-3 eV
        np.testing.assert_allclose(rep["bias_eV"][sel], phi * (rep["N"][sel] - target) ** 2)


def test_two_rank_replica_gives_the_same_statistics(tmp_path):
    """One replica on 2 ranks (LAMMPS domain decomposition) samples the same Poisson distribution."""
    T, V = 300.0, 20.0**3
    mu = ideal_gas_mu(T, 25.0, V)
    out = run_pbahpc(2, "run", str(replica_campaign(tmp_path, "two", IDEAL_GAS, [T], [mu], cycles=50,
                                                    ranks_each=2)))
    assert out.returncode == 0, out.stderr
    n = replica_results(tmp_path, "two")["replica-0"]["N"][20:]
    assert abs(n.mean() - 25.0) < 4 * math.sqrt(25.0 / n.size)
    assert 0.7 < n.var() / 25.0 < 1.4


def test_stop_inside_md_checkpoints_and_the_chain_continues(tmp_path):
    """SIGUSR1 during long MD cycles: exit 75 well within one iteration's time, resume, every cycle completes.

    The signal is sent when iteration 1 reports done, so it lands inside iteration 2's MD on a machine of any speed;
    the stop latency is compared with iteration 1's own duration, measured in the same run.
    """
    import os
    import signal
    import subprocess
    import time

    from conftest import env, pbahpc_cmd

    T, V = 300.0, 20.0**3
    gcmc = {**IDEAL_GAS, "ensemble": "nvt", "md_steps": 200000, "stop_check_steps": 50, "translations": 10}
    path = replica_campaign(tmp_path, "stop", gcmc, [T], [ideal_gas_mu(T, 20.0, V)], cycles=2, iterations=2,
                            ranks_each=2)
    proc = subprocess.Popen(pbahpc_cmd(2, "run", str(path)), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    start = None
    for line in proc.stderr:
        if "rank layout" in line:
            start = time.monotonic()
        if "iteration 1/2 done" in line:
            break
    assert start is not None and proc.poll() is None, "finished before the signal"
    t = time.monotonic()
    iteration_s = t - start
    os.kill(proc.pid, signal.SIGUSR1)
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode == 75, err
    assert time.monotonic() - t < 0.5 * iteration_s, (time.monotonic() - t, iteration_s)
    out = run_pbahpc(2, "run", str(path), timeout=600)
    assert out.returncode == 0, out.stderr
    rep = replica_results(tmp_path, "stop")["replica-0"]
    assert rep["N"].shape == (4,) and rep["cell"].shape == (4, 6)
    assert np.all(rep["N"] > 0)


def test_window_schedule_converges_and_resamples():
    """Schedule logic on synthetic N series: drifting windows run to max_cycles, flat ones close early."""
    from pbahpc.config.schema import BiasSection
    from pbahpc.atomistic.windows import WindowSchedule

    sched = WindowSchedule(BiasSection(phi_eV=0.01, targets_N=(10, 20), rounds=2, min_cycles=4, max_cycles=8,
                                       tolerance_N=0.6))
    assert sched.target == 10
    for n in (0, 3, 6, 9, 12, 15, 18, 21):  # steady drift: never converged, closes at max_cycles
        sched.record(n)
    assert sched.target == 20 and sched.summary[-1][3:4] == (8,) and sched.summary[-1][-1] == 0
    for n in (20, 20, 21, 20):  # flat: converged after min_cycles
        sched.record(n)
    assert sched.summary[-1][:4] == (0, 1, 20, 4) and sched.summary[-1][-1] == 1
    assert sched.target == 10  # second round
    copy = WindowSchedule(sched.bias)
    copy.load_state(sched.state())
    for s in (sched, copy):
        for n in (10,) * 4 + (20,) * 4:
            s.record(n)
    assert sched.finished and copy.finished and sched.summary == copy.summary and sched.target == 20


def test_iteration_files_hold_observables_and_frames(tmp_path):
    from pbahpc.checkpoint import read_checkpoint_file

    T, V = 300.0, 20.0**3
    gcmc = {**IDEAL_GAS, "frame_stride": 2}
    out = run_pbahpc(1, "run", str(replica_campaign(tmp_path, "files", gcmc, [T], [ideal_gas_mu(T, 10.0, V)],
                                                    cycles=4, iterations=2)))
    assert out.returncode == 0, out.stderr
    whole = replica_results(tmp_path, "files")["replica-0"]
    for it in range(2):
        payload, header = read_checkpoint_file(tmp_path / "files" / "replicas" / "replica-0" / f"iter-{it:06d}.h5")
        assert header.meta["first_cycle"] == 4 * it and header.meta["species"] == ["Ar"]
        np.testing.assert_array_equal(payload["observables"]["N"], whole["N"][4 * it: 4 * it + 4])
        assert sorted(payload["frames"]) == [f"{c:08d}" for c in range(4 * it, 4 * it + 4, 2)]
        for c, frame in payload["frames"].items():
            assert len(frame["numbers"]) == whole["N"][int(c)] and np.all(frame["numbers"] == 18)
            assert frame["positions_A"].shape == (len(frame["numbers"]), 3)


def test_teacher_pba_replicas_under_the_driver(tmp_path):
    """The demo set-up: NPT GCMC-MD of Na_xMn[Fe(CN)6] with the teacher on both sides of its two-phase mu."""
    import yaml

    from conftest import ROOT

    cfg = yaml.safe_load((ROOT / "inputs" / "gcmc.yaml").read_text())
    cfg["campaign"]["run_dir"] = str(tmp_path / "pba")
    cfg["replicas"]["cycles"] = 6
    path = write_campaign(tmp_path / "pba.yaml", cfg)
    out = run_pbahpc(2, "run", str(path))
    assert out.returncode == 0, out.stderr
    res = replica_results(tmp_path, "pba")
    low, high = res["replica-0"], res["replica-1"]
    assert low["mu_eV"] == -1.85 and high["mu_eV"] == -1.55
    # start at x = 1 (4 Na in 8 cages): below the two-phase mu the cell empties, above it never does
    assert low["N"][-1] < 4 and low["N"][-1] <= low["N"][0]
    assert np.all(high["N"] >= 4) and np.all(high["N"] <= 8)
    volume = 10.3**3
    for rep in (low, high):
        assert np.all(np.abs(rep["volume_A3"] / volume - 1) < 0.05)  # framework intact under NPT
        acc = rep["accept"][~np.isnan(rep["accept"])]
        assert np.all((acc >= 0) & (acc <= 1))
        assert np.all(rep["pe_eV"] < 0)


def test_teacher_oracle_labels_and_screens_frames(tmp_path):
    """Frames from the replicas are labelled by the teacher (checked by recomputing them) and screened."""
    import yaml
    from ase import Atoms

    from conftest import ROOT
    from pbahpc.oracle.teacher import TeacherCalculator

    cfg = yaml.safe_load((ROOT / "inputs" / "gcmc.yaml").read_text())
    cfg["campaign"]["run_dir"] = str(tmp_path / "lab")
    cfg["layout"]["oracle"] = {"ranks": 2, "shared": True}
    cfg["oracle"] = {"engine": "teacher", "max_force_eV_A": 5.0}
    cfg["replicas"].update(cycles=4)
    cfg["replicas"]["gcmc"].update(frame_stride=2)
    out = run_pbahpc(2, "run", str(write_campaign(tmp_path / "lab.yaml", cfg)))
    assert out.returncode == 0, out.stderr
    oracle = replica_results(tmp_path, "lab")["oracle"]
    assert oracle["labelled"] == 2 * 2 * 2  # replicas x frames per iteration x iterations
    calc = TeacherCalculator()
    discarded = 0
    for rep in ("replica-0", "replica-1"):
        for it in range(2):
            payload, _ = read_checkpoint_file(tmp_path / "lab" / "replicas" / rep / f"iter-{it:06d}.h5")
            for key, f in payload["frames"].items():
                atoms = Atoms(numbers=f["numbers"], positions=f["positions_A"], cell=f["cell_A"], pbc=True)
                atoms.calc = calc
                name = f"{rep}:{key}"
                assert oracle["energies"][name] == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
                too_big = np.linalg.norm(atoms.get_forces(), axis=1).max() > 5.0
                assert (name in oracle["reasons"]) == too_big
                discarded += too_big
    assert oracle["discarded"] == discarded  # thermal max |F| at 300 K: ~3.5-7 eV/A, so 5 splits them


def test_full_energy_exchanges_after_translations_on_two_ranks(tmp_path):
    """fix gcmc full_energy on 2 ranks: a translation that carries an ion across the subdomain boundary
    used to make the next insertion/deletion of the same call remove the wrong atom (a rejected insertion
    stayed, whatever its energy; then "Lost atoms"). Large displacements make such crossings frequent."""
    gcmc = {"structure": "pba", "cells": 1, "a_A": 10.25, "x_inserted": 1.0, "potential": "teacher",
            "teacher": "cathode", "ensemble": "npt", "md_steps": 20, "timestep_fs": 0.5, "exchanges": 100,
            "translations": 100, "max_displacement_A": 2.5, "full_energy": True, "overlap_cutoff_A": 1.0,
            "frame_stride": 1000}
    out = run_pbahpc(2, "run", str(replica_campaign(tmp_path, "cross", gcmc, [500.0], [-1.55], cycles=40,
                                                    iterations=1, ranks_each=2)))
    assert out.returncode == 0, out.stderr
    pe = replica_results(tmp_path, "cross")["replica-0"]["pe_eV"]
    # a cell of 56 framework atoms + <= 8 Na at 500 K fluctuates by ~1 eV; a Na left inside the framework
    # by a wrong rejection costs 10^1..10^4 eV
    assert np.all(np.diff(pe) < 5.0), np.diff(pe).max()


def test_rollbacks_do_not_pile_up_exclusion_groups(tmp_path):
    """Each halt defines new fix gcmc IDs, each with an exclusion group that the next snapshot keeps;
    LAMMPS allows 32 groups: 40 halts (a long campaign) must still run."""
    from mpi4py import MPI

    from pbahpc.atomistic.gcmc_replica import GcmcMdReplica
    from pbahpc.config import load
    from pbahpc.driver.layout import Group

    gcmc = {"structure": "pba", "cells": 1, "potential": "teacher", "teacher": "cathode", "ensemble": "npt",
            "md_steps": 5, "exchanges": 2, "translations": 2, "full_energy": True}
    cfg = load(replica_campaign(tmp_path, "halts", gcmc, [500.0], [-1.55], cycles=1, iterations=1))
    rep = GcmcMdReplica(cfg, Group("replica-0", "replicas", 0, (0,)), MPI.COMM_SELF, np.random.SeedSequence(1))
    try:
        rep._snapshot()
        for _ in range(40):  # what a halt does: roll back, go on, snapshot the next good cycle
            rep.halts.append((0, 0, np.inf))
            rep._rollback()
            rep.lmp.command("run 2")
            rep._snapshot()
        assert len([g for g in rep.lmp.available_ids("group") if g]) <= 4  # all, inserted, 2 exclusion groups
    finally:
        rep.lmp.close()
