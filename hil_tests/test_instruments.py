"""The instrument routines end to end (memctl iv / retention / endurance /
form / read --plot): each run through the CLI on an emulated board, its HDF5
read back whole (arrays, units, parameters, command line), its PNG written,
and the physics it measures checked against the device model and the front
end's truth."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest

import memctl
from memctl.cli import main
from memctl.devices import PRESETS, DeviceModel, load_device
from memctl.instruments import ConductanceMap, Endurance, Forming, IVCurve, Retention, endurance, form_array, retention
from memctl_emulator import EmulatedBoard

# Relaxation toward w_rest with a 1 s time constant: no preset relaxes (relax_tau = 0 in all of them).
RELAXING = """[device]
name = "relaxing"
g_min = 10e-6
g_max = 100e-6
v_set = 0.85
v_reset = -1.1
relax_tau = 1.0
w_rest = 0.2
"""


@pytest.fixture(scope="module")
def generic(hal):
    """The generic device (formed, no relaxation) on a 4x4 array with the provisioned limits (2 V, 1 ms)."""
    with EmulatedBoard(rows=4, cols=4, seed=11, hal=hal) as emu:
        yield emu


@pytest.fixture(scope="module")
def relaxing(hal, tmp_path_factory):
    path = tmp_path_factory.mktemp("device") / "relaxing.toml"
    path.write_text(RELAXING)
    with EmulatedBoard(rows=4, cols=4, seed=12, hal=hal, device=str(path)) as emu:
        yield emu, path


@pytest.fixture(scope="module")
def pristine(hal):
    """Paper 003's devices: pristine until a ramp reaches their forming voltage (about 2 V +- 10 %)."""
    with EmulatedBoard(rows=4, cols=4, seed=13, hal=hal, device="pt_al2o3_tio2_passive") as emu:
        yield emu


def run(emu: EmulatedBoard, *argv: str) -> tuple[int, list[str]]:
    """`memctl CMD --port ... ARGS` as typed; returns its exit code and argv."""
    args = [argv[0], "--port", emu.port, "--no-progress", *argv[1:]]
    return main(args), args


def truth(emu: EmulatedBoard) -> tuple[int, np.ndarray]:
    afe = emu.afe()
    try:
        return afe.truth()
    finally:
        afe.close()


def clock(emu: EmulatedBoard) -> float:
    afe = emu.afe()
    try:
        return afe.clock()
    finally:
        afe.close()


def read_back(cls, path: Path, argv: list[str], tmp_path: Path):
    """The file read back: every dataset with its unit, equal to the result's arrays, the command line
    recorded; written again and read again, nothing changes."""
    back = cls.read_hdf5(path)
    assert back.attrs["command_line"] == " ".join(["memctl", *argv])
    assert back.attrs["format"] == f"memctl-{cls.KIND}"
    with h5py.File(path, "r") as f:
        assert set(f) == set(cls.units())
        for name in f:
            assert f[name].attrs["unit"] == cls.units()[name], name
            np.testing.assert_array_equal(f[name][()], getattr(back, name))
    assert back.board["limits.v_pulse"] > 0 and back.attrs["board.limits.v_pulse.unit"] == "V"
    again = tmp_path / f"again-{path.name}"
    back.write_hdf5(again, device=back.attrs.get("device"), command=["memctl", *argv])
    twice = cls.read_hdf5(again)
    for fl in dataclasses.fields(cls):
        if fl.name != "attrs":
            a, b = getattr(back, fl.name), getattr(twice, fl.name)
            assert a == b if isinstance(a, dict) else np.array_equal(a, b, equal_nan=True), fl.name
    for k, v in back.attrs.items():
        if k != "created":
            np.testing.assert_array_equal(twice.attrs[k], v)
    return back


def is_png(path: Path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_iv_sweep_shows_the_device_switching(generic, tmp_path):
    d = DeviceModel()
    out = tmp_path / "iv.h5"
    sweep = ("--row", "1", "--col", "2", "--v-max", "1.5", "--v-min", "1.8", "--steps", "10", "--width", "1e-4")
    rc, argv = run(generic, "iv", *sweep, "--out", str(out))
    assert rc == 0
    iv = read_back(IVCurve, out, argv, tmp_path)
    assert is_png(out.with_suffix(".png"))
    lsb = iv.board["dac_lsb"]
    assert len(iv.voltage) == 4 * 10 and iv.voltage.max() == 1.5 and iv.voltage.min() == -1.8
    pulsed = iv.voltage != 0
    assert np.all(np.abs(iv.applied[pulsed] - iv.voltage[pulsed]) <= lsb)
    np.testing.assert_allclose(iv.current, iv.conductance * iv.applied)
    # Set by the positive branch, reset by the negative one: after the positive branch (back at 0 V) the
    # device conducts more than after the negative one, by a good part of its range.
    g_pos, g_neg = iv.conductance[iv.branch == 1][-1], iv.conductance[iv.branch == 3][-1]
    assert g_pos - g_neg > 0.3 * (d.g_max - d.g_min), (g_pos, g_neg)
    _, g = truth(generic)
    assert g[1, 2] == pytest.approx(iv.conductance[-1], abs=3 * iv.board["i_lsb"] / iv.v_read + 1e-3 * g[1, 2])


def test_a_sweep_beyond_the_limits_is_refused_with_nothing_pulsed(generic, tmp_path, capsys):
    before = truth(generic)
    for extra, said in ((["--v-max", "3"], "3 V"), (["--v-min", "2.5"], "2.5 V"), (["--width", "0.01"], "0.01 s")):
        rc, _ = run(generic, "iv", "--v-max", "1.5", *extra, "--out", str(tmp_path / "no.h5"))
        err = capsys.readouterr().err
        assert rc == 2 and said in err and "set-limits" in err and "--device" in err, err
    assert not (tmp_path / "no.h5").exists()
    after = truth(generic)
    assert after[0] == before[0] and np.array_equal(after[1], before[1])


def test_bad_input_is_refused_before_any_pulse(generic):
    before = truth(generic)
    nan = float("nan")
    with memctl.Board(generic.port, progress=False) as b:
        cases = [
            (lambda: retention(b, [(0, 9)], [1.0]), "outside the 4x4"),
            (lambda: retention(b, [(0, 0)], [1.0, 0.5]), "increasing"),
            (lambda: retention(b, [(0, 0)], [1.0], prepare=(2.5, 1e-4)), "pulse limit"),
            (lambda: retention(b, [(0, 0)], [1.0], v_read=1.0), "read limit"),
            (lambda: endurance(b, [(0, 0)], 5, v_set=1.0, v_reset=0.5, width=1e-4), "< 0 V"),
            (lambda: endurance(b, [(0, 0)], 5, v_set=nan, v_reset=-1.0, width=1e-4), "finite"),
            (lambda: form_array(b, v_start=1.0, width=2e-3), "width"),
            (lambda: form_array(b, v_start=1.5, v_stop=1.0), "v_start <= v_stop"),
        ]
        for call, msg in cases:
            with pytest.raises(ValueError, match=msg):
                call()
    after = truth(generic)
    assert after[0] == before[0] and np.array_equal(after[1], before[1])


def test_retention_waits_move_nothing_on_a_device_that_does_not_relax(generic):
    """The waits' 0 V, 1 us set pulses are accepted and disturb nothing; the board's clock follows the
    recorded schedule, through a wait longer than one pulse-train period (199 s: 2 x 60 s, then 2 x 39.5 s)."""
    _, g0 = truth(generic)
    t0 = clock(generic)
    with memctl.Board(generic.port, progress=False) as b:
        r = retention(b, [(0, 1), (2, 2)], [1e-3, 1.0, 200.0])
    _, g1 = truth(generic)
    np.testing.assert_array_equal(g1, g0)
    assert clock(generic) - t0 == pytest.approx(r.time[-1, -1] + r.t_read, abs=2e-3)
    np.testing.assert_allclose(r.conductance, g0[[0, 2], [1, 2]][None, :].repeat(3, 0), rtol=2e-3)


def test_retention_shows_relaxation_toward_the_rest_state(relaxing, tmp_path):
    emu, path = relaxing
    d = load_device(path)
    g_rest = d.g_min + d.w_rest * (d.g_max - d.g_min)
    out = tmp_path / "ret.h5"
    t0 = clock(emu)
    rc, argv = run(
        emu,
        "retention",
        *("--devices", "0,0", "1,1", "--start", "1e-3", "--stop", "100", "--points", "11"),
        *("--pulse", "1.5", "1e-3", "--device", str(path), "--out", str(out)),
    )
    assert rc == 0
    r = read_back(Retention, out, argv, tmp_path)
    assert r.attrs["device_file"] == RELAXING  # the device file's text travels with the data
    assert is_png(out.with_suffix(".png"))
    np.testing.assert_allclose(r.target_time, np.geomspace(1e-3, 100, 11))
    assert np.all(r.time >= r.target_time[:, None]) and np.all(r.time - r.target_time[:, None] < 1e-3)
    # The board's clock agrees with the recorded schedule (two 1 ms preparation pulses, then the reads).
    assert clock(emu) - t0 == pytest.approx(2e-3 + r.time[-1, -1] + r.t_read, abs=2e-3)
    g, noise = r.conductance, 3 * r.board["i_lsb"] / r.v_read + 1e-3 * r.conductance
    dist = np.abs(g - g_rest)
    assert np.all(dist[0] > 0.5 * (d.g_max - g_rest))  # set far above the rest state ...
    assert np.all(np.diff(dist, axis=0) <= noise[1:])  # ... it approaches it monotonically ...
    assert np.all(dist[-1] < 0.01 * (d.g_max - d.g_min))  # ... and is there after 100 tau
    # ... at the device's own rate: G - G_rest decays as exp(-t / relax_tau) along the recorded times.
    expected = g_rest + (g[0] - g_rest) * np.exp(-(r.time - r.time[0]) / d.relax_tau)
    np.testing.assert_allclose(g, expected, atol=0.005 * (d.g_max - d.g_min))


def test_endurance_window_is_open_on_working_devices_and_closed_on_a_stuck_one(generic, tmp_path):
    d = DeviceModel()
    generic.stick(3, 3)
    out = tmp_path / "end.h5"
    png = tmp_path / "window.png"
    rc, argv = run(
        generic,
        "endurance",
        *("--devices", "0,0", "2,3", "3,3", "--cycles", "30", "--v-set", "1.5", "--v-reset", "-1.8"),
        *("--width", "2e-4", "--out", str(out), "--plot", str(png)),
    )
    assert rc == 0
    e = read_back(Endurance, out, argv, tmp_path)
    assert is_png(png)
    assert e.g_on.shape == (30, 3) and e.reset_width == e.width == 2e-4
    np.testing.assert_allclose(e.window, e.g_on - e.g_off)
    working, stuck = e.window[:, :2], e.window[:, 2]
    assert np.all(working > 0.3 * (d.g_max - d.g_min)), working.min()
    assert np.all(e.ratio[:, :2] > 1.5)
    assert np.all(np.abs(stuck) < 0.01 * (d.g_max - d.g_min)), stuck


def test_forming_forms_the_formable_devices_within_the_limits(pristine, tmp_path):
    d = PRESETS["pt_al2o3_tio2_passive"]
    _, g0 = truth(pristine)
    assert (g0 == d.g_pristine).mean() > 0.8  # pristine, but for a stuck one or so
    # 1: the board's provisioned 2 V limit, below many devices' forming voltage.
    out1 = tmp_path / "form1.h5"
    rc, argv1 = run(pristine, "form", "--v-start", "1.5", "--out", str(out1))
    assert rc == 0
    f1 = read_back(Forming, out1, argv1, tmp_path)
    assert is_png(out1.with_suffix(".png"))
    lsb = f1.board["dac_lsb"]
    _, g1 = truth(pristine)
    assert f1.formed.any() and f1.unformable.any() and (f1.status >= 0).all()
    v = f1.voltage[f1.formed]
    assert np.all((v >= 1.5 - lsb) & (v <= 2.0)) and np.isnan(f1.voltage[~f1.formed]).all()
    assert np.all(g1[f1.formed] > f1.threshold) and np.all(g1[f1.unformable] == d.g_pristine)
    assert np.all(f1.pulses[f1.unformable] == len(np.r_[np.arange(1.5, 2.0, 0.05), 2.0]))
    # 2: the family's limits (2.5 V): what conducts is left alone, the rest forms above run 1's 2 V.
    out2 = tmp_path / "form2.h5"
    rc, argv2 = run(pristine, "form", "--device", "pt_al2o3_tio2_passive", "--out", str(out2))
    assert rc == 0
    f2 = read_back(Forming, out2, argv2, tmp_path)
    assert f2.v_stop == 2.5 and f2.attrs["device"] == "pt_al2o3_tio2_passive"
    assert np.all(f2.status[~f1.unformable] == 1) and np.all(f2.pulses[~f1.unformable] == 0)
    newly = f2.formed
    assert np.array_equal(newly | f2.unformable, f1.unformable) and newly.any()
    assert np.all((f2.voltage[newly] > f1.v_stop - lsb) & (f2.voltage[newly] <= 2.5))
    afe = pristine.afe()
    lo, hi = afe.ranges()
    afe.close()
    _, g2 = truth(pristine)
    # Formed devices conduct and switch (their range opened); unformable ones are as they came.
    assert np.all(g2[f2.status != 2] > f2.threshold) and np.all(hi[f2.formed] > lo[f2.formed])
    assert np.all(g2[f2.unformable] == d.g_pristine)


def test_read_plots_and_writes_the_array(generic, tmp_path):
    h5, png, npy = tmp_path / "g.h5", tmp_path / "g.png", tmp_path / "g.npy"
    rc, argv = run(generic, "read", "--out", str(h5), "--plot", str(png))
    assert rc == 0
    m = read_back(ConductanceMap, h5, argv, tmp_path)
    assert is_png(png)
    _, g = truth(generic)
    assert m.conductance.shape == (4, 4)
    assert np.abs(m.conductance - g).max() < 3 * m.board["i_lsb"] / m.v_read + 1e-3 * g.max()
    rc, _ = run(generic, "read", "--out", str(npy))  # .npy as before
    assert rc == 0
    np.testing.assert_allclose(np.load(npy), m.conductance, rtol=2e-3)
