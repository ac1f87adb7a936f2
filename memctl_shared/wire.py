# memctl wire format: the one codec shared by the firmware (MicroPython) and the
# host SDK (CPython). Keep it to the subset both interpreters run: struct,
# binascii.crc32, bytearray/memoryview, no f-strings with format specs, no
# typing, no dataclasses. Buffers are caller-owned so the firmware can
# preallocate them once and never allocate per byte.
#
# Frame on the line:  COBS( header | payload | crc32 ) 0x00
#   header  = <BBHH  type, session tag, seq, payload length   (6 bytes)
#             (tag 0: no check; else the low byte of the board's boot id the
#             sender last saw; a board that has reset since refuses the frame)
#   crc32   = <I     binascii.crc32 over header+payload  (4 bytes)
# See docs/protocol.md for every message and golden byte examples.
import struct
import sys
from binascii import crc32

try:
    from collections import namedtuple
except ImportError:  # older MicroPython ports
    from ucollections import namedtuple

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


PROTOCOL_VERSION = const(1)

HDR_FMT = "<BBHH"
HDR_SIZE = const(6)
CRC_SIZE = const(4)
# Largest payload either side sends. Sized to the board RAM budget: the
# firmware keeps one rx and one tx frame buffer of this size plus overhead.
MAX_PAYLOAD = const(1024)
MAX_RAW = const(1034)  # HDR_SIZE + MAX_PAYLOAD + CRC_SIZE
# COBS adds one byte per 254 bytes plus one; the delimiter is one more.
MAX_ENCODED = const(1040)

# Message types. A response carries the request type with RESP set.
T_INFO = const(0x01)
T_READ = const(0x02)
T_READ_ROWS = const(0x03)
T_PULSE = const(0x04)
T_PROGRAM = const(0x05)
T_VMM = const(0x06)
T_SET_LIMITS = const(0x07)
T_CONFIG = const(0x08)
T_PULSE_TRAIN = const(0x09)
T_FFP_TABLE = const(0x0A)
T_FFP_TRACE = const(0x0B)
T_LOAD_PREDICTOR = const(0x0C)
T_LOAD_NETWORK = const(0x0D)
T_RUN_NETWORK = const(0x0E)
T_TILES = const(0x10)  # deployment fingerprints the board keeps per tile (memctl_firmware/tiles.py)
T_UPDATE = const(0x0F)  # firmware update (memctl_firmware/update.py): one step per request, UPDATE_REQ's first byte
T_REPLAY = const(0x11)  # a piece of the cached reply to the last request (the host got it damaged)
T_PROGRESS = const(0x7E)  # unsolicited keep-alive during long work
T_ERROR = const(0x7F)
RESP = const(0x80)

# Error codes carried by T_ERROR | RESP.
E_CRC = const(1)
E_FRAME = const(2)
E_TOO_LONG = const(3)
E_UNKNOWN = const(4)
E_PAYLOAD = const(5)
E_LIMIT = const(6)
E_ADDRESS = const(7)
E_HAL = const(8)
E_MEMORY = const(9)
E_INTERNAL = const(10)
E_SESSION = const(11)

ERROR_NAMES = {
    E_CRC: "crc",
    E_FRAME: "frame",
    E_TOO_LONG: "too-long",
    E_UNKNOWN: "unknown-type",
    E_PAYLOAD: "bad-payload",
    E_LIMIT: "safety-limit",
    E_ADDRESS: "address",
    E_HAL: "hal",
    E_MEMORY: "memory",
    E_INTERNAL: "internal",
    E_SESSION: "session",
}

# Program status per device (the stop reason).
S_OK = const(0)
S_MAX_PULSES = const(1)
S_LIMIT = const(2)
S_STUCK = const(3)
S_UNREACHABLE = const(4)
S_SATURATED = const(5)

STATUS_NAMES = {
    S_OK: "ok",
    S_MAX_PULSES: "max-pulses",
    S_LIMIT: "at-safety-limit",
    S_STUCK: "stuck",
    S_UNREACHABLE: "unreachable",
    S_SATURATED: "adc-saturated",
}

# Array modes (CONFIG's and INFO's bytes).
SCHEME_V2 = const(2)  # pulse biasing: half-selected devices see V/2
SCHEME_V3 = const(3)  # half-selected see V/3, the rest -V/3
READ_GROUNDED = const(0)  # unselected lines held at 0 V: no sneak paths
READ_FLOATING = const(1)  # unselected lines floating: sneak paths add to the read
CELL_0T1R = const(0)  # passive array
CELL_1T1R = const(1)  # a row access transistor per device

# Programming algorithms (PROGRAM's algorithm byte).
A_ISPP = const(0)
A_ADAPTIVE = const(1)
A_FFP = const(2)
A_PREDICT = const(3)
A_STATIC = const(0x80)  # flag: no online adaptation (predictor-guided)
A_ROWS = const(0x40)  # flag: row-parallel write-verify (1T1R; passive with a disturb limit; else serial)

# PROGRAM's (and FFP_TRACE's) 8 algorithm parameters by name, per algorithm: the
# host's algorithm dataclasses have these fields, the firmware reads them by these
# names (algorithms.named); unused slots are 0. Predictor-guided programming's last
# two depend on the loaded model: forward (paper 004) or inverse.
PARAMS = {
    A_ISPP: ("v_set_start", "v_set_step", "v_reset_start", "v_reset_step", "width"),
    A_ADAPTIVE: ("v_set_start", "v_reset_start", "v_step", "width", "width_max", "gain_lo", "gain_hi"),
    A_FFP: ("window_lo", "window_hi", "v_set_start", "v_reset_start", "v_step", "width", "learn"),
    A_PREDICT: ("v_set_lo", "v_set_hi", "v_reset_lo", "v_reset_hi", "t_lo", "t_hi", "amplitudes", "widths"),
}
PARAMS_INVERSE = PARAMS[A_PREDICT][:6] + ("overshoot",)
N_PARAMS = const(8)


# One message, declared once: the fixed part of its request and of its response
# (struct formats; sizes from calcsize) and the item repeated after each fixed part
# ("" none); what else follows is said beside the declaration. The firmware's
# handlers and the host's protocol module use these; docs/protocol.md's table is
# checked against them. A named tuple: attribute access, the heap of a tuple.
Message = namedtuple(
    "Message",
    (
        "mtype",
        "name",
        "req",
        "resp",
        "req_item",
        "resp_item",
        "req_size",
        "resp_size",
        "req_item_size",
        "resp_item_size",
    ),
)


def message(mtype, name, req, resp, req_item="", resp_item=""):
    size = struct.calcsize
    return Message(
        mtype,
        name,
        req,
        resp,
        req_item,
        resp_item,
        size(req),
        size(resp),
        size(req_item) if req_item else 0,
        size(resp_item) if resp_item else 0,
    )


# Payload layouts (little-endian, no padding). "<" alone: nothing fixed.
# response: the fields below, firmware version str, HAL name str, INFO_TAIL, image hash str, .mpy arch str,
# INFO_MODEL (docs/protocol.md names each field)
INFO = message(T_INFO, "INFO", "<", "<HHHHIIffffffffBBBB")
INFO_TAIL = "<IHIB"  # peak heap bytes, predictor parameters, boot id, limits set (0: the array is locked)
INFO_MODEL = "<B"  # the loaded predictor's feature set (0: none)
INFO_DISTURB = "<f"  # the disturb limit in force, V (0: none)
# The image hash is 16 hex digits of the firmware image's manifest hash, or "source"; the arch
# is MPY_ARCHES[(sys.implementation._mpy >> 10) & 15], mpy-cross's -march name.
MPY_ARCHES = (
    "none",
    "x86",
    "x64",
    "armv6",
    "armv6m",
    "armv7m",
    "armv7em",
    "armv7emsp",
    "armv7emdp",
    "xtensa",
    "xtensawin",
    "rv32imc",
)
READ = message(T_READ, "READ", "<HH", "<ff")  # row, col -> current A, conductance S
READ_ROWS = message(T_READ_ROWS, "READ_ROWS", "<HH", "<", resp_item="<f")  # first row, count -> count*cols S
PULSE = message(T_PULSE, "PULSE", "<HHff", "<f")  # row, col, volts, width s -> DAC-quantized volts applied
# tol S, max pulses, n, algorithm, patience, 8 algorithm parameters; n x (row, col, target S)
# -> chunk board time s, n; n x (final S, pulses, status, board time s, energy J)
PROGRAM = message(T_PROGRAM, "PROGRAM", "<fHHBBffffffff", "<fH", req_item="<HHf", resp_item="<fHBff")
# n inputs, n x volts -> ADC resolution of the range used (A), cols x A
VMM = message(T_VMM, "VMM", "<H", "<f", req_item="<f", resp_item="<f")
# max |pulse V|, max width s, max |read V|, disturb limit V (max |V| on a device not being programmed; 0: none,
# so passive arrays program one device at a time) -> the same, as now in force
SET_LIMITS = message(T_SET_LIMITS, "SET_LIMITS", "<ffff", "<ffff")
# read volts, bias scheme (2 = V/2, 3 = V/3), read mode (0 grounded, 1 floating) -> the same, volts DAC-quantized
CONFIG = message(T_CONFIG, "CONFIG", "<fBB", "<fBB")
# row, col, n, v_set, t_set, v_anti, t_anti, t_off, v_r, t_r -> n x read current A
PULSE_TRAIN = message(T_PULSE_TRAIN, "PULSE_TRAIN", "<HHHfffffff", "<", resp_item="<f")
# G of the first bin's low edge, of the last bin's high edge (S), bins; then bins x set volts and bins x
# reset volts (magnitudes; 0 = not learned). An empty request reads the table; the response is the table.
FFP_TABLE = message(T_FFP_TABLE, "FFP_TABLE", "<ffB", "<ffB", req_item="<f", resp_item="<f")
FFP_MAX_BINS = const(64)
# row, col, direction (+1 set / -1 reset), max events, 8 FFP parameters -> events, ended (1: no more
# progress at full drive); events x (G before, V applied)
FFP_TRACE = message(T_FFP_TRACE, "FFP_TRACE", "<HHbH8f", "<HB", resp_item="<ff")
FFP_TRACE_MAX = const(120)
# offset, total size, then the chunk's bytes -> bytes received, total, parameters of the loaded model (0: none)
LOAD_PREDICTOR = message(T_LOAD_PREDICTOR, "LOAD_PREDICTOR", "<HH", "<HHH")
# the same for network_blob.py -> ..., layers of the loaded network (0: none)
LOAD_NETWORK = message(T_LOAD_NETWORK, "LOAD_NETWORK", "<HH", "<HHB")
# samples, flags (bit 0: apply gain/offset); samples x inputs -> samples, outputs; samples x outputs
RUN_NETWORK = message(T_RUN_NETWORK, "RUN_NETWORK", "<HB", "<HH", req_item="<f", resp_item="<f")
RUN_CALIBRATED = const(1)
# step, value: BEGIN -, FILE size (then the name), DATA offset (then bytes), COMMIT -
# -> step, value: BEGIN slot index, FILE 0, DATA bytes written, COMMIT 0 (then the image hash str)
UPDATE = message(T_UPDATE, "UPDATE", "<BI", "<BI")
U_BEGIN = const(0)
U_FILE = const(1)
U_DATA = const(2)
U_COMMIT = const(3)  # on success the board reboots into the new image once the reply is out
# op (TILES_LIST / TILES_SET / TILES_CLEAR), then for SET one item per tile: first row, first column, last row,
# last column (inclusive), fingerprint (nonzero) -> the tiles now held, each with valid (0: a device inside was
# pulsed since the fingerprint was set)
TILES = message(T_TILES, "TILES", "<B", "<B", req_item="<HHHHI", resp_item="<HHHHIB")
TILES_LIST = const(0)
TILES_SET = const(1)
TILES_CLEAR = const(2)
TILES_MAX = const(32)
# seq and CRC-32 of the request whose reply is wanted, offset, byte count -> length of that reply as the board
# sent it (COBS-encoded, with its delimiter; 0: the board holds no reply to that request), offset; then up to
# REPLAY_MAX of its bytes from offset. Answered from the idempotency cache, which it leaves as it is.
REPLAY = message(T_REPLAY, "REPLAY", "<HIHH", "<HH")
REPLAY_MAX = const(256)
PROGRESS = message(T_PROGRESS, "PROGRESS", "<", "<HH")  # unsolicited during long work: done, total
ERROR = message(T_ERROR, "ERROR", "<", "<B")  # code, then the UTF-8 message

MESSAGES = (
    INFO,
    READ,
    READ_ROWS,
    PULSE,
    PROGRAM,
    VMM,
    SET_LIMITS,
    CONFIG,
    PULSE_TRAIN,
    FFP_TABLE,
    FFP_TRACE,
    LOAD_PREDICTOR,
    LOAD_NETWORK,
    RUN_NETWORK,
    UPDATE,
    TILES,
    REPLAY,
    PROGRESS,
    ERROR,
)


def message_name(mtype):
    """A message type by name (INFO), or its number where none is declared."""
    for m in MESSAGES:
        if m.mtype == mtype:
            return m.name
    return "message 0x%02x" % mtype


def _cobs_encode_py(src, n, dst):
    """COBS-encode src[:n] into dst and append the 0x00 delimiter.

    Returns the number of bytes written. dst must hold n + n // 254 + 2 bytes.
    """
    code_at = 0
    out = 1
    code = 1
    for i in range(n):
        b = src[i]
        if b == 0:
            dst[code_at] = code
            code_at = out
            out += 1
            code = 1
        else:
            dst[out] = b
            out += 1
            code += 1
            if code == 0xFF:
                dst[code_at] = code
                code_at = out
                out += 1
                code = 1
    dst[code_at] = code
    dst[out] = 0
    return out + 1


def _cobs_decode_py(buf, n):
    """Decode COBS buf[:n] in place (no delimiter). Returns length or -1."""
    i = 0
    out = 0
    while i < n:
        code = buf[i]
        if code == 0:
            return -1
        i += 1
        end = i + code - 1
        if end > n:
            return -1
        while i < end:
            b = buf[i]
            if b == 0:
                return -1
            buf[out] = b
            out += 1
            i += 1
        if code != 0xFF and i < n:
            buf[out] = 0
            out += 1
    return out


def _frame_scan_py(data, start, end, buf, n, cap):
    """FrameDecoder.feed's loop: copy data[start:end] into buf from index n (bytes
    beyond index cap are dropped) up to and including the first 0 delimiter.

    Returns the index after the last byte consumed, negated if that byte was the
    delimiter; the caller counts the bytes seen from it.
    """
    i = start
    while i < end:
        b = data[i]
        i += 1
        if b == 0:
            return -i
        if n < cap:
            buf[n] = b
            n += 1
    return i


# These loops in pure Python cost the board over 1 000 instructions a byte: on
# MicroPython the firmware's viper kernels (memctl_firmware/framing.py, same
# results byte for byte) stand in for them. The host keeps the pure-Python ones,
# the reference; so does a MicroPython script with wire.py alone on its path.
cobs_encode = _cobs_encode_py
cobs_decode = _cobs_decode_py
frame_scan = _frame_scan_py
if sys.implementation.name == "micropython":
    try:
        from framing import cobs_decode, cobs_encode, frame_scan
    except ImportError:
        pass


def finish_frame(raw, mtype, seq, plen, out, tag=0):
    """Seal a frame whose payload already sits at raw[HDR_SIZE:HDR_SIZE+plen].

    Writes header and CRC into raw, COBS-encodes into out; returns bytes in out.
    """
    struct.pack_into(HDR_FMT, raw, 0, mtype, tag, seq, plen)
    end = HDR_SIZE + plen
    mv = memoryview(raw)
    struct.pack_into("<I", raw, end, crc32(mv[:end]) & 0xFFFFFFFF)
    return cobs_encode(raw, end + CRC_SIZE, out)


def encode_frame(mtype, seq, payload=b"", tag=0):
    """Allocate and return one encoded frame (host side and tests)."""
    plen = len(payload)
    if plen > MAX_PAYLOAD:
        raise ValueError("payload too long")
    raw = bytearray(HDR_SIZE + plen + CRC_SIZE)
    raw[HDR_SIZE : HDR_SIZE + plen] = payload
    out = bytearray(len(raw) + len(raw) // 254 + 2)
    n = finish_frame(raw, mtype, seq, plen, out, tag)
    return bytes(out[:n])


# Decoder states reported in FrameDecoder.status.
F_NONE = const(0)
F_OK = const(1)
F_BAD = const(2)


class FrameDecoder:
    """Incremental decoder: feed bytes, collect frames.

    After feed() returns, check status: F_OK means mtype/seq/plen are set and
    the payload is buf[HDR_SIZE:HDR_SIZE+plen]; F_BAD means error holds an
    E_* code (and seq, if the header survived). Reset status to F_NONE (or
    call feed again) after handling. No allocation after construction.
    """

    def __init__(self, max_raw=MAX_RAW):
        self.max_enc = max_raw + max_raw // 254 + 1
        self.buf = bytearray(self.max_enc)
        self.mv = memoryview(self.buf)
        self.n = 0
        self.overflow = False
        self.status = F_NONE
        self.error = 0
        self.mtype = 0
        self.seq = 0
        self.tag = 0
        self.plen = 0

    def feed(self, data, start, end):
        """Consume data[start:end] up to and including one delimiter.

        Returns the index after the last byte consumed; call again with that
        index while it is below end.
        """
        self.status = F_NONE
        cap = self.max_enc
        i = start
        while i < end:
            n = self.n
            if not n and not self.overflow and not data[i]:
                i += 1  # an idle delimiter between frames
                continue
            r = frame_scan(data, i, end, self.buf, n, cap)
            m = n + abs(r) - i  # bytes seen, the delimiter too if r < 0
            i = abs(r)
            if r < 0:
                m -= 1
            if m > cap:
                self.overflow = True
                m = cap
            self.n = m
            if r < 0:  # a delimiter after at least one byte: the frame ends
                self._complete()
                return i
        return i

    def _complete(self):
        n = self.n
        self.n = 0
        self.seq = 0
        self.status = F_BAD
        if self.overflow:
            self.overflow = False
            self.error = E_TOO_LONG
            return
        m = cobs_decode(self.buf, n)
        if m < HDR_SIZE + CRC_SIZE:
            self.error = E_FRAME
            return
        body = m - CRC_SIZE
        (want,) = struct.unpack_from("<I", self.buf, body)
        if crc32(self.mv[:body]) & 0xFFFFFFFF != want:
            self.error = E_CRC
            return
        mtype, tag, seq, plen = struct.unpack_from(HDR_FMT, self.buf, 0)
        self.seq = seq
        self.tag = tag
        if plen != body - HDR_SIZE:
            self.error = E_FRAME
            return
        self.mtype = mtype
        self.plen = plen
        self.status = F_OK

    def payload(self):
        return self.mv[HDR_SIZE : HDR_SIZE + self.plen]


def pack_str(buf, off, s):
    """Write a u8-length-prefixed UTF-8 string; returns the new offset."""
    b = s.encode() if isinstance(s, str) else s
    n = len(b)
    if n > 255:
        n = 255
    buf[off] = n
    buf[off + 1 : off + 1 + n] = b[:n]
    return off + 1 + n


def unpack_str(buf, off):
    """Read a u8-length-prefixed string; returns (str, new offset)."""
    n = buf[off]
    return bytes(buf[off + 1 : off + 1 + n]).decode(), off + 1 + n
