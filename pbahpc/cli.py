"""Command line: ``pbahpc run|check|doctor|p2d|status|report|scaling`` (``p2d --from-pybamm`` / ``--to-pybamm``
convert PyBaMM parameter sets in and out).

Exit codes: 0 done, 1 failed (see the run's logs/), 2 bad input (nothing written),
75 stopped by a signal after writing a checkpoint (requeue the job; it resumes by itself).
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from .config import ConfigError, load, read_on_root
from .driver.campaign import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pbahpc", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run (or resume) a campaign under mpiexec/srun")
    run.add_argument("campaign", type=Path, help="campaign YAML file")
    run.add_argument("--resume", action="store_true",
                     help="require a checkpoint to resume from (by default one is used if present)")
    run.add_argument("--quiet", action="store_true",
                     help="no stage, progress and closing-summary lines (only the layout, iterations, errors)")
    chk = sub.add_parser("check", help="validate a campaign file and print the rank layout, without running")
    chk.add_argument("campaign", type=Path)
    chk.add_argument("--ranks", type=int, default=None, help="number of MPI ranks to lay out (default: 1)")
    sub.add_parser("doctor", help="report the MPI/LAMMPS/PETSc/HDF5 stack and check that they share one MPI")
    p2d = sub.add_parser("p2d", help="run one pseudo-2D cell simulation from a parameter set (no campaign), "
                                     "or convert a PyBaMM parameter set in or out")
    p2d.add_argument("parameters", type=Path, help="P2D parameter YAML file (see inputs/p2d-*.yaml); with "
                                                   "--from-pybamm the file to write")
    p2d.add_argument("--out", type=Path, default=None, help="output directory (p2d.h5 and plots)")
    p2d.add_argument("--no-plots", action="store_true", help="write p2d.h5 only")
    p2d.add_argument("--from-pybamm", metavar="NAME|module:function", default=None,
                     help="write PARAMETERS from a PyBaMM ParameterValues (a set name such as Chen2020, or a "
                          "function returning one) instead of running")
    p2d.add_argument("--cells-x", type=int, default=10, metavar="N",
                     help="with --from-pybamm: x-cells per electrode (the separator gets N/2, at least 2)")
    p2d.add_argument("--cells-r", type=int, default=20, metavar="N", help="with --from-pybamm: radial cells per particle")
    p2d.add_argument("--to-pybamm", metavar="OUT.py", type=Path, default=None,
                     help="write a Python module whose parameter_values() is PARAMETERS as a PyBaMM "
                          "ParameterValues, instead of running")
    st = sub.add_parser("status", help="report where a campaign stands (read-only, no MPI)")
    st.add_argument("run_dir", type=Path, help="the campaign's run directory")
    rp = sub.add_parser("report", help="write RUNDIR/report.html from what the run directory holds (no MPI)")
    rp.add_argument("run_dir", type=Path, help="the campaign's run directory")
    rp.add_argument("--out", type=Path, default=None, help="write the page here instead (e.g. a read-only run)")
    sc = sub.add_parser("scaling", help="strong/weak scaling sweep (no mpiexec: it launches each point itself)")
    scs = sc.add_subparsers(dest="scaling_command", required=True)
    scr = scs.add_parser("run", help="run a sweep spec (see inputs/scaling-demo.yaml) and write the tables")
    scr.add_argument("spec", type=Path, help="sweep spec YAML")
    scr.add_argument("--out", type=Path, default=None, help="result directory (default: the spec's output)")
    scr.add_argument("--ranks", type=int, nargs="+", default=None, help="run only these rank counts")
    scr.add_argument("--kernels", nargs="+", default=None, help="run only these kernels")
    scr.add_argument("--no-plots", action="store_true", help="write scaling.h5 and scaling.txt only")
    scr.add_argument("--model", type=Path, default=None, metavar="COEFFS.json",
                     help="also compare with the calibrated model (tools/scaling_model.py --calibrate)")
    scm = scs.add_parser("merge", help="merge result directories (e.g. one per SLURM job) into one table")
    scm.add_argument("dirs", type=Path, nargs="+", help="result directories")
    scm.add_argument("--out", type=Path, required=True, help="directory for the merged tables")
    scm.add_argument("--no-plots", action="store_true")
    scm.add_argument("--model", type=Path, default=None, metavar="COEFFS.json",
                     help="also compare with the calibrated model (tools/scaling_model.py --calibrate)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "doctor":
        from .doctor import main as doctor
        return doctor([])
    if args.command == "status":
        from .status import main as status
        return status(args.run_dir)
    if args.command == "report":
        from .report import main as report
        return report(args.run_dir, args.out)
    if args.command == "check":
        return _check(args.campaign, args.ranks)
    if args.command == "scaling":
        from .scaling.cli import main as scaling
        return scaling(args)
    if args.command == "p2d":
        return _p2d(args)
    return _run(args.campaign, args.resume, args.quiet)


def _p2d(args) -> int:
    given = [f"--{k.replace('_', '-')}" for k in ("out", "from_pybamm", "to_pybamm") if getattr(args, k) is not None]
    if len(given) != 1:
        print(f"pbahpc p2d: needs exactly one of --out, --from-pybamm, --to-pybamm, got {' and '.join(given) or 'none'}",
              file=sys.stderr)
        return EXIT_USAGE
    if args.from_pybamm is not None:
        from .continuum.pybamm_io import from_pybamm_main
        return from_pybamm_main(args.from_pybamm, args.parameters, args.cells_x, args.cells_r)
    if args.to_pybamm is not None:
        from .continuum.pybamm_io import to_pybamm_main
        return to_pybamm_main(args.parameters, args.to_pybamm)
    from mpi4py import MPI

    from .continuum.standalone import run_p2d
    from .driver.signals import StopSignal
    with StopSignal(after_exit=signal.SIG_IGN) as stop:
        return run_p2d(args.parameters, args.out, MPI.COMM_WORLD, stop, plots=not args.no_plots)


def _check_structures(cfg, path: Path) -> None:
    """What only the built starting structure can tell, checked before anything is written (ConfigError):
    an overlap cutoff that would reject every GCMC move of the replicas or of the free-energy windows
    (these always use full_energy, and so do the replicas once the MTP drives them: LAMMPS's fix gcmc
    turns full_energy on for a many-body pair style, whatever the input says; the demo's replicas with
    1.6 A accepted no insertion under the MTP and were empty from iteration 2 on)."""
    if cfg.replicas.engine != "lammps-gcmc":
        return
    import dataclasses

    import numpy as np

    from .atomistic.gcmc_replica import check_overlap_cutoff, initial_structure

    gc, source = cfg.replicas.gcmc, str(path)
    atoms = initial_structure(gc, np.random.default_rng(0))
    under_mtp = cfg.layout.trainer.ranks and cfg.trainer.engine == "mtp"
    check_overlap_cutoff(dataclasses.replace(gc, full_energy=True) if under_mtp else gc, atoms, source=source)
    fe = cfg.properties.free_energy
    if cfg.layout.properties.ranks and fe.temperatures_K:
        windows = dataclasses.replace(gc, full_energy=True, overlap_cutoff_A=fe.overlap_cutoff_A)
        check_overlap_cutoff(windows, atoms, "properties.free_energy.overlap_cutoff_A", source)


def _check(path: Path, ranks: int | None) -> int:
    from .driver.layout import plan

    if ranks is not None and ranks < 1:
        print(f"pbahpc: --ranks: must be >= 1, got {ranks}", file=sys.stderr)
        return EXIT_USAGE
    try:
        cfg = load(path)
        layout = plan(cfg, ranks or 1)
        _check_structures(cfg, path)
    except ConfigError as exc:
        print(f"pbahpc: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{path}: valid campaign '{cfg.campaign.name}', {cfg.campaign.iterations} iteration(s), "
          f"run directory {cfg.campaign.run_dir}")
    print(layout.describe())
    return EXIT_OK


def _driver_logger(run_dir: Path, rank: int) -> logging.Logger:
    log = logging.getLogger("pbahpc")
    log.setLevel(logging.INFO)
    log.propagate = False
    if rank == 0 and not log.handlers:
        err = logging.StreamHandler(sys.stderr)
        err.setFormatter(logging.Formatter("[pbahpc %(asctime)s] %(message)s", "%H:%M:%S"))
        fh = logging.FileHandler(run_dir / "logs" / "driver.log")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(err)
        log.addHandler(fh)
    return log


def _run(path: Path, require_checkpoint: bool, quiet: bool) -> int:
    from .driver.signals import StopSignal

    # From the start: a batch system's warning during start-up (MPI, reading the campaign) is kept for
    # the first sync point instead of ending the rank by the signal's default action; after the end it is
    # ignored (see StopSignal).
    with StopSignal(after_exit=signal.SIG_IGN) as stop:
        from mpi4py import MPI  # imported here so check/doctor work without initialising MPI

        from .driver.campaign import Driver, ResumeRefused, StartupFailed, prepare_run_dir
        from .driver.layout import plan

        world = MPI.COMM_WORLD  # the one place COMM_WORLD is taken; everything below gets it passed
        rank = world.Get_rank()
        # srun with a PMI this MPI does not speak starts N singletons, each of which would run the whole
        # campaign into the same run directory (SLURM_STEP_NUM_TASKS: set by srun, not in the batch shell)
        step_tasks = os.environ.get("SLURM_STEP_NUM_TASKS", "")
        if world.Get_size() == 1 and step_tasks.isdigit() and int(step_tasks) > 1:
            print(f"pbahpc: srun started {step_tasks} tasks but MPI sees 1 rank in each: the step's PMI does not "
                  "match this MPI; launch with srun --mpi=pmi2 or pmix (see srun --mpi=list)", file=sys.stderr)
            return EXIT_USAGE

        def read():
            cfg = load(path)
            plan(cfg, world.Get_size())
            _check_structures(cfg, path)
            try:
                prepare_run_dir(cfg)
            except OSError as exc:
                raise ConfigError("campaign.run_dir", f"cannot create run directory ({exc})", str(path)) from None
            return cfg

        cfg = read_on_root(world, read)
        if cfg is None:
            return EXIT_USAGE
        layout = plan(cfg, world.Get_size())
        log = _driver_logger(Path(cfg.campaign.run_dir), rank)
        if rank == 0:
            log.info("campaign '%s' on %d rank(s), run directory %s", cfg.campaign.name, world.Get_size(),
                     cfg.campaign.run_dir)
            for line in layout.describe().splitlines():
                log.info("%s", line)
        try:
            driver = Driver(cfg, world, layout, stop, log, quiet)
        except StartupFailed:
            return EXIT_FAILED
        try:
            resumed = driver.resume()
        except ResumeRefused as exc:
            if rank == 0:
                print(f"pbahpc: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if require_checkpoint and not resumed:
            if rank == 0:
                print(f"pbahpc: --resume: no checkpoint in {driver.store.directory}", file=sys.stderr)
            return EXIT_USAGE
        code = driver.run()
    if rank == 0 and code == EXIT_OK:
        _write_report(driver, log)
    if rank == 0 and code == EXIT_OK and not quiet:
        _closing_summary(driver, log)
    return code


def _write_report(driver, log: logging.Logger) -> None:
    """report.html of a completed campaign; a page that cannot be made must not fail a finished run."""
    from .report import write_report

    try:
        write_report(Path(driver.cfg.campaign.run_dir))
    except Exception as exc:  # noqa: BLE001 - `pbahpc report RUNDIR` can make it later
        log.warning("report.html not written (%s: %s); `pbahpc report %s` retries", type(exc).__name__, exc,
                    driver.cfg.campaign.run_dir)


def _closing_summary(driver, log: logging.Logger) -> None:
    """Converged or not, where the results are (only files that exist) and the stages' headline numbers."""
    c = driver.cfg.campaign
    run_dir = Path(c.run_dir)
    if driver.converged:
        log.info("converged after %d iteration(s)", driver.iteration)
    else:
        log.info("%d iteration(s) done, %s", driver.iteration,
                 "not converged within the budget" if c.stop_when_converged else "stop_when_converged: false")
    p2d = sorted((run_dir / "continuum").glob("*.h5"))  # one per iteration the continuum group ran
    found = {"report": [run_dir / "report.html", run_dir / "properties" / "report.txt"],
             "potential": sorted((run_dir / "potentials").glob("potential-*.mtp"))[-1:],
             "plots": [run_dir / "statistics.png", *sorted((run_dir / "properties").glob("*.png")),
                       *sorted((run_dir / "continuum").glob("*.png"))],
             "P2D results": p2d[-1:]}
    for what, paths in found.items():
        paths = [str(p) for p in paths if p.is_file()]
        if paths:
            log.info("  %-12s %s%s", what, ", ".join(paths),
                     f" (the newest of {len(p2d)})" if what == "P2D results" and len(p2d) > 1 else "")
    for stage, text in driver.reporter.headlines():
        log.info("  %-12s %s", stage, text)


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
