"""HDF5 output and Fig. 9 plots of a P2D run (pbahpc.continuum.output)."""
import h5py
import numpy as np
import pytest

from pbahpc.continuum import output
from pbahpc.continuum.output import plot_result, read_result, write_result

NX, NR, SNAPS = 8, 6, 5  # cathode x-cells, r-cells, snapshots
META = {"c_rate": -0.5, "label": "charge", "record_positions": (0.0, 0.5, 1.0)}


def synthetic_result() -> dict:
    """The keys and shapes of P2DCell.result() for a 4 | 2 | 8 node cell; every map entry is distinct
    (snapshot, x-cell and r-cell are readable from its value), so a wrong index cannot pass."""
    t = np.linspace(0.0, 3600.0, 41)
    current = np.full_like(t, -2.0)
    s, i, r = np.meshgrid(np.arange(SNAPS), np.arange(NX), np.arange(NR), indexing="ij")
    x_centres = np.concatenate([(np.arange(4) + 0.5) * 10e-6, 40e-6 + (np.arange(2) + 0.5) * 5e-6,
                                50e-6 + (np.arange(NX) + 0.5) * 7.5e-6])
    rng = np.random.default_rng(0)
    return {"time_s": t, "voltage_V": 3.0 + 0.1 * t / 3600.0, "current_A_m2": current,
            "step": np.zeros(t.size, dtype=int), "throughput_Ah_m2": 2.0 * t / 3600.0, "one_c_A_m2": 4.0,
            "x_centres_m": x_centres, "snapshot_time_s": np.linspace(0.0, 3600.0, SNAPS),
            "anode_x": rng.random((SNAPS, 4, 3)), "cathode_x": 0.9 - 0.1 * s - 0.01 * i - 0.001 * r,
            "c_e_mol_m3": 1000.0 + rng.random((SNAPS, 14)), "phi_e_V": -0.5 + 1e-3 * rng.random((SNAPS, 14)),
            "anode_r_centres_m": (np.arange(3) + 0.5) * 1e-6, "anode_x_range_m": x_centres[[0, 3]],
            "cathode_r_centres_m": (np.arange(NR) + 0.5) * 0.5e-6, "cathode_x_range_m": x_centres[[6, 13]],
            "anode_particle_x": rng.random((SNAPS, 4, 1)), "cathode_particle_x": rng.random((SNAPS, NX, 1)),
            "anode_radii_m": np.array([1e-6]), "cathode_radii_m": np.array([NR * 0.5e-6]),
            "anode_size_fractions": np.ones(1), "cathode_size_fractions": np.ones(1)}


def test_round_trip_is_bit_identical_with_units_and_meta(tmp_path):
    result = synthetic_result()
    path = tmp_path / "run.h5"
    write_result(path, result, META)
    back = read_result(path)
    for key, value in result.items():
        assert np.asarray(back[key]).dtype == np.asarray(value).dtype, key
        np.testing.assert_array_equal(back[key], value, err_msg=key)
    np.testing.assert_array_equal(back["capacity_mAh_cm2"], result["throughput_Ah_m2"] * 0.1)
    assert back["meta"]["label"] == "charge" and back["meta"]["c_rate"] == -0.5
    np.testing.assert_array_equal(back["meta"]["record_positions"], [0.0, 0.5, 1.0])
    with h5py.File(path) as f:
        assert f["trace/voltage_V"].attrs["units"] == "V"
        assert f["trace/capacity_mAh_cm2"].attrs["units"] == "mAh/cm^2"
        assert f["fields/c_e_mol_m3"].attrs["units"] == "mol/m^3"
        assert f["fields/cathode_x"].attrs["units"] == "1"
        assert f["probes/depth_from_surface_m"].attrs["units"] == "m"
    assert [p.name for p in tmp_path.iterdir()] == ["run.h5"]  # no temporary file left behind


def test_probes_are_the_map_entries_at_the_recorded_cells(tmp_path):
    result = synthetic_result()
    write_result(tmp_path / "run.h5", result, META, record_positions=(0.0, 0.5, 1.0))
    probes = read_result(tmp_path / "run.h5")["probes"]
    # 8 x-cells: fraction 0 -> cell 0 (separator side), 0.5 -> cell 4 (contains the midpoint),
    # 1 -> cell 7 (collector side); 6 r-cells: surface 5, middle 3 (contains R/2), centre 0
    cells, rcells = (0, 4, 7), (5, 3, 0)
    np.testing.assert_array_equal(probes["x_index"], cells)
    np.testing.assert_array_equal(probes["r_index"], rcells)
    for snap in range(SNAPS):
        for p, i in enumerate(cells):
            for d, r in enumerate(rcells):
                assert probes["cathode_x"][snap, p, d] == 0.9 - 0.1 * snap - 0.01 * i - 0.001 * r
    np.testing.assert_array_equal(probes["time_s"], result["snapshot_time_s"])
    np.testing.assert_allclose(probes["depth_from_separator_m"], [3.75e-6, 33.75e-6, 56.25e-6])
    np.testing.assert_allclose(probes["x_m"], result["x_centres_m"][[6, 10, 13]])
    np.testing.assert_allclose(probes["depth_from_surface_m"], [0.25e-6, 1.25e-6, 2.75e-6])


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "run.h5"
    write_result(path, synthetic_result(), META)
    before = path.read_bytes()

    real_dataset = output._dataset

    def crash_in_fields(group, name, value):
        # a crash midway: /trace is already written when the first /fields dataset fails
        if group.name == "/fields":
            raise OSError("disk full")
        real_dataset(group, name, value)

    monkeypatch.setattr(output, "_dataset", crash_in_fields)
    with pytest.raises(OSError, match="disk full"):
        write_result(path, synthetic_result(), META)
    assert path.read_bytes() == before
    with pytest.raises(OSError, match="disk full"):
        write_result(tmp_path / "new.h5", synthetic_result(), META)
    assert [p.name for p in tmp_path.iterdir()] == ["run.h5"]


@pytest.mark.parametrize("from_file", [False, True])
def test_plots_are_nonempty_pngs(tmp_path, from_file):
    pytest.importorskip("matplotlib")
    result = synthetic_result()
    source = result
    if from_file:
        source = tmp_path / "run.h5"
        write_result(source, result, META)
    paths = plot_result(source, tmp_path / "png", map_times_s=[0.0, 1000.0, 3600.0])
    assert [p.name for p in paths] == ["voltage.png", "cathode_maps.png", "surface_probes.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000


def test_real_cell_result_writes_and_plots(tmp_path):
    pytest.importorskip("mpi4py")
    pytest.importorskip("petsc4py")
    pytest.importorskip("matplotlib")
    from mpi4py import MPI

    from pbahpc.continuum.cell import P2DCell
    from pbahpc.continuum.model import (Cell, Electrode, Electrolyte, FickianParticle, Separator, SolverSettings,
                                        Step)

    def const(v):
        return lambda x: np.full_like(np.asarray(x, float), v)

    def electrode(x0, ocv, cells_x):
        return Electrode(thickness_m=50e-6, porosity=0.3, active_fraction=0.6, particle_radius_m=2e-6,
                         formula_units_mol_m3=20000.0, x_initial=x0, particle=FickianParticle(const(1e-14), ocv),
                         exchange_current_A_m2=lambda ce, x, T: np.sqrt(np.maximum(ce, 0.0) / 1000.0),
                         conductivity_S_m=10.0, cells_x=cells_x, cells_r=4)

    cell = Cell(anode=electrode(0.1, lambda x: 0.1 + 0.5 * (1 - x) - 0.02 * np.log(x / (1 - x)), 3),
                separator=Separator(25e-6, 0.45, cells_x=2),
                cathode=electrode(0.9, lambda x: 3.4 + 0.2 * (1 - x) + 0.02 * np.log((1 - x) / x), 4),
                electrolyte=Electrolyte(1000.0, const(3e-10), const(1.0), 0.38, const(1.0)), temperature_K=298.15)
    model = P2DCell(cell, SolverSettings(output_interval_s=20.0), MPI.COMM_WORLD)
    model.run([Step("current", c_rate=-1.0, duration_s=60.0)])
    result = model.result()
    write_result(tmp_path / "run.h5", result, {"c_rate": -1.0})
    back = read_result(tmp_path / "run.h5")
    for key, value in result.items():
        np.testing.assert_array_equal(back[key], value, err_msg=key)
    assert back["probes"]["cathode_x"].shape == (len(result["snapshot_time_s"]), 3, 3)
    assert all(p.stat().st_size > 0 for p in plot_result(tmp_path / "run.h5", tmp_path / "png"))


def test_net_charge_runs_back_on_discharge_and_maps_follow_the_change():
    t = np.linspace(0.0, 7200.0, 73)
    result = synthetic_result()
    # 1 h charge at 2 A/m^2 then 1 h discharge at 4 A/m^2: +2 Ah/m^2, then back to 0 at t = 1.5 h, -2 at 2 h
    result.update(time_s=t, current_A_m2=np.where(t <= 3600.0, -2.0, 4.0), step=(t > 3600.0).astype(int))
    q = output.net_charge_Ah_m2(result)
    # trapezoids: the current's jump sits inside the interval (3600, 3700) s, which gets its mean
    expected = np.where(t <= 3600.0, 2.0 * t, 7200.0 - 100.0 - 4.0 * (t - 3700.0)) / 3600.0
    expected[t == 3700.0] = (7200.0 - 100.0) / 3600.0
    np.testing.assert_allclose(q, expected, rtol=1e-12, atol=1e-12)
    # a map that changes only between snapshots 2 and 3 gets its middle marks there, not evenly in time
    times = np.linspace(0.0, 1.0, 9)
    cx = np.zeros((9, NX, NR))
    cx[3:] = 1.0
    cx[4:] += 0.01
    marks = output._map_indices({"snapshot_time_s": times, "cathode_x": cx}, None, n=4)
    assert marks[0] == 0 and marks[-1] == 8 and set(marks[1:-1]) <= {2, 3}
