"""The model-vs-table comparison (pbahpc.scaling.compare): deterministic, no MPI, no wall-clock checks.

rel_error = predicted / measured - 1 (model.validate's convention): a measured time 20 % above the
prediction gives -1/6.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from pbahpc.cli import main as cli
from pbahpc.scaling import model as M
from pbahpc.scaling.compare import compare, format_comparison, frame_atoms, read_comparison
from pbahpc.scaling.tables import write_outputs

C = M.Coefficients(label_a=0.01, label_b=2e-4, train_a=1e-5, train_b=1e-7, train_c=3e-3, ar_alpha=1e-5,
                   ar_beta=1e-9, p2d_a=0.2, p2d_b=1e-6, machine="test")


def _point(kernel, mode, size, ranks, time_s, **metrics):
    return {"kernel": kernel, "mode": mode, "split": "-", "size": size, "ranks": ranks, "repeat": 0,
            "time_s": time_s, "metrics": metrics, "breakdown": {}}


def synthetic_points(c: M.Coefficients) -> list[dict]:
    """Points whose times are the model's own predictions (sweep defaults: cells 1, seed 1, level 4)."""
    pts = []
    for mode, size, ranks in (("strong", 8, 1), ("strong", 8, 2), ("weak", 4, 2), ("strong", 7, 3)):
        n = size * (ranks if mode == "weak" else 1)
        atoms = frame_atoms(n, 1, 1)
        t = max(sum(M.t_label_teacher(c, a) for a in atoms[r::ranks]) for r in range(ranks))
        pts.append(_point("label", mode, size, ranks, t))
        passes = 13
        t = passes * M.t_train_pass(c, n, float(np.mean(atoms)), 4, ranks)
        pts.append(_point("train", mode, size, ranks, t, passes=float(passes)))
    for size, ranks, unknowns, steps in ((20, 1, 1200, 150), (20, 2, 1200, 152), (10, 4, 2400, 160)):
        pts.append(_point("p2d", "strong", size, ranks, M.t_p2d(c, unknowns, steps, ranks),
                          unknowns=float(unknowns), ts_steps=float(steps)))
    pts.append(_point("gcmc", "strong", 2, 1, 0.5, natoms=480.0))
    return pts


def test_model_own_predictions_give_zero_error():
    rows = compare(synthetic_points(C), C)
    assert {r["kernel"] for r in rows} == {"label", "train", "p2d"}  # gcmc: teacher pair potential, skipped
    assert len(rows) == 11
    np.testing.assert_allclose([r["rel_error"] for r in rows], 0.0, atol=1e-12)
    assert all(r["predicted_s"] > 0 and r["measured_s"] > 0 for r in rows)
    text = format_comparison(rows, ["gcmc"])
    assert "not compared: gcmc" in text and text.count("+0%") + text.count("-0%") == 11


def test_perturbed_measurement_gives_minus_one_sixth():
    pts = synthetic_points(C)
    i = next(k for k, p in enumerate(pts) if p["kernel"] == "train" and p["ranks"] == 2 and p["mode"] == "strong")
    pts[i]["time_s"] *= 1.2
    rows = compare(pts, C)
    hit = [r for r in rows if r["kernel"] == "train" and r["ranks"] == 2 and r["mode"] == "strong"]
    assert len(hit) == 1 and hit[0]["rel_error"] == pytest.approx(1 / 1.2 - 1) == pytest.approx(-1 / 6)
    rest = [r["rel_error"] for r in rows if r is not hit[0]]
    np.testing.assert_allclose(rest, 0.0, atol=1e-12)


def test_train_without_passes_metric_uses_the_bound():
    atoms = frame_atoms(4, 1, 1)
    bound = 1 + 2 * (5 + 1)  # sweep defaults: iterations 2, radial_steps 5
    t = bound * M.t_train_pass(C, 4, float(np.mean(atoms)), 4, 1)
    rows = compare([_point("train", "strong", 4, 1, t)], C)
    assert rows[0]["rel_error"] == pytest.approx(0.0, abs=1e-12) and "bound" in rows[0]["detail"]


def test_merge_with_model_stores_the_comparison(tmp_path, capsys):
    d = tmp_path / "res"
    (d / "points").mkdir(parents=True)
    for p in synthetic_points(C):
        from pbahpc.scaling.tables import point_id
        (d / "points" / f"{point_id(p)}.json").write_text(json.dumps(p))
    coeffs = C.save(tmp_path / "coefficients.json")
    assert cli(["scaling", "merge", str(d), "--out", str(tmp_path / "m"), "--no-plots", "--model", str(coeffs)]) == 0
    out = capsys.readouterr().out
    assert "== model" in out and out.index("== train ==") < out.index("== model")
    stored = read_comparison(tmp_path / "m" / "scaling.h5")
    assert len(stored) == 11 and {r["kernel"] for r in stored} == {"label", "train", "p2d"}
    np.testing.assert_allclose([r["rel_error"] for r in stored], 0.0, atol=1e-12)
    assert (tmp_path / "m" / "scaling.txt").read_text() == out


def test_missing_or_bad_coefficients_exit_2_one_line(tmp_path, capsys):
    d = tmp_path / "res"
    write_outputs(d, synthetic_points(C), plots=False)
    missing = tmp_path / "nope.json"
    assert cli(["scaling", "merge", str(d), "--out", str(tmp_path / "m"), "--model", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--model" in err and str(missing) in err
    assert not (tmp_path / "m").exists()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert cli(["scaling", "merge", str(d), "--out", str(tmp_path / "m"), "--model", str(bad)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"kernels": {"label": {"ranks": [1], "strong": 2}}}))
    assert cli(["scaling", "run", str(spec), "--out", str(tmp_path / "o"), "--model", str(missing)]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not (tmp_path / "o").exists()
