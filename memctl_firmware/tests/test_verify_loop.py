"""The firmware's verify loop, algorithms and limit checks under CPython on a fake front end."""

from __future__ import annotations

import math

import numpy as np
import pytest
from algorithms import Params, prepare
from verify import Outcome, program_device
from errors import CommandError, LimitError
from fake_front_end import FakeFrontEnd
from wire import A_ADAPTIVE, A_ISPP, S_LIMIT, S_MAX_PULSES, S_OK, S_STUCK, S_UNREACHABLE
from xbar import Array, Limits

TOL = 1e-6


def board(**fe_kw) -> tuple[FakeFrontEnd, Array]:
    fe = FakeFrontEnd(**fe_kw)
    lim = Limits()
    lim.set(1.5, 1e-3, 0.3)
    return fe, Array(fe, lim, 0.2)


def params(algorithm: int, p: list[float], max_pulses: int = 200) -> Params:
    pp = Params()
    pp.algorithm, pp.tol, pp.max_pulses, pp.patience = algorithm, TOL, max_pulses, 8
    pp.p = (list(p) + [0.0] * 8)[:8]
    return pp


ISPP = [1.0, 0.02, -1.0, 0.02, 1e-4]  # start just at the toy's threshold, 20 mV steps


def run(array: Array, pp: Params, target: float, r: int = 1, c: int = 2) -> Outcome:
    out = Outcome()
    program_device(array, r, c, target, pp, prepare(pp, array.limits), out)
    return out


@pytest.mark.parametrize("target", [15e-6, 50e-6, 90e-6])
def test_ispp_sets_a_device_inside_the_tolerance_and_leaves_the_rest(target):
    fe, a = board()
    out = run(a, params(A_ISPP, ISPP), target)
    assert out.status == S_OK and abs(fe.g[1, 2] - target) <= TOL + 2e-8  # read quantization
    assert out.pulses == len(fe.pulses) > 0 and out.energy > 0
    others = np.delete(fe.g.ravel(), 1 * fe.cols + 2)
    np.testing.assert_array_equal(others, 20e-6)  # V/2 keeps half-selected devices below threshold


def test_adaptive_needs_fewer_pulses_than_fixed_steps_on_a_far_target():
    fe, a = board()
    ispp = run(a, params(A_ISPP, ISPP), 90e-6)
    fe2, a2 = board()
    adaptive = run(a2, params(A_ADAPTIVE, [1.0, -1.0, 0.05, 1e-4, 1e-3, 0.3, 1.5]), 90e-6)
    assert ispp.status == adaptive.status == S_OK
    assert adaptive.pulses < ispp.pulses


def test_stop_reasons():
    fe, a = board()
    fe.stuck[1, 2] = True
    assert run(a, params(A_ISPP, [1.4, 0.1, -1.4, 0.1, 1e-4]), 50e-6).status == S_STUCK
    fe, a = board()
    assert run(a, params(A_ISPP, [1.4, 0.1, -1.4, 0.1, 1e-4]), 150e-6).status == S_UNREACHABLE  # past g_max
    fe, a = board()
    assert run(a, params(A_ISPP, [1.0, 0.0, -1.0, 0.0, 1e-5], max_pulses=3), 90e-6).status == S_MAX_PULSES
    fe, a = board(rate=1e-3)  # barely moves: the amplitude climbs to the limit and stays there
    assert run(a, params(A_ISPP, [1.4, 0.2, -1.4, 0.2, 1e-3], max_pulses=5), 90e-6).status == S_LIMIT
    fe, a = board(rate=1e-3)  # the same at a width inside the limit: more was possible, so it is not the limits
    assert run(a, params(A_ISPP, [1.4, 0.2, -1.4, 0.2, 1e-4], max_pulses=5), 90e-6).status == S_MAX_PULSES


def test_read_noise_at_a_ceiling_does_not_keep_a_device_going():
    """A target above the device's range, reads noisy by 0.4 tolerance: steps toward the target that are only
    noise must not reset patience. The device stops as unreachable within a few patience spans of reaching its
    ceiling, not at max_pulses."""
    fe, a = board(noise=0.4 * TOL)
    out = run(a, params(A_ISPP, [1.4, 0.1, -1.4, 0.1, 1e-4], max_pulses=200), 120e-6)
    assert out.status == S_UNREACHABLE, out.status
    at_ceiling = 1 + int(np.ceil((100e-6 - 20e-6) / (2e-6 / 1e-4 * 0.5 * 1e-4)))  # pulses at 1.5 V to reach g_max
    assert out.pulses <= at_ceiling + 3 * 8, out.pulses


def test_a_stop_at_both_limits_is_reported_at_safety_limit_not_stuck():
    """Pulses far too short for the device (a family needing 100x the width limit): at full drive
    nothing moves, and full drive was the safety limits, so the limits are named, not the device."""
    for cap in (1e-3, 1e-2):  # the algorithm's own width cap at, and beyond, the 1 ms limit
        fe, a = board()
        fe.stuck[1, 2] = True
        out = run(a, params(A_ADAPTIVE, [1.0, -1.0, 0.05, 1e-4, cap, 0.3, 1.5]), 50e-6)
        assert out.status == S_LIMIT, out.status
    fe, a = board()  # the algorithm's cap (0.5 ms) inside the limits: the device did not respond
    fe.stuck[1, 2] = True
    assert run(a, params(A_ADAPTIVE, [1.0, -1.0, 0.05, 1e-4, 5e-4, 0.3, 1.5]), 50e-6).status == S_STUCK


def test_nothing_reaches_the_array_beyond_the_limits():
    fe, a = board()
    with pytest.raises(LimitError):
        prepare(params(A_ISPP, [1.6, 0.02, -1.0, 0.02, 1e-4]), a.limits)  # start beyond 1.5 V
    with pytest.raises(LimitError):
        prepare(params(A_ISPP, [1.0, 0.02, -1.0, 0.02, 2e-3]), a.limits)  # width beyond 1 ms
    for v, w in ((math.nan, 1e-4), (1.0, math.inf), (1.5001, 1e-4)):
        with pytest.raises(LimitError):
            a.pulse(0, 0, v, w)
    for w in (-1e-4, 0.0, math.nan):  # not a width at all: refused as bad input, not as beyond a limit
        with pytest.raises(CommandError, match="must be > 0 s"):
            a.pulse(0, 0, 1.0, w)
    with pytest.raises(CommandError):
        prepare(_tol(params(A_ISPP, ISPP), 0.0), a.limits)  # a tolerance of 0 S never ends
    assert fe.pulses == []
    # A program whose steps would grow past the limit is held at it.
    run(a, params(A_ISPP, [1.4, 0.3, -1.4, 0.3, 1e-4], max_pulses=6), 99e-6)
    assert 0 < fe.peak <= 1.5


def _tol(pp: Params, tol: float) -> Params:
    pp.tol = tol
    return pp


def test_pulse_biasing_follows_the_scheme():
    fe, a = board()
    a.pulse(1, 2, 1.2, 1e-4)
    rows, cols, _ = fe.pulses[-1]
    across = rows[:, None] - cols[None, :]
    assert across[1, 2] == pytest.approx(1.2, abs=fe.v_lsb)
    half = np.zeros_like(across, bool)
    half[1, :] = half[:, 2] = True
    half[1, 2] = False
    np.testing.assert_allclose(across[half], 0.6, atol=fe.v_lsb)  # V/2: half-selected see half
    np.testing.assert_allclose(across[~half & (np.arange(4)[:, None] != 1)], 0.0, atol=fe.v_lsb)
