"""Whatever the host sends, no pulse or read leaves the safety limits (property test).

Generated PULSE, PULSE_TRAIN, PROGRAM (every algorithm), FFP_TRACE, VMM,
RUN_NETWORK and CONFIG + READ requests go to the firmware as raw frames. Most
values sit within a few DAC steps (or timer ticks) inside a limit, some just
beyond it, some anywhere, some arbitrary floats (NaN, inf, huge). For each
request the test knows from the limits alone whether it must be applied or
refused, and holds the firmware to that; a refused request reaches nothing,
and nothing any request does passes a limit (the front end's own record).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from limits_probe import (
    COL,
    DOWN,
    ROW,
    TICK,
    UP,
    Limits,
    Probe,
    config,
    f32,
    ffp_trace,
    program,
    pulse,
    read,
    run_network,
    train,
    vmm,
)

from memctl import protocol
from memctl_shared import wire

# A value relative to a limit: ("near", k) is k DAC steps or ticks inside it (k < 0: beyond),
# ("share", f) is f times the limit, ("raw", x) an arbitrary float32.
inside = st.one_of(
    st.integers(0, 3).map(lambda k: ("near", k)),
    st.integers(0, 40).map(lambda k: ("near", k)),
    st.floats(0.05, 1.0).map(lambda f: ("share", f)),
)
outside = st.one_of(
    st.just(("near", -1)), st.integers(-3, -1).map(lambda k: ("near", k)), st.floats(width=32).map(lambda x: ("raw", x))
)


def value(s: tuple, limit: float, step: float, sign: int = 1) -> float:
    kind, x = s
    if kind == "near":
        return sign * (limit - x * step)
    return sign * x * limit if kind == "share" else x


def amp_ok(lim: Limits, *volts: float) -> bool:
    return all(abs(f32(v)) <= lim.v_pulse for v in volts)


def width_ok(lim: Limits, *widths: float) -> bool:
    return all(0 < f32(w) <= lim.width for w in widths)


def pulse_case(lim: Limits, a, w, sign):
    v, t = value(a, lim.v_pulse, lim.lsb, sign), value(w, lim.width, TICK)
    return [pulse(v, t)], amp_ok(lim, v) and width_ok(lim, t)


def train_case(lim: Limits, a, w, anti, r, sign):
    v, t, vr = value(a, lim.v_pulse, lim.lsb, sign), value(w, lim.width, TICK), value(r, lim.v_read, lim.lsb, -sign)
    ok = amp_ok(lim, v) and width_ok(lim, t) and lim.read_ok(vr)
    if anti is None:
        return [train(v, t, v_r=vr)], ok
    va, ta = value(anti[0], lim.v_pulse, lim.lsb, -sign), value(anti[1], lim.width, TICK)
    return [train(v, t, va, ta, vr)], ok and (f32(ta) == 0 or (amp_ok(lim, va) and width_ok(lim, ta)))


def program_case(lim: Limits, algo, a_set, a_reset, w, target, n, cols=(COL,), flags=0):
    """Each algorithm's limit-bound parameters from the specs; the rest valid."""
    vs, vr = value(a_set, lim.v_pulse, lim.lsb), value(a_reset, lim.v_pulse, lim.lsb, -1)
    t = value(w, lim.width, TICK)
    ok = f32(vs) > 0 and f32(vr) < 0 and amp_ok(lim, vs, vr) and width_ok(lim, t)
    if algo == wire.A_ISPP:
        params = (vs, 0.3, vr, 0.3, t)
    elif algo == wire.A_ADAPTIVE:
        params = (vs, vr, 0.3, t, 10 * lim.width, 0.5, 2.0)
    elif algo == wire.A_FFP:
        params = (1e-7, 1e-6, vs, vr, 0.1, t, 0.0)
    else:  # candidates from 0.1 V and W/10 up to the specs
        params = (0.1, vs, -0.1, vr, lim.width / 10, t, 4, 2)
        ok = ok and f32(vs) >= 0.1 and f32(vr) <= -0.1 and f32(t) >= f32(lim.width / 10)
    return [program(algo | flags, params, target, n, cols)], ok


def trace_case(lim: Limits, a_set, a_reset, w, direction, n):
    vs, vr = value(a_set, lim.v_pulse, lim.lsb), value(a_reset, lim.v_pulse, lim.lsb, -1)
    t = value(w, lim.width, TICK)
    ok = f32(vs) > 0 and f32(vr) < 0 and amp_ok(lim, vs, vr) and width_ok(lim, t)
    return [ffp_trace((1e-7, 1e-6, vs, vr, 0.1, t, 0.0), direction, n)], ok


def vmm_case(lim: Limits, row, r, sign):
    v = value(r, lim.v_read, lim.lsb, sign)
    return [vmm(4, row, v)], lim.read_ok(v)


def config_case(lim: Limits, r):
    v = value(r, lim.v_read, lim.lsb)
    return [config(v), read()], 0 < f32(v) <= lim.v_read


# Limit-bound values each kind of request takes from the specs.
FIELDS = {"pulse": 2, "train": 5, "program": 3, "trace": 3, "vmm": 1, "network": 0, "config": 1}


@st.composite
def cases(draw):
    """A request as a function of the limits: (requests, whether they must be applied).
    Every limit-bound value starts inside its limit; a quarter of the requests get
    one of them beyond it or arbitrary."""
    # Hypothesis favours the first of a choice; these choices should spread evenly.
    rnd = draw(st.randoms(use_true_random=False))
    kind = rnd.choice(sorted(FIELDS))
    specs = [draw(inside) for _ in range(5)]
    if FIELDS[kind] and rnd.random() < 0.25:
        specs[rnd.randrange(FIELDS[kind])] = draw(outside)
    sign = rnd.choice([1, -1])
    if kind == "pulse":
        return lambda L: pulse_case(L, specs[0], specs[1], sign)
    if kind == "train":
        anti = (specs[2], specs[3]) if draw(st.booleans()) else None
        return lambda L: train_case(L, specs[0], specs[1], anti, specs[4], sign)
    if kind == "program":
        algo = draw(st.sampled_from([wire.A_ISPP, wire.A_ADAPTIVE, wire.A_FFP, wire.A_PREDICT]))
        target, n = draw(st.sampled_from([UP, DOWN])), draw(st.integers(1, 4))
        return lambda L: program_case(L, algo, specs[0], specs[1], specs[2], target, n)
    if kind == "trace":
        n = draw(st.integers(1, 3))
        return lambda L: trace_case(L, specs[0], specs[1], specs[2], sign, n)
    if kind == "vmm":
        row = draw(st.integers(0, 3))
        return lambda L: vmm_case(L, row, specs[0], sign)
    if kind == "network":
        x = draw(st.tuples(*[st.floats(-1e6, 1e6, width=32)] * 2))
        return lambda L: ([run_network(*x)], True)
    return lambda L: config_case(L, specs[0])


def test_no_request_passes_a_limit_and_each_is_applied_or_refused_as_the_limits_say(hal):
    probe = Probe(hal, seed=21)
    lim = probe.limits
    applied, refused, peaks = [], [], np.zeros(3)
    try:

        @settings(max_examples=300, deadline=None)
        @given(st.lists(cases(), min_size=1, max_size=3))
        def requests_keep_the_limits(draws):
            for draw in draws:
                reqs, ok = draw(lim)
                o = probe.send(*reqs)
                probe.assert_within(o)
                if ok:
                    assert not o.refused, f"refused within the limits: {o.error}"
                    applied.append(o.seen.pulses + o.seen.conversions)
                    peaks[:] = np.maximum(peaks, (o.seen.peak_pulse_v, o.seen.peak_width, o.seen.peak_read_v))
                else:
                    assert o.refused, f"applied beyond the limits: {o.seen}"
                    assert (o.seen.pulses, o.seen.conversions) == (0, 0), f"refused, but the array saw {o.seen}"
                    refused.append(1)
            probe.send(config(0.1))

        requests_keep_the_limits()
    finally:
        probe.close()
    # The generator mostly makes requests that are applied, and they reach the limits themselves.
    assert len(applied) > 1.5 * len(refused) and sum(applied) > 300, (len(applied), len(refused), sum(applied))
    assert peaks[0] >= lim.v_pulse - lim.lsb and abs(peaks[1] - lim.width_ticks * TICK) < 1e-15
    assert peaks[2] >= lim.v_read - lim.lsb


@st.composite
def row_cases(draw):
    """Row-parallel PROGRAMs: several devices of one row, pulsed at once."""
    rnd = draw(st.randoms(use_true_random=False))
    specs = [draw(inside) for _ in range(3)]
    if rnd.random() < 0.25:
        specs[rnd.randrange(3)] = draw(outside)
    algo = draw(st.sampled_from([wire.A_ISPP, wire.A_ADAPTIVE, wire.A_FFP, wire.A_PREDICT]))
    cols = tuple(draw(st.lists(st.integers(0, 3), min_size=2, max_size=4, unique=True)))
    target, n = draw(st.sampled_from([UP, DOWN])), draw(st.integers(1, 4))
    return lambda L: program_case(L, algo, specs[0], specs[1], specs[2], target, n, cols, wire.A_ROWS)


@pytest.mark.parametrize("cell", ["1T1R", "0T1R"])
def test_row_parallel_pulses_keep_the_limits_and_touch_only_their_devices(hal, cell):
    """Row-parallel PROGRAMs: applied or refused as the limits say, nothing beyond a limit reaches the
    array, and the devices outside the request are spared (truth from the front end). 1T1R: none of them
    moves (other rows are gated off, the row's other columns sit at the row's own voltage). Passive, with a
    disturb limit just above half the pulse limit so that V/2 biasing lets every pulse share: none of them
    ever has more than the disturb limit across it."""
    probe = Probe(hal, seed=23, cell=cell)
    lim = probe.limits
    v_disturb = f32(lim.v_pulse / 2 + 2 * lim.lsb)
    if cell == "0T1R":
        probe.board.set_limits(lim.v_pulse, lim.width, lim.v_read, v_disturb)
    applied = []
    try:

        @settings(max_examples=120, deadline=None)
        @given(row_cases())
        def rows_keep_the_limits(draw):
            reqs, ok = draw(lim)
            _, before = probe.afe.truth()
            o = probe.send(*reqs)
            _, after = probe.afe.truth()
            probe.assert_within(o)
            addressed = np.zeros(before.shape, bool)
            addressed[ROW, sorted(_cols(reqs[0][1]))] = True
            if cell == "1T1R":
                np.testing.assert_array_equal(after[~addressed], before[~addressed])
            else:
                peaks = probe.afe.device_peaks()
                assert peaks[~addressed].max() <= v_disturb + 1e-9, (peaks, v_disturb)
            if ok:
                assert not o.refused, f"refused within the limits: {o.error}"
                _, results = protocol.decode_program(o.reply, len(_cols(reqs[0][1])))
                # Device pulses against pulse events on the array: fewer events when devices shared them.
                applied.append((sum(r.pulses for r in results), o.seen.pulses))
            else:
                assert o.refused and o.seen.pulses == 0, f"applied beyond the limits: {o.seen}"

        rows_keep_the_limits()
    finally:
        probe.close()
    device_pulses, events = np.sum(applied, axis=0)
    assert device_pulses > 50 and events < 0.8 * device_pulses, (device_pulses, events)


def _cols(payload: bytes) -> set:
    import struct

    m = wire.PROGRAM
    n = (len(payload) - m.req_size) // m.req_item_size
    return {struct.unpack_from(m.req_item, payload, m.req_size + k * m.req_item_size)[1] for k in range(n)}
