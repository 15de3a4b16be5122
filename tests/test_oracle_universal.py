"""``oracle.calculator: universal``: labels from the checkpoint shipped in the wheel, equal to the package's
own calculator, on 1 and 2 real MPI ranks with networking disabled; bad model names and a missing package
stop at validation (exit 2, one line). The model here is CHGNet 0.3.0 (4.9 MB of weights; per label about
as fast as SevenNet-0, tools/bench_universal.py)."""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.io import read, write

from pbahpc.atomistic.structure import build_pba

from conftest import BIN, ROOT, env, mpiexec, pbahpc_cmd, write_campaign

pytest.importorskip("chgnet", reason="the universal extra is not installed (tools/setup.sh --universal)")

BASE = yaml.safe_load((ROOT / "inputs" / "smoke.yaml").read_text())
FLOAT32_EPS = float(np.finfo(np.float32).eps)  # the models compute in float32

# Python-level sockets raise in every rank (a sitecustomize): a loader that tried to download would fail
# the run; `unshare -n` also takes the network away from the whole process tree where this user may.
NO_NETWORK = r"""
import socket

class NoNetwork(socket.socket):
    def __init__(self, family=-1, *a, **k):
        if family in (socket.AF_INET, socket.AF_INET6, -1):
            raise OSError("network disabled by the test")
        super().__init__(family, *a, **k)

socket.socket = NoNetwork
"""

# The oracle's labels on one rank, as a campaign makes them (the 2-rank case: the campaign test below).
SCRIPT = r"""
import json, logging, socket, sys
import numpy as np
from ase.io import read
from mpi4py import MPI

try:
    socket.create_connection(("pypi.org", 443), timeout=1)
    blocked = False
except OSError:
    blocked = True

from pbahpc.config.load import load
from pbahpc.driver.component import StepContext
from pbahpc.mlip.dataset import frame_of
from pbahpc.oracle.ase_oracle import AseOracle
from pbahpc.oracle.universal import torch_threads

comm = MPI.COMM_WORLD
cfg = load(sys.argv[1])
frames = {f"f{i}": frame_of(a) for i, a in enumerate(read(sys.argv[2], ":"))}
ctx = StepContext(comm, None, 0, logging.getLogger("oracle"), lambda: False, lambda cb: cb)
out = AseOracle(cfg, None, comm, 0).step(ctx, {"selected": {"trainer": {"r0": frames}}})
import torch
threads, expected = comm.gather(torch.get_num_threads(), root=0), torch_threads(comm)  # collective
if comm.rank == 0:
    labels = {k.split(":")[1]: v for k, v in out["labels"].items()}
    np.savez(sys.argv[3], **{f"{k}_{q}": v[q] for k, v in labels.items()
                             for q in ("energy_eV", "forces_eV_A", "stress_eV_A3")})
    print(json.dumps({"blocked": blocked, "threads": threads, "expected": expected,
                      "quarantined": out["screened"]["quarantined"], "screened": out["screened"]["screened"]}))
"""


def campaign(tmp_path: Path, **universal) -> Path:
    data = copy.deepcopy(BASE)
    data["campaign"]["run_dir"] = str(tmp_path / "run")
    data["layout"]["trainer"] = {"ranks": 0}
    data["oracle"] = {"engine": "teacher", "calculator": "universal", "universal": universal}
    return write_campaign(tmp_path / "c.yaml", data)


def frames():
    """Small cells that span the campaign's chemistry: sodiated and empty PBA, strained, and bcc Na."""
    rng = np.random.default_rng(7)
    rich = build_pba(1, 10.4, x_na=2.0, rng=rng)
    empty = build_pba(1, 10.1, x_na=0.0, rng=rng)
    empty.set_cell(np.array(empty.cell) @ np.diag([1.02, 0.99, 1.0]), scale_atoms=True)
    na = bulk("Na", "bcc", a=4.2, cubic=True).repeat(2)
    for i, a in enumerate((rich, empty, na)):
        a.rattle(0.04, seed=i)
    return [rich, empty, na]


def offline(tmp_path: Path) -> dict[str, str]:
    """The test environment with the socket blocker installed as sitecustomize."""
    site = tmp_path / "offline"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_NETWORK)
    e = env()
    e["PYTHONPATH"] = f"{site}:{e['PYTHONPATH']}"
    return e


def no_network_prefix() -> list[str]:
    """``unshare -n`` (a new network namespace: no interface but a down loopback) where this user may."""
    exe = shutil.which("unshare")
    if exe and subprocess.run([exe, "-n", "true"], capture_output=True).returncode == 0:
        return [exe, "-n"]
    return []


@pytest.fixture(scope="module")
def direct(tmp_path_factory):
    """The frames and their labels by the package's own calculator, loaded its own way (CHGNet.load's
    default, the 0.3.0 weights), called directly."""
    from chgnet.model import CHGNetCalculator

    path = tmp_path_factory.mktemp("frames") / "frames.extxyz"
    write(path, frames())
    calc = CHGNetCalculator(use_device="cpu")
    ref = []
    for a in read(path, ":"):
        a.calc = calc
        ref.append((float(a.get_potential_energy()), a.get_forces(), a.get_stress()))
    return path, ref


def assert_same_labels(got, ref) -> None:
    """Labels (E eV, F eV/A, stress eV/A^3) equal the package's direct ones up to float32 round-off: the
    same float32 model on other thread counts sums in another order, a few ulps apart."""
    for (e, f, s), (e0, f0, s0) in zip(got, ref, strict=True):
        assert e == pytest.approx(e0, abs=16 * FLOAT32_EPS * abs(e0))
        np.testing.assert_allclose(f, f0, rtol=0, atol=1e-4 * float(np.max(np.abs(f0))))
        np.testing.assert_allclose(s, s0, rtol=0, atol=1e-4 * float(np.max(np.abs(s0))))


def test_labels_equal_the_package_calculator_offline(tmp_path, direct):
    path, ref = direct
    script = tmp_path / "oracle.py"
    script.write_text(SCRIPT)
    cmd = [*no_network_prefix(), mpiexec(), "-n", "1", sys.executable, str(script),
           str(campaign(tmp_path, model="chgnet-0.3.0")), str(path), str(tmp_path / "labels.npz")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=offline(tmp_path), cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["blocked"] and not info["quarantined"] and not info["screened"]
    assert info["threads"] == [info["expected"]]
    got = np.load(tmp_path / "labels.npz")
    assert_same_labels([(float(got[f"f{i}_energy_eV"]), got[f"f{i}_forces_eV_A"], got[f"f{i}_stress_eV_A3"])
                        for i in range(len(ref))], ref)


def test_reduced_campaign_offline_on_two_oracle_ranks(tmp_path):
    """inputs/mnfepba-universal.yaml cut to one iteration (pre-training MD at x = 0 and 2 with the model,
    the replicas' first frames, one MTP fit) on 2 ranks, the oracle on both: it ends, prints nothing of
    CHGNet's (nor torch's warning about it), and every frame of the training set carries the package's
    own labels of that frame."""
    from chgnet.model import CHGNetCalculator

    data = yaml.safe_load((ROOT / "inputs" / "mnfepba-universal.yaml").read_text())
    data["campaign"].update(iterations=1, run_dir=str(tmp_path / "run"))
    data["layout"]["properties"] = {"ranks": 0}
    del data["properties"]
    data["oracle"]["universal"] = {"model": "chgnet-0.3.0"}
    data["oracle"]["pretrain"].update(compositions_x=[0.0, 2.0], strains=[0.0], steps=10, every=5)
    data["replicas"].update(cycles=2)
    data["replicas"]["gcmc"]["md_steps"] = 50
    data["trainer"].update(level=4, train_iterations=2)
    path = write_campaign(tmp_path / "c.yaml", data)
    out = subprocess.run([*no_network_prefix(), *pbahpc_cmd(2, "run", str(path))], capture_output=True,
                         text=True, timeout=600, env=offline(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "CHGNet" not in out.stdout  # the package's load-time prints stay off the ranks' terminal
    assert "requires_grad" not in out.stderr  # nor torch's warning about CHGNet's internals
    frames = read(tmp_path / "run" / "training" / "train.extxyz", ":")
    assert len(frames) >= 6  # 3 pre-training frames per composition, and the replicas'
    got = [(a.get_potential_energy(), a.get_forces(), a.get_stress()) for a in frames]
    calc = CHGNetCalculator(use_device="cpu")
    ref = []
    for a in frames:
        a = a.copy()
        a.calc = calc
        ref.append((float(a.get_potential_energy()), a.get_forces(), a.get_stress()))
    assert_same_labels(got, ref)


def check(path: Path, *hide: str) -> subprocess.CompletedProcess:
    """``pbahpc check PATH`` with the packages ``hide`` made unimportable (as if not installed)."""
    code = (f"import sys\nfor m in {list(hide)!r}: sys.modules[m] = None\n"
            f"from pbahpc.cli import main\nsys.exit(main(['check', {str(path)!r}, '--ranks', '2']))")
    return subprocess.run([str(BIN / "python"), "-c", code], capture_output=True, text=True, timeout=120,
                          env=env(), cwd=path.parent)


def test_a_model_that_would_download_is_refused(tmp_path):
    out = check(campaign(tmp_path, model="7net-omat"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "oracle.universal.model" in lines[0] and "'7net-omat'" in lines[0]
    assert "shipped: 7net-0, " in lines[0] and "chgnet-0.3.0" in lines[0]
    assert not (tmp_path / "run").exists()


def test_a_missing_package_names_the_extra(tmp_path):
    out = check(campaign(tmp_path, model="chgnet-0.3.0"), "chgnet")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "'chgnet'" in lines[0] and "pbahpc[universal]" in lines[0], out.stderr


def test_a_modal_only_for_multi_fidelity_models(tmp_path):
    out = check(campaign(tmp_path, model="chgnet-0.3.0", modal="PBE"))
    assert out.returncode == 2 and "oracle.universal.modal" in out.stderr and "not a multi-fidelity" in out.stderr


def test_na_reference_is_the_minimum_of_bcc_na():
    """Eq. 31's E_Na with the same model: the relaxed bcc cell's energy per atom equals the minimum of the
    energy-volume curve scanned directly (bcc atoms stay on their sites by symmetry; only a varies)."""
    from chgnet.model import CHGNetCalculator

    from pbahpc.oracle.universal import na_metal_eV_per_atom

    calc = CHGNetCalculator(use_device="cpu")
    e_ref = na_metal_eV_per_atom(calc)
    a = np.linspace(3.9, 4.5, 25)
    e = []
    for ai in a:
        atoms = bulk("Na", "bcc", a=ai, cubic=True)
        atoms.calc = calc
        e.append(atoms.get_potential_energy() / len(atoms))
    i = int(np.argmin(e))
    assert 0 < i < len(a) - 1  # the minimum is inside the scan
    c = np.polyfit(a[i - 2:i + 3], e[i - 2:i + 3], 2)  # parabola through the 5 points around it
    e_min = np.polyval(c, -c[1] / (2 * c[0]))
    # 1 meV/atom: the scale of Eq. 31 voltages (reported in mV per Na)
    assert e_ref == pytest.approx(e_min, abs=1e-3)
