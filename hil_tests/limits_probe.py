"""Requests at and around the safety limits, sent past the SDK's own checks,
with the front end's record of what reached the array as the truth.

Shared by the boundary tests (test_safety_limits.py) and the property test
(test_safety_property.py).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import numpy as np

import memctl
from memctl import protocol
from memctl_emulator import EmulatedBoard, rp2
from memctl_emulator.afe_client import FrontEndStats
from memctl_shared import network_blob, predictor_blob, wire

TICK = 1e-9  # the pulse timer's step (memctl_firmware/hal/frontend.py)
GATE_STEP = {"rp2": rp2.GATE_STEP}  # boards whose gate counts coarser cycles (the rp2 board's PIO)
ROW, COL = 1, 2  # the device the single-device requests address


def f32(x: float) -> float:
    """x as the wire carries it."""
    return float(np.float32(x))


@dataclass(frozen=True)
class Limits:
    """Limits chosen to sit between DAC codes, nearer the upper one, so that
    rounding to the nearest code alone would pass them."""

    lsb: float  # DAC step, V
    v_pulse: float
    width: float
    v_read: float
    gate: float = 0.0  # the pulse gate's step, s (0: whole ticks, as asked); a window is at most one step shorter

    @classmethod
    def between_codes(cls, lsb: float, gate: float = 0.0) -> Limits:
        return cls(lsb, f32(19660.7 * lsb), f32(200e-6), f32(3276.6 * lsb), gate)  # ~1.5 V, 200 us, ~0.25 V

    @property
    def width_ticks(self) -> int:
        """The longest pulse the limit allows: its nearest whole tick."""
        return int(self.width / TICK + 0.5)

    def pulse_ok(self, v: float, w: float) -> bool:
        return abs(f32(v)) <= self.v_pulse and 0 < f32(w) <= self.width

    def read_ok(self, v: float) -> bool:
        return abs(f32(v)) <= self.v_read


# -- request payloads (raw: no SDK checks) ------------------------------------
def pulse(v: float, w: float, row: int = ROW, col: int = COL) -> tuple[int, bytes]:
    return wire.T_PULSE, protocol.encode_pulse(row, col, v, w)


def train(
    v_set: float, t_set: float, v_anti: float = 0.0, t_anti: float = 0.0, v_r: float = 0.1, n: int = 2
) -> tuple[int, bytes]:
    fields = (ROW, COL, n, v_set, t_set, v_anti, t_anti, 0.0, v_r, 0.0)
    return wire.T_PULSE_TRAIN, protocol.encode_pulse_train(*fields)


def program(
    algorithm: int, params: tuple, target: float, max_pulses: int = 4, cols: tuple = (COL,)
) -> tuple[int, bytes]:
    """PROGRAM of devices (ROW, col) for each of cols (row-parallel with wire.A_ROWS in algorithm)."""
    p = (list(params) + [0.0] * 8)[:8]
    items = [(ROW, c, target) for c in cols]
    return wire.T_PROGRAM, protocol.encode_program(1e-7, max_pulses, algorithm, 8, p, items)


def ffp_trace(params: tuple, direction: int = 1, n: int = 3) -> tuple[int, bytes]:
    p = (list(params) + [0.0] * 8)[:8]
    return wire.T_FFP_TRACE, protocol.encode_ffp_trace(ROW, COL, direction, n, p)


def vmm(rows: int, row: int, v: float) -> tuple[int, bytes]:
    volts = np.zeros(rows, "<f4")
    volts[row] = v
    return wire.T_VMM, protocol.encode_vmm(volts)


def config(v_read: float) -> tuple[int, bytes]:
    return wire.T_CONFIG, protocol.encode_config(v_read, 2, 0)


def read() -> tuple[int, bytes]:
    return wire.T_READ, protocol.encode_read(ROW, COL)


NET_V_IN = 0.1  # read volts per unit input of the probe network


def run_network(*x: float) -> tuple[int, bytes]:
    return wire.T_RUN_NETWORK, protocol.encode_run_network(np.asarray(x, float).reshape(1, -1), 0)


# Far targets: write-verify keeps pulsing one way (at most max_pulses).
UP, DOWN = 0.5, 1e-9  # S

# -- what the board holds for the probes ---------------------------------------
FFP_VOLTS = 5.0  # every V_w table entry: beyond any limit here, so FFP must clamp


def probe_predictor() -> bytes:
    """A linear model whose predicted increment grows with V and t: guided
    programming toward a far target always picks its strongest candidate."""
    w = [[0.0, 1000.0, 1.0, 0.0, 0.0, 0.0, 0.0]]
    return predictor_blob.encode([(w, [0.0], predictor_blob.ACT_NONE)], [0.0] * 7, [1.0] * 7, 0.0, 1e-7)


def largest_predictor(float32: bool = False) -> bytes:
    """An inverse predictor near the largest blob the board accepts (predictor_blob.MAX_BLOB), random weights:
    int8 4-128-96-2 (15 KB) or float32 4-64-56-2 (16 KB)."""
    rng = np.random.default_rng(5)
    shapes = [(4, 64), (64, 56), (56, 2)] if float32 else [(4, 128), (128, 96), (96, 2)]
    layers = list(zip(shapes, [predictor_blob.ACT_RELU, predictor_blob.ACT_RELU, predictor_blob.ACT_NONE], strict=True))
    norm = ([0.5, 0.0, -4.0, 0.0], [0.3, 0.1, 1.0, 1.0], 0.0, 1e-4)
    if float32:
        f = [(rng.normal(size=(o, i)).tolist(), rng.normal(size=o).tolist(), a) for (i, o), a in layers]
        blob = predictor_blob.encode(f, *norm, predictor_blob.FEATURES_INVERSE)
    else:
        q = []
        for (i, o), a in layers:
            w = rng.integers(-127, 128, (o, i)).tolist()
            q.append((w, [0] * o, [1 << 30] * o, [-8] * o, a, 0.05, -20 if a == predictor_blob.ACT_RELU else 0))
        blob = predictor_blob.encode_int8(q, *norm, 0.03, 0, predictor_blob.FEATURES_INVERSE)
    assert predictor_blob.MAX_BLOB - 1500 < len(blob) <= predictor_blob.MAX_BLOB
    return blob


def probe_network() -> bytes:
    """Two inputs and a bias on rows 0-2, one output on columns 0/1."""
    layer = (2, 1, network_blob.ACT_NONE, NET_V_IN, [1.0], [0.0])
    return network_blob.encode([layer], [(0, 0, 3, 0, 1, 1.0, [0, 1, 2], [0, 1])])


@dataclass
class Outcome:
    reply: bytes | None
    error: memctl.FirmwareError | None
    seen: FrontEndStats  # counts are this request's, peaks its own

    @property
    def refused(self) -> bool:
        return self.error is not None


class Probe:
    """A board with limits between DAC codes, an FFP table beyond them, a
    predictor and a network loaded; send() reports what reached the array."""

    def __init__(self, hal: str, seed: int = 5, cell: str = "0T1R"):
        self.emu = EmulatedBoard(rows=4, cols=4, seed=seed, hal=hal, cell=cell).start()
        try:
            self.board = memctl.Board(self.emu.port, progress=False)
            self.afe = self.emu.afe()
            self.limits = Limits.between_codes(self.board.info().dac_lsb, GATE_STEP.get(hal, 0.0))
            lim = self.limits
            self.board.set_limits(lim.v_pulse, lim.width, lim.v_read)
            self.board.configure(v_read=0.1)
            self.board.set_ffp_table(memctl.FFPTable(1e-6, 200e-6, np.full(8, FFP_VOLTS), np.full(8, FFP_VOLTS)))
            self.board.load_predictor(probe_predictor())
            self.board.load_network(probe_network())
        except BaseException:
            self.emu.stop()
            raise

    def close(self) -> None:
        self.afe.close()
        self.board.close()
        self.emu.stop()

    def send(self, *requests: tuple[int, bytes]) -> Outcome:
        """Send requests in order, stopping at the first refused one."""
        before = self.afe.stats(clear=True)
        reply, error = None, None
        for mtype, payload in requests:
            try:
                reply = self.board.link.request(mtype, payload)
            except memctl.FirmwareError as e:
                reply, error = None, e
                break
        after = self.afe.stats()
        counts = [a - b for a, b in zip(astuple(after)[:4], astuple(before)[:4], strict=True)]
        return Outcome(reply, error, FrontEndStats(*counts, *astuple(after)[4:]))

    def assert_within(self, o: Outcome) -> None:
        """Nothing beyond a limit reached the array: the property every request keeps."""
        lim = self.limits
        assert o.seen.peak_pulse_v <= lim.v_pulse + 1e-9, (o.seen.peak_pulse_v, lim.v_pulse)
        assert o.seen.peak_width <= lim.width_ticks * TICK + 1e-15, (o.seen.peak_width, lim.width_ticks)
        assert o.seen.peak_read_v <= lim.v_read + 1e-9, (o.seen.peak_read_v, lim.v_read)
