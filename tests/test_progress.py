"""What ``pbahpc run`` shows on rank 0's terminal (``pbahpc.driver.progress``): a start and an end line for
every stage of every iteration, progress lines no closer than ``campaign.progress_interval_s``, the closing
summary naming files that exist, the same lines in logs/driver.log; ``--quiet`` shows none of them. The
reduced demo (all roles, properties and P2D included) runs on 2 ranks, lattice-gas campaigns on 1 and 4."""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, demo_campaign, run_pbahpc, write_campaign
from pbahpc.driver import EXIT_OK, PIPELINE

STAGE = re.compile(rf"^iteration (\d+)/\d+ ({'|'.join(s.name for s in PIPELINE)}): (.*)$")
STDERR = re.compile(r"^\[pbahpc \d\d:\d\d:\d\d\] (.*)$")
DRIVER_LOG = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ (.*)$")
PLACES = re.compile(r"^  (report|potential|plots|P2D results) +(.*)$")
# what a run printed before this feature, and still prints with --quiet
TODAY = re.compile(r"^(campaign '.*' on \d+ rank\(s\)|rank layout for|  \S+ +\d+ rank\(s\)|iteration \d+/\d+ done"
                   r"|campaign complete: )")
TIMESTAMP_S = 0.002  # driver.log's milliseconds are truncated


def messages(stderr: str) -> list[str]:
    return [m[1] for line in stderr.splitlines() if (m := STDERR.match(line))]


def driver_log(run_dir: Path) -> list[tuple[datetime, str]]:
    rows = [DRIVER_LOG.match(line) for line in (run_dir / "logs" / "driver.log").read_text().splitlines()]
    return [(datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f"), m[2]) for m in rows if m]


def kind(text: str) -> str:
    return "started" if text.startswith("started") else "done" if text.startswith("done in ") else "progress"


def check(stderr: str, run_dir: Path, stages: list[str], interval_s: float) -> dict[str, int]:
    """The checks every run passes; returns how many progress lines each stage printed."""
    msgs = messages(stderr)
    logged = driver_log(run_dir)
    assert msgs == [m for _, m in logged]  # the same lines, in the same order
    iterations = sum(1 for m in msgs if re.match(r"iteration \d+/\d+ done", m))
    assert iterations >= 1
    rows = [(int(m[1]), m[2], kind(m[3]), t) for t, text in logged if (m := STAGE.match(text))]
    ends = [(k, s, c) for k, s, c, _ in rows if c != "progress"]
    assert ends == [(k, s, c) for k in range(1, iterations + 1) for s in stages for c in ("started", "done")]
    running, last, counts = None, {}, dict.fromkeys(stages, 0)
    for k, s, c, t in rows:
        if c == "started":
            running, last[k, s] = (k, s), t
        elif c == "progress":
            assert running == (k, s), f"progress of iteration {k} {s} outside its stage"
            gap = (t - last[k, s]).total_seconds()  # from the stage's start, then from the previous line
            assert gap >= interval_s - TIMESTAMP_S, f"iteration {k} {s}: progress lines {gap:.3f} s apart"
            last[k, s] = t
            counts[s] += 1
        else:
            running = None
    return counts


def closing(msgs: list[str]) -> list[str]:
    return msgs[next(i for i, m in enumerate(msgs) if m.startswith("campaign complete")) + 1:]


def test_fields_of_several_groups_in_one_phrase():
    from pbahpc.driver.progress import duration, render

    parts = {"replica-0": {"cycles": (3, 10), "candidates": 2, "halt gamma": 12.345678},
             "replica-1": {"cycles": (4, 10), "candidates": 1, "note": "x"}}
    assert render(parts) == "7/20 cycles, 3 candidates, halt gamma replica-0 12.35, note replica-1 x"
    assert render({"trainer": {"passes": 12, "loss": 3.2e-4}}) == "12 passes, loss 0.00032"
    assert [duration(s) for s in (4.25, 65, 3725)] == ["4.2 s", "1m05s", "1h02m"]


# ------------------------------------------------------------------------------------------ demo, 2 ranks
def reduced_demo(tmp: Path) -> Path:
    """The end-to-end campaign with less of everything: 2 iterations at most, then properties and a P2D cell
    of a few seconds."""
    path = demo_campaign(tmp)
    cfg = yaml.safe_load(path.read_text())
    cfg["campaign"].update(iterations=2, progress_interval_s=1.0)
    cfg["replicas"].update(cycles=4)
    cfg["properties"]["free_energy"]["cycles_per_window"] = 2
    p2d = yaml.safe_load((tmp / "p2d.yaml").read_text())
    p2d["protocol"][0]["charge"]["for_s"] = 900.0
    (tmp / "p2d.yaml").write_text(yaml.safe_dump(p2d))
    return write_campaign(path, cfg)


def test_demo_shows_stages_progress_and_where_the_results_are(tmp_path):
    pytest.importorskip("motep")
    out = run_pbahpc(2, "run", str(reduced_demo(tmp_path)), timeout=600)
    assert out.returncode == EXIT_OK, out.stderr[-3000:]
    run_dir = tmp_path / "run"
    counts = check(out.stderr, run_dir, [s.name for s in PIPELINE], 1.0)
    assert counts["properties"] >= 1, counts  # its runs take far longer than the interval
    # nothing else on the terminal: other ranks' warnings go to their own files (logs/<group>-rank<r>.log)
    assert [line for line in out.stderr.splitlines() if not STDERR.match(line)] == [], out.stderr[-3000:]

    msgs = messages(out.stderr)
    tail = closing(msgs)
    assert re.match(r"(converged after \d+ iteration\(s\)|\d+ iteration\(s\) done, not converged)", tail[0]), tail
    places = {m[1]: re.sub(r" \(the newest of \d+\)$", "", m[2]).split(", ")
              for line in tail if (m := PLACES.match(line))}
    assert {"report", "potential", "plots", "P2D results"} <= places.keys(), tail
    for paths in places.values():
        assert all(Path(p).is_file() for p in paths), paths
    assert places["report"] == [str(run_dir / "report.html"), str(run_dir / "properties" / "report.txt")]
    assert re.fullmatch(r".*/potentials/potential-\d{6}\.mtp", places["potential"][0])
    headline = {m[1]: m[2] for line in tail if (m := re.match(r"^  (train|properties|continuum) +(.*)$", line))}
    assert "rmse training" in headline["train"] and "final voltage" in headline["continuum"], tail
    assert re.search(r"voltage -?\d+\.\d{3} V", headline["properties"]), tail  # the teacher's is not the paper's
    # what the stages did, on their end lines
    ends = {m[2]: m[3] for m in map(STAGE.match, msgs) if m and m[3].startswith("done in ")}
    assert re.search(r": \d+ cycles, \d+ candidates, \d+ halted", ends["sample"]), ends
    assert re.search(r"\d+ labelled, \d+ kept", ends["label"]) and "rmse training" in ends["train"], ends
    starts = [m[3] for m in map(STAGE.match, msgs) if m and m[1] == "2" and m[3].startswith("started")]
    assert "left in this iteration (as in iteration 1)" in starts[0], starts  # the estimate


# ------------------------------------------------------------------------------------------ lattice gas, 1 and 4 ranks
def lattice_gas(tmp: Path, name: str, ranks: int, interval_s: float) -> Path:
    """inputs/smoke.yaml with a larger lattice: a sample stage of about a second."""
    cfg = yaml.safe_load((ROOT / "inputs" / "smoke.yaml").read_text())
    cfg["campaign"].update(name=name, run_dir=str(tmp / name), progress_interval_s=interval_s)
    cfg["replicas"].update(cycles=40, sweeps_per_cycle=100, lattice=16)
    if ranks < 4:  # every role on the first rank(s)
        cfg["replicas"]["temperatures_K"] = cfg["replicas"]["temperatures_K"][:ranks]
        cfg["layout"].update(trainer={"ranks": 1, "shared": True}, oracle={"ranks": 1, "shared": True})
    return write_campaign(tmp / f"{name}.yaml", cfg)


@pytest.mark.parametrize("ranks", [1, 4])
def test_lattice_gas_progress_on_1_and_4_ranks(tmp_path, ranks):
    interval_s = 0.2
    out = run_pbahpc(ranks, "run", str(lattice_gas(tmp_path, "lg", ranks, interval_s)), timeout=120)
    assert out.returncode == EXIT_OK, out.stderr[-3000:]
    stages = [s.name for s in PIPELINE if s.name not in ("properties",)]  # smoke has no properties group
    counts = check(out.stderr, tmp_path / "lg", stages, interval_s)
    assert counts["sample"] >= 1, counts
    progress = [m for m in messages(out.stderr) if (s := STAGE.match(m)) and kind(s[3]) == "progress"]
    assert all(re.search(r": \d+/\d+ cycles", p) for p in progress), progress
    if ranks == 4:  # replica-1's reports reach rank 0 from another rank
        assert any("(2 of 2 replicas)" in p for p in progress), progress
    assert closing(messages(out.stderr))[0] == "3 iteration(s) done, not converged within the budget"


def test_quiet_prints_only_what_it_printed_before(tmp_path):
    loud = run_pbahpc(2, "run", str(lattice_gas(tmp_path, "loud", 2, 0.1)), timeout=120)
    quiet = run_pbahpc(2, "run", str(lattice_gas(tmp_path, "quiet", 2, 0.1)), "--quiet", timeout=120)
    assert loud.returncode == quiet.returncode == EXIT_OK, loud.stderr[-2000:] + quiet.stderr[-2000:]
    new = [m for m in messages(loud.stderr) if not TODAY.match(m)]
    assert any(STAGE.match(m) for m in new) and "3 iteration(s) done, not converged within the budget" in new
    assert [m for m in messages(quiet.stderr) if not TODAY.match(m)] == []
    assert sum(1 for m in messages(quiet.stderr) if re.match(r"iteration \d/3 done", m)) == 3
    assert driver_log(tmp_path / "quiet")[-1][1].startswith("campaign complete")
