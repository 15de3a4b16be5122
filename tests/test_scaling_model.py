"""The calibrated performance model (pbahpc.scaling.model): arithmetic on synthetic coefficients, the fit,
the role-split search, and a real (small) calibration here with a held-out measurement."""
import math
import os
from dataclasses import replace

import pytest

from pbahpc.scaling.model import (STAGES, CampaignSpec, Coefficients, Layout, Point, fit, measure, naive_layouts,
                                  predict, predict_point, suggest_split, t_allreduce, t_md_step, t_p2d, t_select,
                                  t_train_pass, validate)

C = Coefficients()  # synthetic defaults


def small_spec(**kw):
    base = dict(replicas=4, atoms=100.0, level=6, cycles=2, md_steps=100, exchanges=10, translations=10,
                iterations=3, selected=(40, 20, 8), pretrain_frames=16, frame_atoms=100.0, train_iterations=2,
                radial_steps=2, label_seconds=2.0, p2d_unknowns=100, p2d_steps=10, cores_per_node=8,
                candidates_per_selected=2.0, net_alpha=None, net_beta=None)
    base.update(kw)
    return CampaignSpec(**base)


@pytest.mark.parametrize("warm_passes", [None, 7])
def test_iteration_time_is_the_sum_of_the_stage_critical_paths(warm_passes):
    """Iteration 0 trains cold (``passes``); later retrainings continue from the previous potential
    (``warm_passes``, default the same)."""
    spec = small_spec(warm_passes=warm_passes)
    lay = Layout(ranks_each=2, trainer=4, oracle=4, continuum=2)
    pred = predict(C, spec, lay)
    cores = 4 * 2 + 4 + 4 + 2
    sync = 6 * t_allreduce(C, cores, 40)
    sample = 2 * (100 * t_md_step(C, 100, 2, 6) + 20 * 2.0 * t_md_step(C, 100, 2, 6))
    expected, n = [], 0
    for it, sel in enumerate((16, 40, 20, 8)):  # iteration 0 labels the pre-training frames
        n += sel
        passes = spec.passes if it == 0 or warm_passes is None else warm_passes
        t = math.ceil(sel / 4) * 2.0 + passes * t_train_pass(C, n, 100.0, 6, 4) + sync
        if it:
            t += sample + t_select(C, min(4 * 2, 2 * sel) * 100, 6)
        if it == 3:
            t += t_p2d(C, 100, 10, 2)  # the continuum runs once, at the end
        expected.append(t)
    assert pred.iterations == pytest.approx(expected, rel=1e-12)
    assert pred.wall_s == pytest.approx(sum(expected), rel=1e-12)
    assert sum(pred.stages_s.values()) + 4 * sync == pytest.approx(pred.wall_s, rel=1e-12)
    assert set(pred.stages_s) == set(STAGES)


def test_idle_shares_are_fractions_and_weighted_by_cores():
    spec = small_spec()
    lay = Layout(ranks_each=2, trainer=4, oracle=4, continuum=2)
    pred = predict(C, spec, lay)
    for role, share in pred.idle.items():
        assert 0.0 <= share < 1.0, role
    total = sum(pred.cores.values())
    weighted = sum(pred.idle[r] * pred.cores[r] for r in pred.cores) / total
    assert pred.idle_total == pytest.approx(weighted, rel=1e-12)
    # the replicas are busy exactly during the sample stage
    assert 1 - pred.idle["replicas"] == pytest.approx(pred.stages_s["sample"] / pred.wall_s, rel=1e-12)
    # time-sharing every role on the replicas' ranks: the same stages (synchronous), only the sync points
    # are cheaper (fewer ranks), and fewer idle cores
    shared = predict(C, spec, Layout(ranks_each=2, trainer=4, oracle=4, continuum=2, shared=True))
    assert shared.stages_s == pytest.approx(pred.stages_s, rel=1e-12)
    assert shared.wall_s <= pred.wall_s
    assert shared.idle_total < pred.idle_total


def test_doubling_oracle_ranks_halves_the_label_time_when_selections_dominate():
    spec = small_spec(selected=(640, 320), pretrain_frames=640)
    a = predict(C, spec, Layout(2, 4, 8, 1))
    b = predict(C, spec, Layout(2, 4, 16, 1))
    assert b.stages_s["label"] == pytest.approx(a.stages_s["label"] / 2, rel=1e-12)
    assert b.wall_s < a.wall_s
    # with VASP each oracle rank (a launcher rank among the others) drives a whole node of its own
    vasp = replace(spec, label_seconds=None, label_node_hours=0.5)
    for k in (8, 16):
        assert predict(C, vasp, Layout(2, 4, k, 1)).nodes == math.ceil((4 * 2 + 4 + k + 1) / 8) + k


def test_training_and_md_parallel_terms():
    # round-robin over configurations: ranks beyond the configurations only add allreduce time
    assert t_train_pass(C, 4, 100, 6, 8) > t_train_pass(C, 4, 100, 6, 4)
    assert t_train_pass(C, 64, 100, 6, 4) < t_train_pass(C, 64, 100, 6, 1) / 3
    # MD: strong scaling saturates as the sub-domains shrink (surface-to-volume halo term)
    c = replace(C, md_beta=1e-7)
    eff = [t_md_step(c, 500, 1, 6) / (p * t_md_step(c, 500, p, 6)) for p in (1, 2, 8, 64)]
    assert eff[0] == 1 and all(x > y for x, y in zip(eff, eff[1:]))


def synthetic_points(c: Coefficients) -> list[Point]:
    pts = [Point("md", 1, L, 1, atoms=60) for L in (4, 6, 8, 12)] + [Point("md", 1, 6, 2, atoms=480),
                                                                      Point("md", 2, 6, 1, atoms=60)]
    pts += [Point("trial", 1, 6, 1, atoms=60), Point("label", 1, cells=1, atoms=60), Point("label", 1, cells=2, atoms=480)]
    pts += [Point("train", 1, L, configs=k, atoms=60) for L, k in ((4, 8), (6, 4), (8, 8), (12, 4))]
    pts += [Point("select", 1, L, configs=k, atoms=60) for L, k in ((4, 4), (8, 8))]
    pts += [Point("allreduce", 2, nbytes=b) for b in (8, 1 << 20)]
    pts += [Point("p2d", 1, mesh=m, unknowns=u, steps=300) for m, u in ((5, 200), (10, 700))]
    return [replace(p, seconds=predict_point(c, p)) for p in pts]


def test_fit_recovers_synthetic_coefficients():
    truth = replace(C, md_a=3e-6, md_b=2e-7, md_c=5e-8, md_beta=4e-8, trial_ratio=1.7, label_a=0.01, label_b=2e-4,
                    train_a=1e-5, train_b=3e-7, train_c=2e-3, ar_alpha=2e-6, ar_beta=1e-10, sel_a=1e-4, sel_b=3e-6,
                    p2d_a=0.5, p2d_b=2e-6, md_alpha=12e-6)
    pts = synthetic_points(truth)
    got = fit(pts)
    for row in validate(got, pts):
        assert abs(row["rel_error"]) < 1e-6, row
    held = replace(Point("train", 2, 10, configs=16, atoms=200), held_out=True)
    assert predict_point(got, held) == pytest.approx(predict_point(truth, held), rel=1e-6)


@pytest.mark.parametrize("nodes", [1, 4, 16, 64])
def test_suggested_split_is_no_worse_than_naive_splits(nodes):
    spec = CampaignSpec(iterations=10, label_node_hours=0.5)
    lay, best = suggest_split(C, spec, nodes)
    assert best.nodes <= nodes
    others = dict(naive_layouts(spec, nodes))
    if nodes >= 19:
        others["production"] = Layout(4, 28, 16, 4)
    for name, other in others.items():
        assert best.wall_s <= predict(C, spec, other).wall_s * (1 + 1e-12), name
    if nodes >= 4:
        assert others, "the naive splits should fit from 4 nodes on"


# ----------------------------------------------------------------------------- real measurements
# The machine is shared (2 cores, a test suite and other jobs beside): the same MD measurement was seen
# to move by up to x1.5 between runs of a minute apart. Each point is the minimum of 3 repeats, and the
# calibration reproduces its own points within 30 % (3-4 points per kind, 2-3 coefficients: the
# residual is the points' mutual inconsistency, i.e. noise). A held-out point carries the noise of two
# runs, hence 50 %. One re-measurement is allowed when the machine was disturbed.
CAL_TOL, HELD_TOL = 0.30, 0.50
# Wall-clock measurements do not belong in the default suite (they depend on the machine's load; the
# project keeps timings in tools/): tools/scaling_model.py prints the same validation table.
timing = pytest.mark.skipif(not os.environ.get("PBAHPC_TIMING_TESTS"),
                            reason="measures wall time; set PBAHPC_TIMING_TESTS=1 or run tools/scaling_model.py")


def measured_plan():
    return [Point("md", 1, 4, 1), Point("md", 1, 6, 1), Point("md", 1, 8, 1),
            Point("md", 1, 6, 2, held_out=True),  # another size
            Point("train", 1, 6, configs=4), Point("train", 1, 6, configs=8), Point("train", 1, 8, configs=4),
            Point("train", 2, 6, configs=8, held_out=True)]  # another rank count


def errors(points):
    c = fit(points)
    rows = validate(c, points)
    return ([abs(r["rel_error"]) for r in rows if not r["held_out"]],
            [abs(r["rel_error"]) for r in rows if r["held_out"]], rows)


@pytest.fixture(scope="module")
def calibration():
    points = measure(measured_plan(), repeats=3, target_s=0.15)
    cal, held, rows = errors(points)
    if max(cal) > CAL_TOL or max(held) > HELD_TOL:
        points = measure(measured_plan(), repeats=3, target_s=0.15)
        cal, held, rows = errors(points)
    return points, cal, held, rows


@timing
def test_calibration_reproduces_its_measurements(calibration):
    points, cal, _, rows = calibration
    assert all(p.seconds > 0 for p in points)
    assert max(cal) <= CAL_TOL, rows


@timing
def test_held_out_measurements_are_predicted(calibration):
    _, _, held, rows = calibration
    assert len(held) == 2
    assert max(held) <= HELD_TOL, rows
