"""Crossbar and analog front end physics, checked directly in CPython."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from memctl.devices import DeviceModel
from memctl_emulator.afe import AFEConfig, AnalogFrontEnd
from memctl_emulator.array_circuit import LineDrive
from memctl_emulator.crossbar import Crossbar


def bias(rows: int, cols: int, r: int, c: int, v: float) -> LineDrive:
    """V/2 scheme: selected row v, selected column 0, other lines v/2."""
    vr, vc = np.full(rows, v / 2), np.full(cols, v / 2)
    vr[r], vc[c] = v, 0.0
    return LineDrive.driven(vr, vc)


def one(v: float) -> LineDrive:
    return LineDrive.driven(np.array([v]), np.array([0.0]))


def test_sub_threshold_pulse_changes_nothing():
    xb = Crossbar(8, 8, seed=1)
    before = xb.conductance.copy()
    assert xb.apply(LineDrive.driven(np.full(8, 0.5), np.zeros(8)), 1e-3) == 0
    np.testing.assert_array_equal(before, xb.conductance)


def test_potentiation_saturates_and_depression_mirrors():
    xb = Crossbar(1, 1, DeviceModel(c2c_sigma=0.0), seed=2)
    xb.w[:] = 0.0
    steps = []
    for _ in range(40):
        g0 = xb.conductance[0, 0]
        xb.apply(one(1.1), 100e-6)
        steps.append(xb.conductance[0, 0] - g0)
    assert all(s > 0 for s in steps)
    assert steps[-1] < 0.5 * steps[0]  # saturating, state-dependent increments
    assert xb.conductance[0, 0] <= xb.device.g_max
    down = []
    for _ in range(40):
        g0 = xb.conductance[0, 0]
        xb.apply(one(-1.4), 100e-6)
        down.append(g0 - xb.conductance[0, 0])
    assert all(s > 0 for s in down) and down[-1] < down[0]
    assert xb.conductance[0, 0] >= xb.device.g_min


def test_rate_grows_exponentially_with_overdrive():
    moves = []
    for v in (1.0, 1.1, 1.2):
        xb = Crossbar(1, 1, DeviceModel(c2c_sigma=0.0, threshold_spread=0.0, rate_spread=0.0), seed=3)
        xb.w[:] = 0.0
        xb.apply(one(v), 10e-6)
        moves.append(xb.w[0, 0])
    assert moves[2] / moves[1] > 2 and moves[1] / moves[0] > 2


def test_half_select_disturb_is_physics_not_a_rule():
    # Default thresholds (~0.85 V): V/2 of a 1.3 V pulse leaves neighbours alone.
    xb = Crossbar(4, 4, seed=4)
    before = xb.conductance.copy()
    xb.apply(bias(4, 4, 1, 2, 1.3), 100e-6)
    changed = xb.conductance != before
    assert changed[1, 2] and changed.sum() == 1
    # Low-threshold devices: the same pulse now disturbs the half-selected row and column.
    xb = Crossbar(4, 4, DeviceModel(v_set=0.5), seed=4)
    before = xb.conductance.copy()
    xb.apply(bias(4, 4, 1, 2, 1.3), 100e-6)
    changed = xb.conductance != before
    assert changed[1, :].all() and changed[:, 2].all()
    assert not changed[0, 0] and not changed[3, 3]  # unselected devices see 0 V


def test_seeded_runs_repeat_and_seeds_differ():
    a, b, c = Crossbar(4, 4, seed=5), Crossbar(4, 4, seed=5), Crossbar(4, 4, seed=6)
    for xb in (a, b, c):
        xb.apply(bias(4, 4, 0, 0, 1.2), 100e-6)
    np.testing.assert_array_equal(a.conductance, b.conductance)
    assert not np.array_equal(a.conductance, c.conductance)


def test_column_currents_are_ohmic_sums():
    xb = Crossbar(3, 2, DeviceModel(read_noise_rel=0.0, read_noise_abs=0.0), seed=7)
    v = np.array([0.1, -0.2, 0.05])
    np.testing.assert_allclose(xb.column_currents(LineDrive.driven(v, np.zeros(2))), xb.conductance.T @ v)


def test_afe_quantizes_and_keeps_time():
    afe = AnalogFrontEnd(AFEConfig(rows=4, cols=4), seed=8)
    assert afe.clock == 0
    afe.set_line(0, 1, afe.dac_max)  # full scale on row 1
    codes = afe.sample(1)
    assert codes.dtype == np.int32 and codes.shape == (4,)
    assert afe.clock == pytest.approx(afe.config.sample_time)
    afe.pulse(250_000)
    assert afe.clock == pytest.approx(afe.config.sample_time + 250e-6)
    assert afe.pulses == 1
    afe.fill(2, 0)
    assert not afe.volts(0).any() and not afe.volts(1).any()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda a: a.fill(0, 1 << 15), "DAC code"),
        (lambda a: a.set_line(1, 4, 0), "outside"),
        (lambda a: a.set_line(2, 0, 0), "rows"),
        (lambda a: a.sample(9), "current range"),
        (lambda a: a.set_lines(0, 3, np.array([1, 2])), "outside"),
    ],
)
def test_afe_rejects_bad_operations(call, match):
    with pytest.raises(ValueError, match=match):
        call(AnalogFrontEnd(AFEConfig(rows=4, cols=4)))


def test_device_params_validate():
    with pytest.raises(ValueError, match="g_min"):
        DeviceModel(g_min=2e-4, g_max=1e-4).validate()
    with pytest.raises(ValueError, match="rate_set"):
        DeviceModel(rate_set=0).validate()


def test_lognormal_cycle_to_cycle_and_non_monotonic_steps():
    """Paper 000 eq. 4: theta' = theta e^lambda, lambda ~ N(0, sigma^2)."""
    from memctl.devices import PRESETS

    m = dataclasses.replace(
        PRESETS["perovskite_lognormal"], threshold_spread=0.0, rate_spread=0.0, g_spread=0.0, c2c_additive=0.0
    )
    xb = Crossbar(64, 64, m, seed=12)
    xb.w[:] = 0.2
    xb.apply(LineDrive.driven(np.full(64, 2.9), np.zeros(64)), 1e-5)  # every device, same pulse
    steps = np.log(xb.w - 0.2)  # small steps: proportional to the drive
    assert np.std(steps) == pytest.approx(m.c2c_sigma, rel=0.1)
    noisy = Crossbar(1, 1, PRESETS["perovskite_lognormal"], seed=1)
    g = []
    for _ in range(200):
        noisy.apply(LineDrive.driven(np.array([2.9]), np.zeros(1)), 1e-3)
        g.append(noisy.conductance[0, 0])
    assert (np.diff(g) < 0).sum() >= 5  # non-monotonic segments under identical set pulses


def test_sinh_iv_is_nonlinear_but_reads_g_at_vref():
    from memctl.devices import PRESETS

    m = dataclasses.replace(PRESETS["pt_al2o3_tio2_passive"], read_noise_rel=0.0, read_noise_abs=0.0)
    xb = Crossbar(1, 1, m, seed=0)
    g = xb.conductance[0, 0]
    i_ref = xb.column_currents(LineDrive.driven(np.array([0.2]), np.zeros(1)))[0]
    i_double = xb.column_currents(LineDrive.driven(np.array([0.4]), np.zeros(1)))[0]
    assert i_ref == pytest.approx(g * 0.2)
    assert i_double > 2.1 * i_ref  # superlinear, as the Al2O3 barrier makes it (paper 003 Fig. 1c)
    i_neg = xb.column_currents(LineDrive.driven(np.array([-0.2]), np.zeros(1)))[0]
    assert i_neg == pytest.approx(-i_ref)
