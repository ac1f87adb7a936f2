"""Every programming algorithm converges on every preset for reachable
targets, and gives a clear reason for unreachable ones."""

from __future__ import annotations

import numpy as np
import pytest

import memctl
from memctl.devices import PRESETS
from memctl.tuning import form, settings_for
from memctl_emulator import EmulatedBoard

# 1x1 for the four-terminal device (no neighbours to half-select), 4x4 otherwise.
SIZE = {"tio2_4terminal": 1}
# Reachable targets, as shares of the conductance range. Trains on the
# hfo2 device saturate (paper 004), so at the typical 0.1 s pulse width only
# part of the range is reachable from where a device starts.
BAND = {"hfo2_tio2_bilayer": (0.2, 0.45)}


@pytest.fixture(scope="module", params=sorted(PRESETS))
def preset_board(request, hal):
    name = request.param
    n = SIZE.get(name, 4)
    with EmulatedBoard(rows=n, cols=n, seed=17, device=name, hal=hal) as emu, memctl.Board(emu.port) as b:
        s = settings_for(name)
        s.apply(b, min_width=1e-3)
        if PRESETS[name].v_form:
            form(b, 0.9 * PRESETS[name].v_form)
        yield name, b, s, emu


@pytest.mark.parametrize("algo", ["ispp", "adaptive"])
def test_converges_on_reachable_targets(preset_board, algo):
    name, b, s, emu = preset_board
    rng = np.random.default_rng(4)
    rows, cols = b.shape
    afe = emu.afe()
    _, before = afe.truth()
    lo, hi = afe.ranges()  # each device's own range (device-to-device spread)
    afe.close()
    targets = lo + (hi - lo) * rng.uniform(*BAND.get(name, (0.2, 0.8)), (rows, cols))
    fixed = lo == hi  # stuck or never formed: the board must say so
    targets[fixed] = PRESETS[name].g_min + 0.5 * (PRESETS[name].g_max - PRESETS[name].g_min)
    res = b.program(targets, tolerance=s.tolerance, max_pulses=400, algorithm=getattr(s, algo))
    names = res.status_names()
    ok = res.ok
    # Every device that can move converges; the fixed ones are reported as not responding at full
    # drive: stuck, or at-safety-limit where that drive was the limits (the family's own maxima here).
    assert np.all(ok[~fixed]), (name, algo, names, res.pulses)
    assert np.all(np.isin(names[fixed], ["stuck", "at-safety-limit"]) | (np.abs(res.error[fixed]) <= s.tolerance))
    assert np.all(np.abs(res.error[ok]) <= s.tolerance)
    assert np.all(res.energy[ok & (res.pulses > 0)] > 0)
    afe = emu.afe()
    _, after = afe.truth()
    afe.close()
    np.testing.assert_array_equal(after[fixed], before[fixed])


@pytest.mark.parametrize("algo", ["ispp", "adaptive"])
def test_target_outside_range_is_reported(preset_board, algo):
    name, b, s, _ = preset_board
    d = PRESETS[name]
    res = b.program(
        np.array([[d.g_max * 1.5]]), tolerance=s.tolerance, max_pulses=400, algorithm=getattr(s, algo), patience=5
    )
    assert not res.ok[0, 0]
    assert res.status_names()[0, 0] in ("unreachable", "stuck", "at-safety-limit")
    assert res.pulses[0, 0] < 400 or res.status_names()[0, 0] == "at-safety-limit"


@pytest.fixture(scope="module")
def tio2_ffp(hal):
    """The four-terminal device with a calibrated V_w table (paper 001)."""
    from memctl.ffp import calibrate

    with EmulatedBoard(rows=1, cols=1, seed=3, device="tio2_4terminal", hal=hal) as emu, memctl.Board(emu.port) as b:
        b.set_limits(7.0, 2.0, 0.3)
        b.configure(v_read=0.1)
        ffp = memctl.FFP(window_lo=0.1 / 800**2, window_hi=0.3 / 800**2)
        table = calibrate(b, 0, 0, ffp, 1 / 885, 1 / 735, sweeps=2)
        yield b, ffp, table


def test_ffp_trace_keeps_steps_in_the_window(tio2_ffp):
    b, ffp, table = tio2_ffp
    assert (table.v_set > 0).sum() > 20 and (table.v_reset > 0).sum() > 20
    assert np.all(np.diff(table.v_set[table.v_set > 0][:-1]) >= -0.2)  # V_w(R) rises toward the LRS
    for _ in range(10):
        b.pulse(0, 0, -6.0, 0.8)
    g, v = b.ffp_trace(0, 0, +1, ffp)
    r = np.append(1 / g, 1 / b.read(0, 0))
    steps = -np.diff(r)
    assert r[0] == pytest.approx(880, abs=2) and r[-1] == pytest.approx(740, abs=2)
    assert np.mean((steps > 0.1) & (steps < 0.3)) > 0.85  # 0.1 ohm < |dR| < 0.3 ohm
    assert 0.3 <= np.abs(v).min() and np.abs(v).max() <= 7.0  # paper 001's V_w span


def test_ffp_programs_targets_in_window_sized_steps(tio2_ffp):
    """FFP trades speed for predictability: every step stays in the window, so
    the pulse count follows the distance (|dR| / 0.3 ohm ... |dR| / 0.1 ohm)."""
    b, ffp, _ = tio2_ffp
    tol = 0.25 / 800**2  # 0.25 ohm
    for r_target in (870.0, 820.0, 845.0, 760.0, 800.0):
        r_start = 1 / b.read(0, 0)
        res = b.program(np.array([[1 / r_target]]), tolerance=tol, max_pulses=2000, algorithm=ffp)
        assert res.ok[0, 0], res.status_names()
        distance = abs(r_start - r_target)
        assert distance / 0.3 - 2 <= res.pulses[0, 0] <= distance / 0.1 + 10


def test_ffp_table_is_validated_and_unchanged_on_error(tio2_ffp):
    b, _, _ = tio2_ffp
    before = b.ffp_table()
    with pytest.raises(ValueError, match="finite"):
        b.set_ffp_table(memctl.FFPTable(1e-3, 2e-3, np.array([np.nan]), np.array([1.0])))
    with pytest.raises(memctl.FirmwareError, match="g_lo < g_hi"):
        b.set_ffp_table(memctl.FFPTable(2e-3, 1e-3, np.ones(4), np.ones(4)))
    after = b.ffp_table()
    np.testing.assert_array_equal(before.v_set, after.v_set)
    assert (before.g_lo, before.g_hi) == (after.g_lo, after.g_hi)


def test_ffp_without_a_table_is_refused():
    with EmulatedBoard(rows=1, cols=1, seed=1, device="tio2_4terminal") as emu, memctl.Board(emu.port) as b:
        b.set_limits(7.0, 2.0, 0.3)
        with pytest.raises(memctl.FirmwareError, match="V_w table"):
            b.program(np.array([[1.2e-3]]), tolerance=1e-6, algorithm=memctl.FFP(1e-7, 4e-7))


def _fresh_board(name: str, seed: int):
    """A formed board of the preset with its starting settings applied."""
    n = SIZE.get(name, 3)
    emu = EmulatedBoard(rows=n, cols=n, seed=seed, device=name).start()
    b = memctl.Board(emu.port)
    s = settings_for(name)
    s.apply(b, min_width=1e-3)
    if PRESETS[name].v_form:
        form(b, 0.9 * PRESETS[name].v_form)
    return emu, b, s


def _reachable_targets(emu, name: str) -> np.ndarray:
    afe = emu.afe()
    lo, hi = afe.ranges()
    afe.close()
    return lo + (hi - lo) * np.random.default_rng(4).uniform(*BAND.get(name, (0.2, 0.8)), lo.shape)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_ffp_converges_on_every_preset(name):
    from memctl.ffp import calibrate

    emu, b, s = _fresh_board(name, 17)
    try:
        d, i = PRESETS[name], s.ispp
        ffp = memctl.FFP(s.tolerance * 0.5, s.tolerance * 1.5, i.v_set_start, i.v_reset_start, 0.01 * d.v_max, i.width)
        calibrate(b, 0, 0, ffp, 0.5 * d.g_min, 1.5 * d.g_max, sweeps=2)
        targets = _reachable_targets(emu, name)
        res = b.program(targets, tolerance=s.tolerance, max_pulses=2000, algorithm=ffp)
    finally:
        b.close()
        emu.stop()
    assert res.ok.all(), (name, res.status_names(), res.pulses)


def _inverse_predictor(name: str, seed: int, tmp_path, cell: str = "0T1R", hal: str | None = None) -> bytes:
    """An inverse predictor characterized on another board of the family (single pulses)."""
    from memctl.characterize import characterize, write_hdf5
    from memctl.devices import load_device
    from memctl.export.train import fit, load
    from memctl.tuning import characterization_pulses

    d = load_device(name)
    with EmulatedBoard(rows=2, cols=2, seed=seed, device=name, cell=cell, hal=hal) as emu, memctl.Board(emu.port) as b:
        settings_for(d).apply(b, min_width=1e-3)
        if d.v_form:
            form(b, 0.9 * d.v_form)
        sweep = characterization_pulses(d, [(0, 0), (0, 1), (1, 0), (1, 1)], pulses=200)
        write_hdf5(tmp_path / "c.h5", characterize(b, sweep))
    return fit(load([tmp_path / "c.h5"])).int8_blob


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_predictor_guided_converges_on_every_preset(name, tmp_path):
    blob = _inverse_predictor(name, 70, tmp_path, "1T1R" if name == "tio2_4terminal" else "0T1R")
    emu, b, s = _fresh_board(name, 17)  # other devices than the ones characterized
    try:
        b.load_predictor(blob)
        res = b.program(_reachable_targets(emu, name), tolerance=s.tolerance, max_pulses=1000, algorithm=s.predicted)
    finally:
        b.close()
        emu.stop()
    assert res.ok.all(), (name, res.status_names(), res.pulses)


# Generated families the benchmark never uses (it takes generated:1000..1007).
@pytest.mark.slow
@pytest.mark.parametrize("seed", [2000, 2001])
def test_predictor_guided_converges_on_generated_devices(seed, tmp_path):
    from memctl.devices import random_device

    name = f"generated:{seed}"
    d, cell = random_device(seed)
    blob = _inverse_predictor(name, 71, tmp_path, cell)
    s = settings_for(d)
    with EmulatedBoard(rows=3, cols=3, seed=18, device=name, cell=cell) as emu, memctl.Board(emu.port) as b:
        s.apply(b, min_width=1e-3)
        b.load_predictor(blob)
        targets = _reachable_targets(emu, name)
        res = b.program(targets, tolerance=s.tolerance, max_pulses=1000, algorithm=s.predicted)
        lo, hi = emu.afe().ranges()
    fixed = lo == hi  # stuck devices: the board must say so
    assert res.ok[~fixed].all(), (name, res.status_names(), res.pulses)
    assert np.all(np.isin(res.status_names()[fixed], ["stuck", "at-safety-limit"]))
    assert res.pulses[~fixed].mean() < 100


def test_a_predictor_from_another_family_is_refused_and_a_partial_one_warns(tmp_path):
    """Trained on the perovskite family (1-20 uS at 0.1 V), asked for targets of the passive one (10-100 uS at
    0.2 V): most targets outside what it was trained on is refused before any pulse; some is a warning."""
    blob = _inverse_predictor("perovskite_lognormal", 72, tmp_path)
    s = settings_for("pt_al2o3_tio2_passive")
    with EmulatedBoard(rows=2, cols=2, seed=19, device="pt_al2o3_tio2_passive") as emu, memctl.Board(emu.port) as b:
        s.apply(b, min_width=1e-3)
        b.load_predictor(blob)
        pulses = emu.afe().stats().pulses
        with pytest.raises(ValueError, match="a predictor for another family or read voltage. Nothing was pulsed"):
            b.program(np.full((1, 2), 80e-6), tolerance=s.tolerance, max_pulses=5, algorithm=s.predicted)
        assert emu.afe().stats().pulses == pulses
        with pytest.warns(memctl.PredictorRangeWarning, match="outside the .* the loaded predictor was trained on"):
            b.program(np.array([[8e-6, 80e-6]]), tolerance=s.tolerance, max_pulses=5, algorithm=s.predicted)
        assert emu.afe().stats().pulses > pulses
