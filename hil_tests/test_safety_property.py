"""Whatever the host sends, no pulse leaves the safety limits (property test).

Random PULSE, PROGRAM and PULSE_TRAIN requests, raw frames with arbitrary
floats (NaN, inf, huge, negative), go straight to the firmware; the analog
front end records the largest voltage any device could see in a pulse and
the longest pulse. Both must stay within the limits in force.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import memctl
from memctl_emulation import EmulatedBoard
from memctl_firmware import wire

V_LIMIT, W_LIMIT, R_LIMIT = 1.5, 200e-6, 0.25

floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.floats(-3.0, 3.0, width=32),
    st.sampled_from([1.5, -1.5, 1.5000001, 2e-4, 2.0000001e-4, 0.25, 0.2500001, 0.0, -0.0]),
)
# Mostly plausible values (so pulses really happen), some beyond the limits
# (the DAC reaches +-2.5 V), some arbitrary floats.
volts = st.one_of(st.floats(-2.4, 2.4), st.floats(-2.4, 2.4), floats)
widths = st.one_of(st.floats(1e-7, 2.4e-4), st.floats(1e-7, 2.4e-4), floats)
ispp = st.tuples(
    st.floats(0.5, 2.0), st.floats(0, 0.3), st.floats(-2.0, -0.5), st.floats(0, 0.3), widths, floats, floats, floats
)
adaptive = st.tuples(
    st.floats(0.5, 2.0), st.floats(-2.0, -0.5), st.floats(0.01, 0.5), widths, widths, st.floats(0.05, 0.9),
    st.floats(1.1, 3.0), floats,
)  # fmt: skip
small = st.integers(0, 7)


@pytest.fixture(scope="module")
def emu():
    with EmulatedBoard(rows=8, cols=8, seed=21) as e:
        yield e


@pytest.fixture(scope="module")
def board(emu):
    with memctl.Board(emu.port) as b:
        b.set_limits(V_LIMIT, W_LIMIT, R_LIMIT)
        yield b


def pulse_req(r, c, v, w):
    return wire.T_PULSE, struct.pack(wire.PULSE_REQ, r, c, v, w)


def program_req(tol, max_pulses, algo, patience, params, r, c, target):
    head = struct.pack(wire.PROGRAM_REQ, tol, max_pulses, 1, algo, patience, *params)
    return wire.T_PROGRAM, head + struct.pack(wire.PROGRAM_ITEM, r, c, target)


def train_req(r, c, n, vals):
    return wire.T_PULSE_TRAIN, struct.pack(wire.PULSE_TRAIN_REQ, r, c, n, *vals)


requests = st.one_of(
    st.builds(pulse_req, small, small, volts, widths),
    st.builds(
        program_req,
        st.one_of(st.floats(1e-7, 5e-6), floats),
        st.integers(0, 30),
        st.integers(0, 2),
        st.integers(0, 10),
        st.one_of(ispp, adaptive, st.tuples(*[volts] * 8)),
        small,
        small,
        st.one_of(floats, st.floats(10e-6, 100e-6)),
    ),
    st.builds(
        train_req, small, small, st.integers(0, 20), st.tuples(volts, widths, volts, widths, floats, volts, widths)
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(requests, min_size=1, max_size=4))
def test_no_pulse_outside_limits(board, raw, afe, reqs):
    for mtype, payload in reqs:
        seq = raw_seq()
        rtype, rseq, body = raw.request(mtype, seq, payload)
        assert rseq == seq
        assert rtype in (mtype | wire.RESP, wire.T_ERROR | wire.RESP)
    pulses, v_max, w_max = afe.pulse_stats()
    lsb = board.info().dac_lsb
    _applied.append(pulses)
    assert v_max <= V_LIMIT + 2 * lsb
    assert w_max <= W_LIMIT * (1 + 1e-6) + 1e-9


_seq = [1000]


def raw_seq() -> int:
    _seq[0] = _seq[0] % 60000 + 1
    return _seq[0]


_applied: list[int] = []


def test_the_property_test_applied_pulses():
    """Guards the test above against only ever sending refused requests."""
    assert _applied and _applied[-1] >= 40, _applied[-1]
