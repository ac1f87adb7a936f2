"""Reliability under faults: a noisy line, resets, brown-outs,
unplugged cables, stuck devices, a saturated ADC, a board without limits.

What must hold: every command completes or fails loudly; no device is
reported programmed when it is not (each final conductance is checked
against the front end's ground truth); nothing runs twice by accident."""

from __future__ import annotations

import contextlib
import re
import threading

import numpy as np
import pytest

import memctl
from memctl.errors import BoardReset, FirmwareError, SafetyLimitError
from memctl_emulator import EmulatedBoard
from memctl_emulator.faults import LinkFaults
from memctl_emulator.firmware_python import FIRMWARE
from memctl_shared import wire

TOL = 1e-6


def targets(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(20e-6, 90e-6, (n, n))


def check_truthful(board_result, truth: np.ndarray, origin=(0, 0)) -> None:
    """Zero undetected errors: what the board reports is what the array holds."""
    r0, c0 = origin
    n, m = board_result.targets.shape
    real = truth[r0 : r0 + n, c0 : c0 + m]
    assert board_result.ok.all(), board_result.status_names()
    assert np.abs(real - board_result.targets).max() <= TOL * 1.05
    assert np.abs(real - board_result.final).max() < 0.05 * TOL


@pytest.mark.slow
@pytest.mark.parametrize(
    "faults",
    [
        LinkFaults(corrupt=0.01, seed=1),
        LinkFaults(drop=0.01, seed=2),
        LinkFaults(duplicate=0.01, seed=3),
        LinkFaults(burst=0.002, burst_len=6, seed=4),
    ],
    ids=["corrupt-1%", "drop-1%", "duplicate-1%", "bursts"],
)
def test_a_noisy_line_completes_every_command_without_undetected_errors(faults):
    with EmulatedBoard(seed=21) as emu, memctl.Board(emu.port, timeout=0.4, progress=False) as b:
        emu.set_link_filter(faults)
        res = b.program(targets(6, 1), tolerance=TOL, max_pulses=200, origin=(2, 2))
        g = b.read_array()
        x = np.r_[np.full(8, 0.1), np.zeros(24)]
        i = b.vmm(x)
        emu.set_link_filter(None)
        afe = emu.afe()
        _, truth = afe.truth()
        afe.close()
    check_truthful(res, truth, (2, 2))
    assert np.abs(g - truth).max() < 0.05 * TOL  # the read-back map is the array's
    assert np.abs(i - x @ truth).max() < 1e-3 * np.abs(x @ truth).max()
    affected = sum(v for k, v in faults.counts.items() if k != "bytes")
    assert affected > 0 and b.link.stats["retries"] > 0  # faults happened and were recovered from


def test_a_reset_during_a_weight_map_stream_is_resynchronized_and_resumed():
    """The board reboots after some devices of a chunk are done: the host sees
    the new session, re-sends the chunk (write-verify reads first), and the
    devices done before the reset are not pulsed again."""
    with EmulatedBoard(seed=22) as emu, memctl.Board(emu.port, timeout=0.5, progress=False) as b:
        afe = emu.afe()
        seen: dict = {}

        def step(n: int, total: int) -> None:
            if n >= 20 and not seen:
                emu.reset()  # the firmware dies mid-chunk; the crossbar keeps its state
                seen["truth"] = afe.truth()[1].copy()
                seen["done"] = n

        t = targets(8, 2)
        with progress_hook(b, step):
            res = b.program(t, tolerance=TOL, max_pulses=200, chunk=64)
        _, truth = afe.truth()
        afe.close()
    assert emu.resets == 1 and b.resets == 1
    check_truthful(res, truth)
    done = seen["done"]
    first = np.unravel_index(np.arange(done), t.shape)
    assert np.array_equal(seen["truth"][first], truth[first])  # finished before the reset: untouched since


@contextlib.contextmanager
def progress_hook(b: memctl.Board, hook):
    """Pass every progress frame the link receives to hook(n, total) too."""
    original = b.link.request

    def request(mtype, payload=b"", **kw):
        inner = kw.get("progress")

        def both(n: int, total: int) -> None:
            if inner:
                inner(n, total)
            hook(n, total)

        kw["progress"] = both
        return original(mtype, payload, **kw)

    b.link.request = request  # type: ignore[method-assign]
    try:
        yield
    finally:
        b.link.request = original  # type: ignore[method-assign]


def test_a_reset_during_a_deployment_resumes_and_the_map_is_right(tmp_path):
    from memctl.deployment import Layer, deploy

    rng = np.random.default_rng(5)
    layers = [
        Layer(rng.normal(size=(6, 8)), rng.normal(size=6) * 0.3, "Relu"),
        Layer(rng.normal(size=(3, 6)), rng.normal(size=3) * 0.3, None),
    ]
    x = rng.uniform(-1, 1, (10, 8))
    with EmulatedBoard(seed=28) as emu, memctl.Board(emu.port, timeout=0.5, progress=False) as b:
        fired: list = []

        def hook(n: int, total: int) -> None:
            if n == 30 and not fired:
                fired.append(n)
                emu.reset()

        with progress_hook(b, hook):
            dep = deploy(layers, b, tolerance=TOL, max_pulses=200, manifest=tmp_path / "m.json")
        y = dep.run(b, x)
        afe = emu.afe()
        _, truth = afe.truth()
        afe.close()
    assert fired and emu.resets == 1 and b.resets == 1
    for p in dep.placements:  # every device holds its target: nothing skipped, the record is the array's
        real = truth[np.ix_(p.rows, p.cols)]
        assert np.abs(real - np.array(p.targets)).max() <= 1.05 * TOL
        assert np.abs(real - np.array(p.achieved)).max() < 0.05 * TOL
    from memctl.onnx_mlp import forward

    want = forward(layers, x)
    assert np.abs(y - want).max() < 0.1 * np.abs(want).max()


@pytest.mark.parametrize("pulse", np.random.default_rng(7).integers(1, 150, 3).tolist())
def test_a_reset_at_a_random_pulse_of_a_stream(pulse):
    """The moment is the workload's own (its n-th pulse, counted by the front end), not the wall clock's."""
    with EmulatedBoard(seed=29) as emu, memctl.Board(emu.port, timeout=0.5, progress=False) as b:
        worker = emu.reset_at_pulse(pulse)
        res = b.program(targets(8, 4), tolerance=TOL, max_pulses=200)
        worker.join()
        afe = emu.afe()
        _, truth = afe.truth()
        afe.close()
    assert emu.resets == 1 and b.resets == 1  # it hit the stream, and the host noticed
    check_truthful(res, truth)


def test_a_brownout_mid_pulse_is_recovered_and_a_bare_pulse_is_not_repeated():
    with EmulatedBoard(seed=23) as emu, memctl.Board(emu.port, timeout=0.5, progress=False) as b:
        t = targets(4, 3)
        worker = emu.brownout(0.4, block=False)
        res = b.program(t, tolerance=TOL, max_pulses=200)
        worker.join()
        afe = emu.afe()
        _, truth = afe.truth()
        check_truthful(res, truth)
        assert emu.resets == 1 and b.resets == 1
        # A single PULSE cut by a brown-out is reported, not silently resent.
        n0, _ = afe.truth()
        worker = emu.brownout(0.5, block=False)
        with pytest.raises(BoardReset, match="PULSE"):
            b.pulse(10, 10, 1.2, 1e-4)
        worker.join()
        n1, _ = afe.truth()
        afe.close()
        assert n1 - n0 == 1  # applied once (cut short), never twice


def test_an_unplugged_cable_is_reconnected():
    with EmulatedBoard(seed=24) as emu, memctl.Board(emu.port, timeout=0.5, progress=False) as b:
        g0 = b.read_array()
        emu.unplug()
        timer = threading.Timer(0.8, emu.replug)
        timer.start()
        g1 = b.read_array()
        timer.join()
    assert b.link.stats["reconnects"] >= 1
    assert np.abs(g1 - g0).max() < 0.05 * TOL


def test_limits_persist_across_reset_and_a_fresh_board_is_locked():
    with EmulatedBoard(seed=25, limits=None) as emu, memctl.Board(emu.port, timeout=0.5, progress=False) as b:
        afe = emu.afe()
        assert not b.info().limits_set
        for call in (
            lambda: b.read(0, 0),
            lambda: b.pulse(0, 0, 1.0, 1e-4),
            lambda: b.vmm(np.zeros(32)),
            lambda: b.program(np.full((1, 1), 50e-6)),
            lambda: b.configure(v_read=0.1),
        ):
            with pytest.raises(SafetyLimitError, match="limits not set"):
                call()
        assert afe.truth()[0] == 0  # nothing reached the array
        b.set_limits(1.5, 5e-4, 0.25)
        b.configure(v_read=0.15, bias="V/3")
        emu.reset()
        b.read(0, 0)  # the first request after the reset re-synchronizes
        info = b.info()
        afe.close()
    assert b.resets == 1 and info.limits_set
    assert (info.limits.v_pulse, info.limits.width, info.limits.v_read) == pytest.approx((1.5, 5e-4, 0.25))
    assert info.v_read == pytest.approx(0.15, abs=1e-3) and info.bias_scheme == 3


def test_stuck_devices_and_a_saturated_adc_are_reported_never_hidden():
    with EmulatedBoard(seed=26) as emu, memctl.Board(emu.port, timeout=0.5, progress=False) as b:
        row = b.read_array()[3, :4]
        t = np.where(row < 55e-6, row + 30e-6, row - 30e-6)[None, :]  # every device has to move

        def hook(n: int, total: int) -> None:
            if n == 1:
                emu.stick(3, 3)  # the last device of the request sticks while the first is done

        with progress_hook(b, hook):
            res = b.program(t, origin=(3, 0), tolerance=TOL, max_pulses=200)
        assert res.ok[0, :3].all() and res.status_names()[0, 3] in ("stuck", "unreachable")
        emu.saturate_adc(5)
        with pytest.raises(FirmwareError, match="ADC saturated"):
            b.vmm(np.full(32, 0.1))
        res = b.program(np.full((2, 2), 50e-6), origin=(0, 4), tolerance=TOL)
        assert list(res.status_names()[:, 1]) == ["adc-saturated"] * 2  # column 5
        assert res.ok[:, 0].all()  # the others in the same request still programmed
        emu.saturate_adc(5, on=False)
        assert b.read(0, 5) > 0


# The share of the 256 KB heap the firmware may keep after a deployment. The 32-bit boards run it frozen (bytecode and
# names in flash); the unix board compiles it from source onto a heap of 64-bit objects (about 1.6x a 32-bit
# board's bytes), its boot-time buffers (staging 16 KB, the predictor's network 24 KB) included.
# (The rp2 board is left out: a 32x32 deployment there takes minutes; benchmarks/rp2_board.py's soak watches its heap.)
HEAP_BUDGET = {"emulated": 0.85, "chips": 0.85, "rv32": 0.4}


@pytest.mark.rv32
def test_the_firmware_reports_its_peak_heap_after_a_deployment(tmp_path, hal):
    """A full deployment (paper 003's 16-10-4) in the 256 KB heap, no MemoryError."""
    from memctl.deployment import Layer, deploy

    rng = np.random.default_rng(9)
    layers = [
        Layer(rng.normal(size=(10, 16)), rng.normal(size=10), "Tanh"),
        Layer(rng.normal(size=(4, 10)), rng.normal(size=4), None),
    ]
    with EmulatedBoard(seed=27) as emu, memctl.Board(emu.port, progress=False) as b:
        dep = deploy(layers, b, tolerance=1e-6, max_pulses=200)
        dep.run(b, rng.uniform(-1, 1, (40, 16)))
        info = b.info()
    # Resident after collection: buffers, the network, and the firmware's objects (on the unix board its bytecode
    # too: the chips HAL's chip drivers add ~19 KB of it), besides the block app.py holds in reserve for loading
    # code (released only when a load runs out of memory).
    reserve = int(re.search(r"_reserve = \[bytearray\((\d+)\)\]", (FIRMWARE / "app.py").read_text())[1])
    assert 0 < info.heap_peak - reserve < HEAP_BUDGET[hal] * info.heap_size and info.heap_size <= 256 * 1024
    assert not any("MemoryError" in line for line in emu.log)


def test_every_reset_changes_the_session_tag():
    """A random byte alone would repeat once in 128 resets and let a stale
    frame through; the firmware keeps the last tag in flash and never reuses it."""
    with EmulatedBoard(seed=30) as emu, memctl.Board(emu.port, timeout=0.5, progress=False) as b:
        tags = []
        for _ in range(6):
            tags.append(b.info().boot_id & 0xFF)
            emu.reset()
    assert all(t % 2 == 1 for t in tags) and all(x != y for x, y in zip(tags, tags[1:], strict=False))


def test_what_lived_in_board_ram_is_back_after_a_reset():
    """FFP table, predictor and network are put back by the resync that follows
    a reset in the middle of a workload (here its 25th pulse)."""
    from limits_probe import probe_network, probe_predictor

    with EmulatedBoard(rows=8, cols=8, seed=32) as emu, memctl.Board(emu.port, timeout=0.5, progress=False) as b:
        table = memctl.FFPTable(5e-6, 150e-6, np.linspace(0.6, 1.2, 12), np.linspace(0.7, 1.3, 12))
        b.set_ffp_table(table)
        n_params = b.load_predictor(probe_predictor())
        b.load_network(probe_network())
        x = np.array([[0.5, -0.25], [1.0, 0.75]])
        y0 = b.run_network(x)
        worker = emu.reset_at_pulse(25)
        res = b.program(targets(4, 5), tolerance=TOL, max_pulses=200, origin=(4, 4))  # away from the network
        worker.join()
        assert emu.resets == 1 and b.resets == 1 and res.ok.all()
        back = b.ffp_table()
        info = b.info()
        y1 = b.run_network(x)
    np.testing.assert_array_equal(back.v_set[:12], np.float32(table.v_set))
    np.testing.assert_array_equal(back.v_reset[:12], np.float32(table.v_reset))
    assert (back.g_lo, back.g_hi) == pytest.approx((5e-6, 150e-6))
    assert info.predictor_params == n_params > 0
    np.testing.assert_allclose(y1, y0, rtol=1e-3)


@pytest.mark.parametrize("call", ["pulse_train", "ffp_trace"])
def test_a_reset_in_a_pulse_sequence_raises_board_reset_and_is_not_repeated(call):
    """PULSE_TRAIN and FFP_TRACE are not safe to resend: a brown-out at their
    3rd pulse leaves exactly 3 pulses applied and a BoardReset naming them."""
    with EmulatedBoard(rows=4, cols=4, seed=33) as emu, memctl.Board(emu.port, timeout=0.5, progress=False) as b:
        b.set_ffp_table(memctl.FFPTable.empty(5e-6, 150e-6))
        afe = emu.afe()
        n0, _ = afe.truth()
        worker = emu.brownout(0.5, after=2, block=False)
        with pytest.raises(BoardReset, match=call.upper()):
            if call == "pulse_train":
                b.pulse_train(1, 1, 10, v_set=1.2, t_set=1e-4, v_read=0.2, t_read=0)
            else:
                b.ffp_trace(1, 1, +1, memctl.FFP(1e-7, 1e-6, 1.0, -1.0, 0.05, 1e-4), max_events=10)
        worker.join()
        n1, _ = afe.truth()
        afe.close()
        assert b.resets == 1 and n1 - n0 == 3


def test_a_cable_that_never_comes_back_is_a_port_error_and_a_replug_recovers():
    with EmulatedBoard(rows=4, cols=4, seed=34) as emu, memctl.Board(emu.port, timeout=0.3, progress=False) as b:
        b.link.reconnect_timeout = 0.5
        emu.unplug()
        with pytest.raises(memctl.PortError, match="did not come back within"):
            b.read(0, 0)
        emu.replug()
        assert b.read(0, 0) > 0


def test_a_dead_line_and_a_hopeless_line_run_out_of_retries():
    """Silence: `retries` timeouts in a row, then BoardTimeout. Every answer
    damaged: `noisy_retries` resends, then BoardTimeout; the pulse behind them
    was applied once (the board replays its reply, never the pulse)."""
    with EmulatedBoard(rows=4, cols=4, seed=35) as emu, memctl.Board(emu.port, timeout=0.2, retries=2) as b:
        afe = emu.afe()
        emu.set_link_filter(lambda way, data: b"" if way == "to_board" else data)
        with pytest.raises(memctl.BoardTimeout, match="3 silent timeouts"):
            b.read(0, 0)
        assert b.link.stats["retries"] == 2
        b.link.noisy_retries = 5
        emu.set_link_filter(lambda way, data: bytes(x if x < 2 else x ^ 1 for x in data) if way == "to_host" else data)
        n0, _ = afe.truth()
        with pytest.raises(memctl.BoardTimeout, match="6 damaged answers"):
            b.pulse(1, 1, 1.0, 1e-4)
        n1, _ = afe.truth()
        emu.set_link_filter(None)
        afe.close()
        assert n1 - n0 == 1 and b.read(1, 1) > 0


def test_a_request_the_heap_cannot_hold_gets_a_memory_error_and_the_board_goes_on():
    """A float32 predictor of the largest blob size decodes into about 4 000
    floats, more than the board's heap holds in one piece: the board answers
    with its memory error, keeps serving (and its model), and an int8 predictor
    of the largest size, whose buffers the board took at boot, still loads."""
    from limits_probe import largest_predictor

    with EmulatedBoard(rows=4, cols=4, seed=36) as emu, memctl.Board(emu.port, progress=False) as b:
        with pytest.raises(FirmwareError) as refused:
            b.load_predictor(largest_predictor(float32=True))
        assert refused.value.code == wire.E_MEMORY and "memory allocation failed" in refused.value.message
        assert b.info().predictor_params == 0 and b.read(0, 0) > 0 and emu.alive()
        assert b.load_predictor(largest_predictor()) > 13_000
