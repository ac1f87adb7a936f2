"""The host's side of each message: one pure encode / decode function per
message, built on the declarations in memctl_shared.wire (the one place a
layout is written). No I/O: `Link` carries the bytes, `Board` calls these.

Decoders check sizes against the declaration and raise ProtocolError naming
the message; multi-field replies decode into named records.
"""

from __future__ import annotations

import struct
from enum import IntEnum, StrEnum
from typing import NamedTuple

import numpy as np

from memctl.errors import ProtocolError
from memctl_shared import wire


class BiasScheme(IntEnum):
    """How a pulse biases the lines of the devices it does not select."""

    V2 = wire.SCHEME_V2  # half-selected devices see V/2, the rest 0
    V3 = wire.SCHEME_V3  # half-selected see V/3, the rest -V/3

    @classmethod
    def parse(cls, value: str | int) -> BiasScheme:
        names = {"V/2": cls.V2, "V/3": cls.V3}
        if isinstance(value, str):
            if value not in names:
                raise ValueError(f"bias must be one of {', '.join(names)}, got {value!r}")
            return names[value]
        return cls(value)

    def __str__(self) -> str:
        return f"V/{int(self)}"


class ReadMode(IntEnum):
    """What the unselected lines do during a single-device read."""

    GROUNDED = wire.READ_GROUNDED  # held at 0 V: no sneak paths
    FLOATING = wire.READ_FLOATING  # left floating: sneak paths add to the read

    @classmethod
    def parse(cls, value: str | int) -> ReadMode:
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                raise ValueError(f"read_mode must be one of grounded, floating, got {value!r}") from None
        return cls(value)

    def __str__(self) -> str:
        return self.name.lower()


class Cell(StrEnum):
    """The array's cell: passive, or one access transistor per device."""

    PASSIVE = "0T1R"
    ONE_T1R = "1T1R"


def _f32(values: object) -> bytes:
    return np.asarray(values, dtype=np.float64).astype("<f4").tobytes()


def _floats(msg: wire.Message, p: bytes, offset: int, count: int) -> np.ndarray:
    """count little-endian f32 at offset, checking the reply holds exactly that."""
    want = offset + 4 * count
    if len(p) != want:
        raise ProtocolError(f"{msg.name} reply has {len(p)} bytes, expected {want}")
    return np.frombuffer(p, "<f4", count=count, offset=offset).astype(np.float64)


def _head(msg: wire.Message, p: bytes) -> tuple:
    if len(p) < msg.resp_size:
        raise ProtocolError(f"{msg.name} reply has {len(p)} bytes, shorter than its {msg.resp_size}-byte header")
    return struct.unpack_from(msg.resp, p, 0)


# -- INFO -------------------------------------------------------------------
class Info(NamedTuple):
    protocol: int
    rows: int
    cols: int
    max_payload: int
    heap_size: int
    heap_free: int
    v_pulse: float
    width: float
    v_read_limit: float
    v_read: float
    dac_full_scale: float
    dac_lsb: float
    i_lsb: float
    i_full_scale: float
    current_ranges: int
    bias_scheme: int
    read_mode: int
    cell: int
    firmware: str
    hal: str
    heap_peak: int
    predictor_params: int
    boot_id: int
    limits_set: int
    image: str
    arch: str
    predictor_features: int
    v_disturb: float


def decode_info(p: bytes) -> Info:
    """Fields of older firmware that stop early (image, arch, model) default to empty / 0."""
    head = _head(wire.INFO, p)
    off = wire.INFO.resp_size
    fw, off = wire.unpack_str(p, off)
    hal, off = wire.unpack_str(p, off)
    tail = struct.unpack_from(wire.INFO_TAIL, p, off)
    off += struct.calcsize(wire.INFO_TAIL)
    image, off = wire.unpack_str(p, off) if off < len(p) else ("", off)
    arch, off = wire.unpack_str(p, off) if off < len(p) else ("", off)
    (features,) = struct.unpack_from(wire.INFO_MODEL, p, off) if off < len(p) else (0,)
    off += struct.calcsize(wire.INFO_MODEL)
    (v_disturb,) = struct.unpack_from(wire.INFO_DISTURB, p, off) if off < len(p) else (0.0,)
    return Info(*head, fw, hal, *tail, image, arch, features, v_disturb)


# -- reads, pulses, VMM --------------------------------------------------------
class Reading(NamedTuple):
    current: float  # A
    conductance: float  # S


def encode_read(row: int, col: int) -> bytes:
    return struct.pack(wire.READ.req, row, col)


def decode_read(p: bytes) -> Reading:
    if len(p) != wire.READ.resp_size:
        raise ProtocolError(f"READ reply has {len(p)} bytes, expected {wire.READ.resp_size}")
    return Reading(*struct.unpack(wire.READ.resp, p))


def encode_read_rows(first: int, count: int) -> bytes:
    return struct.pack(wire.READ_ROWS.req, first, count)


def decode_read_rows(p: bytes, count: int, cols: int) -> np.ndarray:
    return _floats(wire.READ_ROWS, p, 0, count * cols).reshape(count, cols)


def encode_pulse(row: int, col: int, voltage: float, width: float) -> bytes:
    return struct.pack(wire.PULSE.req, row, col, voltage, width)


def decode_pulse(p: bytes) -> float:
    """The DAC-quantized voltage applied."""
    return _head(wire.PULSE, p)[0]


def encode_vmm(volts: np.ndarray) -> bytes:
    return struct.pack(wire.VMM.req, len(volts)) + _f32(volts)


def decode_vmm(p: bytes, cols: int) -> tuple[float, np.ndarray]:
    """(ADC resolution of the range used, A; column currents, A)."""
    (lsb,) = _head(wire.VMM, p)
    return lsb, _floats(wire.VMM, p, wire.VMM.resp_size, cols)


# -- settings --------------------------------------------------------------------
def encode_limits(v_pulse: float, width: float, v_read: float, v_disturb: float = 0.0) -> bytes:
    return struct.pack(wire.SET_LIMITS.req, v_pulse, width, v_read, v_disturb)


def decode_limits(p: bytes) -> tuple[float, float, float, float]:
    return struct.unpack(wire.SET_LIMITS.resp, p)


def encode_config(v_read: float, bias_scheme: int, read_mode: int) -> bytes:
    return struct.pack(wire.CONFIG.req, v_read, bias_scheme, read_mode)


def decode_config(p: bytes) -> tuple[float, int, int]:
    return struct.unpack(wire.CONFIG.resp, p)


# -- programming -----------------------------------------------------------------
class DeviceResult(NamedTuple):
    g: float  # final conductance, S
    pulses: int
    status: int
    time: float  # board time on this device, s
    energy: float  # J


def program_fit(budget: int) -> int:
    """Devices one PROGRAM frame carries within a payload budget (both ways)."""
    m = wire.PROGRAM
    return min((budget - m.req_size) // m.req_item_size, (budget - m.resp_size) // m.resp_item_size)


def encode_program(
    tolerance: float, max_pulses: int, algorithm: int, patience: int, params: list[float], items: list[tuple]
) -> bytes:
    """items: (row, col, target S) per device."""
    m = wire.PROGRAM
    head = struct.pack(m.req, tolerance, max_pulses, len(items), algorithm, patience, *params)
    return head + b"".join(struct.pack(m.req_item, *it) for it in items)


def decode_program(p: bytes, n: int) -> tuple[float, list[DeviceResult]]:
    """(board time of the chunk, s; one result per device, in order)."""
    m = wire.PROGRAM
    board_time, got = _head(m, p)
    if got != n or len(p) != m.resp_size + n * m.resp_item_size:
        raise ProtocolError(f"PROGRAM reply for {got} devices ({len(p)} bytes) does not match the {n} sent")
    return board_time, [DeviceResult(*r) for r in struct.iter_unpack(m.resp_item, p[m.resp_size :])]


def encode_pulse_train(row: int, col: int, n: int, *values: float) -> bytes:
    """values: v_set, t_set, v_anti, t_anti, t_off, v_r, t_r."""
    return struct.pack(wire.PULSE_TRAIN.req, row, col, n, *values)


def decode_pulse_train(p: bytes, n: int) -> np.ndarray:
    return _floats(wire.PULSE_TRAIN, p, 0, n)


def encode_ffp_table(g_lo: float, g_hi: float, v_set: np.ndarray, v_reset: np.ndarray) -> bytes:
    return struct.pack(wire.FFP_TABLE.req, g_lo, g_hi, len(v_set)) + _f32(np.concatenate([v_set, v_reset]))


def decode_ffp_table(p: bytes) -> tuple[float, float, np.ndarray, np.ndarray]:
    g_lo, g_hi, bins = _head(wire.FFP_TABLE, p)
    v = _floats(wire.FFP_TABLE, p, wire.FFP_TABLE.resp_size, 2 * bins)
    return g_lo, g_hi, v[:bins].copy(), v[bins:].copy()


def encode_ffp_trace(row: int, col: int, direction: int, max_events: int, params: list[float]) -> bytes:
    return struct.pack(wire.FFP_TRACE.req, row, col, direction, max_events, *params)


def decode_ffp_trace(p: bytes) -> tuple[bool, np.ndarray]:
    """(ended, events x (G before, V applied))."""
    events, ended = _head(wire.FFP_TRACE, p)
    pairs = _floats(wire.FFP_TRACE, p, wire.FFP_TRACE.resp_size, 2 * events)
    return bool(ended), pairs.reshape(events, 2)


# -- blobs, networks, updates --------------------------------------------------------
def encode_blob_chunk(msg: wire.Message, offset: int, total: int, chunk: bytes) -> bytes:
    """LOAD_PREDICTOR / LOAD_NETWORK: one chunk of a blob."""
    return struct.pack(msg.req, offset, total) + bytes(chunk)


def blob_chunk_room(msg: wire.Message, budget: int) -> int:
    return budget - msg.req_size


def decode_blob_chunk(msg: wire.Message, p: bytes) -> tuple[int, int, int]:
    """(bytes received, total, what is loaded: predictor parameters or network layers; 0 none)."""
    if len(p) != msg.resp_size:
        raise ProtocolError(f"{msg.name} reply has {len(p)} bytes, expected {msg.resp_size}")
    return struct.unpack(msg.resp, p)


def run_network_fit(budget: int, n_in: int, n_out: int) -> int:
    m = wire.RUN_NETWORK
    return max(1, min((budget - m.req_size) // (m.req_item_size * n_in), (budget - m.resp_size) // (4 * n_out)))


def encode_run_network(x: np.ndarray, flags: int) -> bytes:
    return struct.pack(wire.RUN_NETWORK.req, len(x), flags) + _f32(x)


def decode_run_network(p: bytes, samples: int, outputs: int) -> np.ndarray:
    n, m = _head(wire.RUN_NETWORK, p)
    if n != samples or m != outputs:
        raise ProtocolError(f"RUN_NETWORK reply for {n} x {m} outputs does not match the {samples} x {outputs} sent")
    return _floats(wire.RUN_NETWORK, p, wire.RUN_NETWORK.resp_size, n * m).reshape(n, m)


def encode_update(step: int, value: int, data: bytes = b"") -> bytes:
    return struct.pack(wire.UPDATE.req, step, value) + bytes(data)


def update_room(budget: int) -> int:
    return budget - wire.UPDATE.req_size


def decode_update(p: bytes) -> tuple[int, int, bytes]:
    """(step, value, what follows: COMMIT's image hash string)."""
    step, value = _head(wire.UPDATE, p)
    return step, value, bytes(p[wire.UPDATE.resp_size :])


class TileRecord(NamedTuple):
    """A deployment fingerprint the board holds: rows r0..r1 and columns c0..c1 (inclusive)."""

    r0: int
    c0: int
    r1: int
    c1: int
    fingerprint: int
    valid: bool  # False: a device inside was pulsed since the fingerprint was set


def encode_tiles(op: int, tiles: list[tuple[int, int, int, int, int]] = ()) -> bytes:
    m = wire.TILES
    return struct.pack(m.req, op) + b"".join(struct.pack(m.req_item, *t) for t in tiles)


def decode_tiles(p: bytes) -> list[TileRecord]:
    m = wire.TILES
    (n,) = _head(m, p)
    if len(p) != m.resp_size + n * m.resp_item_size:
        raise ProtocolError(f"TILES reply of {len(p)} bytes does not hold {n} tiles")
    items = struct.iter_unpack(m.resp_item, p[m.resp_size :])
    return [TileRecord(*t[:5], bool(t[5])) for t in items]


# -- frames the board sends on its own -------------------------------------------------
def encode_replay(seq: int, crc: int, offset: int, count: int) -> bytes:
    """Ask for `count` bytes from `offset` of the board's cached reply to request (seq, crc)."""
    return struct.pack(wire.REPLAY.req, seq, crc, offset, count)


def decode_replay(p: bytes) -> tuple[int, int, bytes]:
    """(encoded length of the cached reply, 0: none for that request; offset; its bytes from there)."""
    total, offset = _head(wire.REPLAY, p)
    data = bytes(p[wire.REPLAY.resp_size :])
    if len(data) > wire.REPLAY_MAX or offset + len(data) > total:
        raise ProtocolError(f"REPLAY reply has {len(data)} bytes at {offset} of a {total}-byte reply")
    return total, offset, data


def decode_progress(p: bytes) -> tuple[int, int]:
    return _head(wire.PROGRESS, p)


def decode_error(p: bytes) -> tuple[int, str]:
    """(code, message)."""
    (code,) = _head(wire.ERROR, p)
    return code, bytes(p[wire.ERROR.resp_size :]).decode("utf-8", "replace")
