"""End to end: host SDK -> pty -> MicroPython firmware -> AFE -> crossbar."""

from __future__ import annotations

import numpy as np
import pytest

import memctl
from memctl import protocol
from memctl_emulator.afe import AFEConfig
from memctl_shared import wire

RV32 = True  # also on the 32-bit RISC-V target; tests marked rp2 also on the rp2 board


@pytest.mark.rp2
def test_info_describes_board(board, emu):
    info = board.info()
    assert info.protocol == wire.PROTOCOL_VERSION
    assert (info.rows, info.cols) == (32, 32)
    assert info.hal == f"{emu.hal}:memctl-emulated-afe"
    assert info.firmware == "0.1.0"
    # 256 KB heap budget: the firmware runs inside it with room to spare.
    assert 200_000 < info.heap_size <= 256 * 1024
    assert 0 < info.heap_peak < info.heap_size
    assert info.limits.v_pulse == pytest.approx(2.0)
    assert abs(info.v_read - 0.2) < info.dac_lsb


@pytest.mark.rp2
def test_read_matches_ground_truth(board, afe):
    _, g_true = afe.truth()
    info = board.info()
    for r, c in [(0, 0), (5, 17), (31, 31)]:
        assert board.read(r, c) == pytest.approx(g_true[r, c], abs=3 * info.g_lsb + 1e-3 * g_true[r, c])


def test_read_array_matches_ground_truth(board, afe):
    g = board.read_array()
    _, g_true = afe.truth()
    assert g.shape == (32, 32)
    assert np.abs(g - g_true).max() < 3 * board.info().g_lsb + 1e-3 * g_true.max()


@pytest.mark.rp2
def test_pulse_moves_selected_device_only(board, afe):
    n0, before = afe.truth()
    applied = board.pulse(3, 4, 1.3, 200e-6)
    n1, after = afe.truth()
    assert n1 == n0 + 1
    assert abs(applied - 1.3) <= board.info().dac_lsb
    assert after[3, 4] > before[3, 4]  # potentiation
    others = np.ones_like(before, bool)
    others[3, 4] = False
    # V/2 = 0.65 V is below every device's set threshold: half-selected devices hold.
    np.testing.assert_array_equal(after[others], before[others])
    board.pulse(3, 4, -1.6, 200e-6)
    _, back = afe.truth()
    assert back[3, 4] < after[3, 4]  # depression


def test_program_8x8_reads_back_within_tolerance(board):
    rng = np.random.default_rng(7)
    targets = rng.uniform(15e-6, 90e-6, (8, 8))
    tol = 1e-6
    res = board.program(targets, tolerance=tol, max_pulses=200, origin=(8, 8), chunk=16)
    assert res.ok.all(), res.status_names()
    assert np.abs(res.error).max() <= tol
    assert (res.pulses > 0).any() and res.pulses.max() <= 200
    assert res.board_time > 0 and (res.time > 0).all()
    readback = board.read_array()[8:16, 8:16]
    # Read-back is a fresh measurement: tolerance plus read resolution.
    assert np.abs(readback - targets).max() <= tol + 3 * board.info().g_lsb


@pytest.mark.rp2
def test_program_reports_the_energy_and_board_time_the_front_end_saw(board, afe, emu):
    """Three identical 1.2 V, 100 us pulses toward an unreachable target: the
    board time is the front end's clock over the request (pulses plus every
    conversion), the energy sum V^2 G t with G between the device's
    conductance before and after."""
    v, w = 1.2, 100e-6
    _, g0 = afe.truth()
    before, t0 = afe.stats(), afe.clock()
    ispp = memctl.ISPP(v, 0.0, -1.1, 0.0, w)
    res = board.program(np.array([[0.5]]), origin=(25, 25), tolerance=1e-7, max_pulses=3, algorithm=ispp)
    after, t1 = afe.stats(), afe.clock()
    _, g1 = afe.truth()
    pulses, conversions = after.pulses - before.pulses, after.conversions - before.conversions
    assert res.pulses[0, 0] == pulses == 3
    assert res.board_time == pytest.approx(res.time[0, 0], rel=1e-6)
    if emu.target == "rp2":  # the array rests while the MCU computes: that time passes on it too
        assert t1 - t0 >= res.board_time
    else:
        assert res.board_time == pytest.approx(t1 - t0, rel=1e-6)
    assert res.board_time == pytest.approx(pulses * w + conversions * AFEConfig().sample_time, rel=1e-6)
    assert conversions >= pulses + 1
    v_q = board.info().dac_lsb * round(v / board.info().dac_lsb)
    lo, hi = sorted((g0[25, 25], g1[25, 25]))
    assert 3 * v_q**2 * w * lo * 0.99 <= res.energy[0, 0] <= 3 * v_q**2 * w * hi * 1.01


@pytest.mark.rp2
def test_program_unreachable_target_reports_reason(board):
    res = board.program(np.array([[0.5e-3]]), tolerance=1e-7, max_pulses=5, origin=(20, 20))
    assert res.pulses[0, 0] == 5
    assert res.status_names()[0, 0] in ("max-pulses", "at-safety-limit")
    assert not res.ok[0, 0]


@pytest.mark.rp2
def test_vmm_matches_readback_within_adc_resolution(board, emu):
    info = board.info()
    rng = np.random.default_rng(3)
    x = rng.choice([-0.2, 0.2], info.rows)  # +-0.2 V inputs as in paper 003
    g = board.read_array()
    currents = board.vmm(x)
    applied = info.dac_lsb * np.round(x / info.dac_lsb)  # the DAC's codes: 0.2 V is 0.19997 V (a 1.4e-4 bias)
    expected = g.T @ applied
    # ADC resolution of the VMM range and of every read-back, plus 4 sigma of
    # the device family's read noise (on the VMM and on the read-backs).
    d = emu.device
    rel = 2 * ((d.read_noise_rel * g * x[:, None]) ** 2).sum(axis=0)
    col = d.read_noise_abs**2 * (1 + ((x / info.v_read) ** 2).sum())  # the VMM's and each read-back's
    sigma = np.sqrt(rel + col)
    tol = 2 * board.vmm_resolution + np.abs(x).sum() * 2 * info.g_lsb + 4 * sigma
    assert board.vmm_resolution > 0
    assert np.all(np.abs(currents - expected) <= tol)
    assert np.abs(expected).max() > 100 * tol.max()  # the comparison is not vacuous


@pytest.mark.rp2
def test_pulse_above_safety_limit_is_refused_and_changes_nothing(board, afe):
    n0, before = afe.truth()
    with pytest.raises(memctl.SafetyLimitError, match="safety limit"):
        board.pulse(0, 0, 2.5, 100e-6)
    with pytest.raises(memctl.SafetyLimitError):
        board.pulse(0, 0, 1.0, 0.5)  # width beyond limit
    with pytest.raises(memctl.SafetyLimitError):
        board.vmm(np.full(32, 0.5))  # input beyond read limit would disturb devices
    n1, after = afe.truth()
    assert n1 == n0
    np.testing.assert_array_equal(before, after)


@pytest.mark.rp2
def test_set_limits_is_enforced_and_bounded(board, afe):
    try:
        lim = board.set_limits(1.0, 1e-3, 0.25)
        assert lim.v_pulse == pytest.approx(1.0)
        assert board.limits().v_pulse == pytest.approx(1.0)
        n0, _ = afe.truth()
        with pytest.raises(memctl.SafetyLimitError):
            board.pulse(1, 1, 1.2, 100e-6)
        with pytest.raises(memctl.SafetyLimitError):
            board.program(np.array([[60e-6]]), origin=(1, 1))  # ISPP start 0.9 V ok, reset -1.1 V not
        assert afe.truth()[0] == n0
        with pytest.raises(memctl.SafetyLimitError, match="DAC range"):
            board.set_limits(10.0, 1e-3, 0.2)
    finally:
        board.set_limits(2.0, 1e-3, 0.3)


@pytest.mark.rp2
def test_firmware_refuses_bad_requests_that_bypass_the_sdk(raw, afe):
    n0, before = afe.truth()
    cases = [
        (wire.T_PULSE, protocol.encode_pulse(0, 0, float("nan"), 1e-4), wire.E_LIMIT),
        (wire.T_PULSE, protocol.encode_pulse(0, 0, float("inf"), 1e-4), wire.E_LIMIT),
        (wire.T_PULSE, protocol.encode_pulse(0, 0, 1.0, -1e-4), wire.E_PAYLOAD),  # not a width: no limit involved
        (wire.T_PULSE, protocol.encode_pulse(0, 0, 1.0, 5e-3), wire.E_LIMIT),
        (wire.T_PULSE, protocol.encode_pulse(40, 0, 1.0, 1e-4), wire.E_ADDRESS),
        (wire.T_PULSE, b"\x00\x01", wire.E_PAYLOAD),
        (wire.T_READ, protocol.encode_read(0, 99), wire.E_ADDRESS),
        (wire.T_READ_ROWS, protocol.encode_read_rows(0, 32), wire.E_PAYLOAD),
        (0x55, b"", wire.E_UNKNOWN),
        (wire.T_VMM, protocol.encode_vmm(np.zeros(3)), wire.E_ADDRESS),
        (wire.T_SET_LIMITS, protocol.encode_limits(float("nan"), 1e-3, 0.2), wire.E_LIMIT),
    ]
    for seq, (mtype, payload, code) in enumerate(cases, start=100):
        rtype, rseq, body = raw.request(mtype, seq, payload)
        assert (rtype, rseq) == (wire.T_ERROR | wire.RESP, seq), (mtype, payload)
        assert body[0] == code, (mtype, payload, body)
        assert len(body) > 1  # a message for the user
    # Limit errors name the value and the limit; a width that is not a width says so.
    assert raw.request(wire.T_PULSE, 90, protocol.encode_pulse(0, 0, 1.0, 5e-3))[2][1:] == (
        b"pulse width 0.005 s beyond the safety limit 0.001 s"
    )
    assert raw.request(wire.T_PULSE, 91, protocol.encode_pulse(0, 0, 2.5, 1e-4))[2][1:] == (
        b"pulse amplitude 2.5 V beyond the safety limit 2 V"
    )
    assert raw.request(wire.T_PULSE, 92, protocol.encode_pulse(0, 0, 1.0, -1e-4))[2][1:] == (
        b"pulse width must be > 0 s, got -0.0001 s"
    )
    # A PROGRAM with one bad item among good ones applies nothing at all.
    ispp = [0.9, 0.02, -1.1, 0.02, 1e-4, 0, 0, 0]
    req = protocol.encode_program(1e-6, 50, wire.A_ISPP, 8, ispp, [(2, 2, 50e-6), (2, 99, 50e-6)])
    rtype, _, body = raw.request(wire.T_PROGRAM, 200, req)
    assert rtype == wire.T_ERROR | wire.RESP and body[0] == wire.E_ADDRESS
    n1, after = afe.truth()
    assert n1 == n0
    np.testing.assert_array_equal(before, after)


@pytest.mark.rp2
def test_malformed_frames_get_error_reply_and_board_keeps_serving(raw, board):
    good = wire.encode_frame(wire.T_INFO, 7)
    bad_crc = bytearray(good)
    bad_crc[3] ^= 0x40
    raw.send(bytes(bad_crc))
    (rtype, _, body) = raw.frames(count=1)[0]
    assert rtype == wire.T_ERROR | wire.RESP and body[0] == wire.E_CRC
    raw.send(b"\x05\x01\x02\x00")  # COBS-valid but shorter than a header
    (rtype, _, body) = raw.frames(count=1)[0]
    assert rtype == wire.T_ERROR | wire.RESP and body[0] == wire.E_FRAME
    raw.send(b"\x07" * 3000 + b"\x00")  # longer than any frame
    (rtype, _, body) = raw.frames(count=1)[0]
    assert body[0] == wire.E_TOO_LONG
    assert board.info().rows == 32  # still serving


@pytest.mark.rp2
def test_retried_program_chunk_is_not_applied_twice(raw, afe):
    ispp = [0.9, 0.02, -1.1, 0.02, 1e-4, 0, 0, 0]
    frame = wire.encode_frame(
        wire.T_PROGRAM, 4242, protocol.encode_program(1e-6, 100, wire.A_ISPP, 8, ispp, [(30, 1, 70e-6)])
    )
    raw.send(frame)
    first = raw.frames(timeout=60, count=1)[0]  # the rp2 board takes seconds of wall time for the pulses
    n_after_first, g_after_first = afe.truth()
    raw.send(frame)  # the host's retry after a lost reply: same seq, same bytes
    second = raw.frames(timeout=60, count=1)[0]
    n_after_second, g_after_second = afe.truth()
    assert first == second
    assert first[0] == wire.T_PROGRAM | wire.RESP
    _, (result,) = protocol.decode_program(first[2], 1)
    assert result.energy > 0
    assert result.status == wire.S_OK and result.pulses > 0
    assert n_after_second == n_after_first
    np.testing.assert_array_equal(g_after_first, g_after_second)


def test_sdk_rejects_bad_input_before_sending(board, afe):
    n0, _ = afe.truth()
    with pytest.raises(ValueError, match="finite"):
        board.program(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="2-D"):
        board.program(np.ones(4) * 50e-6)
    with pytest.raises(ValueError, match="does not fit"):
        board.program(np.full((8, 8), 50e-6), origin=(30, 30))
    with pytest.raises(ValueError, match="siemens"):
        board.program(np.full((2, 2), 50.0))
    with pytest.raises(ValueError, match="shape"):
        board.vmm(np.zeros(5))
    with pytest.raises(IndexError):
        board.read(32, 0)
    assert afe.truth()[0] == n0
