"""Rank partitioning: pure layout arithmetic, refusals, and real sub-communicators under mpiexec."""
from __future__ import annotations


import pytest

from pbahpc.config import ConfigError, load
from pbahpc.driver.layout import plan

from conftest import run_mpi_script, write_campaign


def _cfg(tmp_path, layout, temps=(300.0,), mus=(0.0,)):
    return load(write_campaign(tmp_path / "c.yaml", {
        "campaign": {"name": "t"}, "layout": layout,
        "replicas": {"temperatures_K": list(temps), "mu_eV": list(mus)}}))


@pytest.mark.parametrize("layout,temps,mus,size,expected", [
    # 2 replicas x 1 + trainer + oracle = 4
    ({"trainer": {"ranks": 1}, "oracle": {"ranks": 1}}, (300, 600), (0,), 4,
     {"replica-0": [0], "replica-1": [1], "trainer": [2], "oracle": [3]}),
    # auto: (8 - 2) // 3 = 2 ranks per replica
    ({"replicas": {"ranks_each": "auto"}, "trainer": {"ranks": 1}, "continuum": {"ranks": 1}}, (300,), (0, .1, .2), 8,
     {"replica-0": [0, 1], "replica-1": [2, 3], "replica-2": [4, 5], "trainer": [6], "continuum": [7]}),
    # shared roles sit on the first ranks; unconfigured oracle gets nothing
    ({"replicas": {"ranks_each": 1}, "trainer": {"ranks": 2, "shared": True}, "continuum": {"ranks": 1, "shared": True}},
     (300, 400), (0,), 2, {"replica-0": [0], "replica-1": [1], "trainer": [0, 1], "continuum": [0]}),
    # more ranks than needed: the rest idles
    ({"replicas": {"ranks_each": 2}, "oracle": {"ranks": 3}}, (300,), (0,), 8,
     {"replica-0": [0, 1], "oracle": [2, 3, 4]}),
])
def test_plan(tmp_path, layout, temps, mus, size, expected):
    lay = plan(_cfg(tmp_path, layout, temps, mus), size)
    assert {g.name: list(g.ranks) for g in lay.groups} == expected
    used = {r for g in lay.groups for r in g.ranks}
    assert set(lay.idle) == set(range(size)) - used


@pytest.mark.parametrize("layout,temps,size,key,words", [
    ({"trainer": {"ranks": 1}, "oracle": {"ranks": 1}}, (300, 600), 3, "layout", "needs 4 ranks"),
    ({"replicas": {"ranks_each": "auto"}, "trainer": {"ranks": 4}}, (300,), 4, "layout.replicas.ranks_each", "no rank"),
    ({"trainer": {"ranks": 5, "shared": True}}, (300, 600), 8, "layout.trainer.ranks", "at most the 2"),
    ({"replicas": {"ranks_each": 3}}, (300, 400, 500), 8, "layout", "launch at least 9"),
])
def test_plan_refusals(tmp_path, layout, temps, size, key, words):
    with pytest.raises(ConfigError) as err:
        plan(_cfg(tmp_path, layout, temps), size)
    assert err.value.key == key and words in err.value.problem


SPLIT_SCRIPT = r"""
import json, sys
from mpi4py import MPI
from pbahpc.config import load
from pbahpc.driver.layout import plan, split
world = MPI.COMM_WORLD
lay = plan(load(sys.argv[1]), world.Get_size())
comms = split(world, lay)
rows = {name: [c.Get_size(), c.Get_rank(), c.allreduce(world.Get_rank())] for name, c in comms.items()}
allrows = world.gather(rows, root=0)
if world.Get_rank() == 0:
    print(json.dumps(allrows))
"""


def test_split_real_mpi(tmp_path):
    path = write_campaign(tmp_path / "c.yaml", {
        "campaign": {"name": "t"},
        "layout": {"replicas": {"ranks_each": 2}, "trainer": {"ranks": 1, "shared": True}, "oracle": {"ranks": 1}},
        "replicas": {"temperatures_K": [300.0], "mu_eV": [0.0]}})
    rows = run_mpi_script(tmp_path, SPLIT_SCRIPT, 4, str(path))
    # replica-0 = ranks 0,1; trainer shared on rank 0; oracle = rank 2; rank 3 idle
    assert rows[0] == {"replica-0": [2, 0, 1], "trainer": [1, 0, 0]}
    assert rows[1] == {"replica-0": [2, 1, 1]}
    assert rows[2] == {"oracle": [1, 0, 2]}
    assert rows[3] == {}
