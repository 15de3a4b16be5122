"""report.html of a real campaign (conftest.report_campaign: MTP active learning, properties with the
reference runs, a P2D charge), opened in Debian's headless Chromium: every section renders, every image
decodes (the page's own script marks those whose naturalWidth is 0), and a screenshot is not blank.
``pbahpc report RUNDIR`` on a run directory with parts missing says so per section; bad input is one line."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, env, report_campaign, run_pbahpc
from pbahpc.cli import main
from pbahpc.driver import EXIT_OK, EXIT_USAGE
from pbahpc.report import SECTIONS

pytest.importorskip("motep")

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SECTION = re.compile(r'<section id="([a-z0-9-]+)" data-state="(\w+)"><h2>([^<]+)</h2>')


def chromium() -> str:
    exe = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not exe:
        pytest.skip("no Chromium: tools/setup.sh installs Debian's `chromium` where apt-get is available "
                    "(it could not here)")
    return exe


def browse(page: Path, tmp: Path) -> tuple[str, Path]:
    """The DOM after the load event (the page's image check has run) and a screenshot, each by a fresh
    headless Chromium with its own profile."""
    exe, shot = chromium(), tmp / "shot.png"
    base = [exe, *FLAGS, "--window-size=1300,4000", "--virtual-time-budget=10000"]
    dom = subprocess.run([*base, f"--user-data-dir={tmp / 'profile-dom'}", "--dump-dom", page.resolve().as_uri()],
                         capture_output=True, text=True, timeout=60)
    assert dom.returncode == 0, dom.stderr[-2000:]
    out = subprocess.run([*base, f"--user-data-dir={tmp / 'profile-shot'}", f"--screenshot={shot}",
                          page.resolve().as_uri()], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and shot.exists(), out.stderr[-2000:]
    return dom.stdout, shot


def images(dom: str) -> tuple[int, int]:
    m = re.search(r'<body data-images="(\d+) images, (\d+) broken"', dom)
    assert m, "the page's image check did not run (body data-images still pending)"
    return int(m[1]), int(m[2])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    out = run_pbahpc(2, "run", str(report_campaign(tmp)), timeout=300)
    assert out.returncode == EXIT_OK, out.stderr[-3000:]
    return tmp / "run"


def test_campaign_page_renders_every_section_in_chromium(run_dir, tmp_path):
    from matplotlib.image import imread

    page = run_dir / "report.html"  # written by `pbahpc run` as the campaign completed
    text = page.read_text()
    assert not re.search(r'(src|href)="(https?:|file:|/)', text), "the page must not load anything from outside"
    dom, shot = browse(page, tmp_path)
    found = SECTION.findall(dom)
    assert [s for s, _, _ in found] == list(SECTIONS)
    assert {s: state for s, state, _ in found} == dict.fromkeys(SECTIONS, "ok")
    n, broken = images(dom)
    # statistics, >= 1 free energy (learned and/or reference), Arrhenius, the 3 P2D figures
    assert n >= 6 and broken == 0, (n, broken)
    assert dom.count('data-ok="1"') == n
    for want in ("force RMSE new", "within tolerance", "paper", "rhombohedral", "D against 1000/T", "idle share",
                 "p2d-iter-000000.h5", "properties report"):
        assert want in dom or want in text, want
    pixels = imread(shot)
    assert pixels.shape[0] >= 4000 and len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 50


def test_a_broken_image_is_caught(run_dir, tmp_path):
    """The check above can fail: one image's data cut short is marked broken and counted."""
    text = (run_dir / "report.html").read_text()
    start = text.index("data:image/png;base64,") + len("data:image/png;base64,")
    page = tmp_path / "broken.html"
    page.write_text(text[:start] + "iVBORw0KGgo" + text[text.index('"', start):])
    dom, _ = browse(page, tmp_path)
    n, broken = images(dom)
    assert broken == 1 and dom.count("data-broken") >= 1 and dom.count('data-ok="1"') == n - 1


def test_report_command_says_what_is_missing(run_dir, tmp_path):
    partial = Path(shutil.copytree(run_dir, tmp_path / "partial"))
    (partial / "report.html").unlink()
    shutil.rmtree(partial / "properties")
    shutil.rmtree(partial / "continuum")
    (partial / "statistics.h5").write_bytes(b"not HDF5")
    out = subprocess.run([sys.executable, "-m", "pbahpc", "report", str(partial)], capture_output=True, text=True,
                         env=env(), cwd=ROOT, timeout=120)
    assert out.returncode == EXIT_OK, out.stderr
    dom, _ = browse(partial / "report.html", tmp_path)
    states = {s: state for s, state, _ in SECTION.findall(dom)}
    assert states == {"summary": "ok", "learning": "error", "gamma": "error", "fidelity": "missing",
                      "free-energy": "missing", "arrhenius": "missing", "structure": "missing", "p2d": "missing",
                      "timings": "ok", "properties-text": "missing"}
    assert "no properties.h5 in" in dom and "no p2d-iter-*.h5 in" in dom and "could not be read" in dom
    assert images(dom)[1] == 0


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "nowhere") in err and "not a pbahpc run directory" in err
    run = tmp_path / "run"
    (run / "logs").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    for out in (tmp_path / "no" / "page.html", run / "logs"):  # no such directory; a directory
        assert main(["report", str(run), "--out", str(out)]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"cannot write {out}: expected a file" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["checkpoints", "logs", "run"]
