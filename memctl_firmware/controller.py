# Command dispatch: frames in, frames out. Buffers are allocated once here;
# handlers write their response payload straight into the tx frame buffer.
import gc
import struct

import hal
import persist
import wire
from xbar import READ_FLOATING, SCHEME_V2, SCHEME_V3, Array, Limits, check_pulse, check_read
from config import FW_VERSION, HW_MAX_WIDTH, UART_POLL_MS, V_READ
from errors import AddressError, ChipFault, CommandError, HALError, LimitError, UnknownCommand
from predictor import PREDICTOR
from predictor_blob import MAX_BLOB
from network import NETWORK
from network_blob import MAX_BLOB as MAX_NET_BLOB
from tiles import Tiles
from algorithms import FFP_TABLE, Params, ffp_trace, prepare
from verify import ROWS, Outcome, program_device
from wire import HDR_SIZE, MAX_PAYLOAD, RESP

from time import ticks_diff, ticks_ms

from micropython import const

# At most 20 small frames a second of board time: nothing on a USB or 1 Mbaud line, and far inside the host's
# 2 s silence limit even on an emulated board that runs at a twentieth of real time.
_LIVE_MS = const(50)

MAX_PAUSE = 60.0
NAN = float("nan")


# What a board without safety limits still accepts: nothing that drives the array.
_UNLOCKED = (
    wire.T_INFO,
    wire.T_SET_LIMITS,
    wire.T_FFP_TABLE,
    wire.T_LOAD_PREDICTOR,
    wire.T_LOAD_NETWORK,
    wire.T_UPDATE,
    wire.T_TILES,
)


class SessionError(CommandError):
    code = wire.E_SESSION


def _arch():
    import sys

    a = (sys.implementation._mpy >> 10) & 0x0F  # bits 10-13; higher bits flag arch extensions (rv32: zba)
    return wire.MPY_ARCHES[a] if a < len(wire.MPY_ARCHES) else "unknown"


_ARCH = _arch()


def _image_hash(folder):
    """The first 16 hex digits of the running image's hash (its manifest), or
    "source" when the firmware runs from .py files without one."""
    try:
        import json

        with open(folder + "manifest.json") as fh:
            return json.load(fh)["image_hash"][:16]
    except (OSError, ValueError, KeyError, ImportError):
        return "source"


def _updater(storage, slot):
    from update import Updater

    return Updater(storage, slot)


def _call(fn, *args):
    return fn(*args)


def _holds(values, n, v):
    for i in range(n):
        if values[i] == v:
            return True
    return False


class Controller:
    def __init__(self, uart, fe, hal_name, heap_size, staging, storage="", slot=None, retry=_call):
        """staging: the blob buffer app.py took at boot (the largest predictor or network blob). retry(fn,
        *args): how code loaded later (the updater) is loaded; app.retry retries a load that ran out of memory
        with its reserve released."""
        self.uart = uart
        self.retry = retry
        self.hal_name = hal_name
        self.heap_size = heap_size
        self.heap_peak = 0
        self.storage = storage
        self.boot_id = persist.next_boot_id(storage)
        self.image = _image_hash(persist.fw_dir(storage) + "/" + slot + "/" if slot else "")
        self.slot = slot
        self.updater = None  # memctl_firmware/update.py, loaded by the first UPDATE (4 KB of bytecode)
        # Liveness inside one long item: a PROGRESS frame (the item count unchanged) every _LIVE_MS of board time
        # while a device takes pulse after pulse, so a slow board (an MCU at a fraction of a PC's speed) is not
        # taken for a silent one. live: seq, done, total, when the last frame went. Few new names: on the rv32
        # board every name the firmware adds brings its next qstr pool nearer (allocated late, on a fragmented heap).
        live = self.live = [0, 0, 0, ticks_ms()]

        def alive():
            if ticks_diff(ticks_ms(), live[3]) >= _LIVE_MS:
                self.send_progress(live[0], live[1], live[2])

        self.alive = alive
        self.reboot = False
        self.tag = self.boot_id & 0xFF
        self.limits = Limits()
        self.array = Array(fe, self.limits, V_READ)
        self.tiles = self.array.tiles = Tiles(storage)
        saved = persist.load(storage)
        if saved is not None:  # limits and read configuration survive a reset
            v, w, vr, v_read, scheme, mode, vd = saved
            if 0 < v <= fe.v_full_scale and 0 < w <= HW_MAX_WIDTH and 0 < v_read <= vr <= v and 0 <= vd < v:
                self.limits.set(v, w, vr, vd)
                self.array.v_read = fe.within(v_read, vr)
                self.array.scheme, self.array.read_mode = scheme, mode
        self.dec = wire.FrameDecoder()
        self.rx = bytearray(256)
        self.raw = bytearray(wire.MAX_RAW)
        self.out = bytearray(wire.MAX_ENCODED)
        self.out_len = 0
        # Small frames (progress, frame errors) never clobber the cached reply.
        self.small_raw = bytearray(HDR_SIZE + 64 + wire.CRC_SIZE)
        self.small_out = bytearray(len(self.small_raw) + 4)
        # REPLAY answers in its own buffers: the cached reply it reads from stays as it is.
        self.out_mv = memoryview(self.out)
        self.replay_raw = bytearray(HDR_SIZE + wire.REPLAY.resp_size + wire.REPLAY_MAX + wire.CRC_SIZE)
        self.replay_out = bytearray(len(self.replay_raw) + len(self.replay_raw) // 254 + 2)
        self.vin = [0.0] * fe.rows
        self.row = [0.0] * fe.cols
        # Row-parallel PROGRAM: one group's columns, targets and item indices.
        self.grp_cols = [0] * fe.cols
        self.grp_targets = [0.0] * fe.cols
        self.grp_items = [0] * fe.cols
        self.params = Params()
        self.outcome = Outcome()
        # Idempotency: the last request's (seq, crc) and its encoded reply.
        self.last_seq = -1
        self.last_crc = -1
        self.handlers = {
            wire.T_INFO: self.do_info,
            wire.T_READ: self.do_read,
            wire.T_READ_ROWS: self.do_read_rows,
            wire.T_PULSE: self.do_pulse,
            wire.T_PROGRAM: self.do_program,
            wire.T_VMM: self.do_vmm,
            wire.T_SET_LIMITS: self.do_set_limits,
            wire.T_CONFIG: self.do_config,
            wire.T_PULSE_TRAIN: self.do_pulse_train,
            wire.T_FFP_TABLE: self.do_ffp_table,
            wire.T_FFP_TRACE: self.do_ffp_trace,
            wire.T_LOAD_PREDICTOR: self.do_load_predictor,
            wire.T_LOAD_NETWORK: self.do_load_network,
            wire.T_RUN_NETWORK: self.do_run_network,
            wire.T_UPDATE: self.do_update,
            wire.T_TILES: self.do_tiles,
        }
        self.staging = Staging(staging)

    # -- transport -------------------------------------------------------
    def serve_forever(self):
        dec = self.dec
        while True:
            n = self.uart.readinto(self.rx, UART_POLL_MS)
            if n == 0:
                gc.collect()
                continue
            i = 0
            while i < n:
                i = dec.feed(self.rx, i, n)
                if dec.status == wire.F_OK:
                    self.handle()
                elif dec.status == wire.F_BAD:
                    self.send_error_small(dec.seq, dec.error, "malformed frame")

    def handle(self):
        dec = self.dec
        seq = dec.seq
        body = HDR_SIZE + dec.plen
        crc = dec.buf[body] | dec.buf[body + 1] << 8 | dec.buf[body + 2] << 16 | dec.buf[body + 3] << 24
        if dec.mtype == wire.T_REPLAY:  # a piece of the cached reply; the cache stays as it is
            self.do_replay(dec.payload(), seq, dec.tag)
            return
        if seq == self.last_seq and crc == self.last_crc:
            self.uart.write(self.out, self.out_len)  # retried request: same reply
            return
        handler = self.handlers.get(dec.mtype)
        try:
            if dec.tag and dec.tag != self.tag:
                raise SessionError("board reset since this session's INFO: re-synchronize")
            if handler is None:
                raise UnknownCommand("unknown message type")
            if not self.limits.valid and dec.mtype not in _UNLOCKED:
                raise LimitError("safety limits not set: send SET_LIMITS first")
            plen = handler(dec.payload(), seq)
            self.out_len = wire.finish_frame(self.raw, dec.mtype | RESP, seq, plen, self.out)
        except Exception as e:  # every failure becomes an error reply
            if isinstance(e, CommandError):
                code = e.code
            elif isinstance(e, MemoryError):
                code = wire.E_MEMORY
            elif isinstance(e, OSError):
                code = wire.E_HAL
            elif isinstance(e, (ValueError, IndexError, TypeError)):
                code = wire.E_PAYLOAD
            else:
                code = wire.E_INTERNAL
            self.out_len = self.encode_error(self.raw, self.out, seq, code, str(e) or type(e).__name__)
        self.last_seq = seq
        self.last_crc = crc
        self.uart.write(self.out, self.out_len)
        if self.reboot:  # a committed update: the reply is out, boot the new image
            hal.reboot()
        # What stays allocated once a request's garbage is collected (buffers,
        # predictor, network, staging): its peak is what INFO reports.
        gc.collect()
        used = gc.mem_alloc()
        if used > self.heap_peak:
            self.heap_peak = used

    def encode_error(self, raw, out, seq, code, msg):
        head = wire.ERROR.resp_size
        struct.pack_into(wire.ERROR.resp, raw, HDR_SIZE, code)
        b = msg.encode()
        n = min(len(b), len(raw) - HDR_SIZE - wire.CRC_SIZE - head)
        raw[HDR_SIZE + head : HDR_SIZE + head + n] = b[:n]
        return wire.finish_frame(raw, wire.T_ERROR | RESP, seq, head + n, out)

    def do_replay(self, p, seq, tag):
        """REPLAY: bytes of the cached reply to the request (seq, crc) for a host
        that got that reply damaged, so a long reply is resent in pieces, and
        only the pieces that were lost; nothing runs again."""
        m = wire.REPLAY
        raw, out = self.replay_raw, self.replay_out
        try:
            if tag and tag != self.tag:
                raise SessionError("board reset since this session's INFO: re-synchronize")
            self.need(p, m.req_size)
            rseq, rcrc, off, n = struct.unpack_from(m.req, p, 0)
            total = self.out_len if rseq == self.last_seq and rcrc == self.last_crc else 0
            if off > total:
                raise CommandError("REPLAY offset beyond the reply")
            n = min(n, wire.REPLAY_MAX, total - off)
            struct.pack_into(m.resp, raw, HDR_SIZE, total, off)
            at = HDR_SIZE + m.resp_size
            raw[at : at + n] = self.out_mv[off : off + n]
            k = wire.finish_frame(raw, wire.T_REPLAY | RESP, seq, m.resp_size + n, out)
        except CommandError as e:
            k = self.encode_error(raw, out, seq, e.code, str(e))
        self.uart.write(out, k)

    def send_error_small(self, seq, code, msg):
        n = self.encode_error(self.small_raw, self.small_out, seq, code, msg)
        self.uart.write(self.small_out, n)

    def send_progress(self, seq, done, total):
        lv = self.live
        lv[0], lv[1], lv[2], lv[3] = seq, done, total, ticks_ms()
        struct.pack_into(wire.PROGRESS.resp, self.small_raw, HDR_SIZE, done, total)
        n = wire.finish_frame(self.small_raw, wire.T_PROGRESS | RESP, seq, wire.PROGRESS.resp_size, self.small_out)
        self.uart.write(self.small_out, n)

    # -- handlers: return the payload length written at raw[HDR_SIZE:] ------
    def need(self, p, size):
        if len(p) != size:
            raise CommandError("payload must be " + str(size) + " bytes")

    def do_info(self, p, seq):
        self.need(p, wire.INFO.req_size)
        a, lim, fe = self.array, self.limits, self.array.fe
        free = gc.mem_free()
        struct.pack_into(
            wire.INFO.resp,
            self.raw,
            HDR_SIZE,
            wire.PROTOCOL_VERSION,
            a.rows,
            a.cols,
            MAX_PAYLOAD,
            self.heap_size,
            free,
            lim.v_pulse,
            lim.width,
            lim.v_read,
            a.v_read,
            fe.v_full_scale,
            fe.v_lsb,
            fe.lsb(0),
            fe.ranges[-1],
            len(fe.ranges),
            a.scheme,
            a.read_mode,
            wire.CELL_1T1R if fe.one_t1r else wire.CELL_0T1R,
        )
        off = HDR_SIZE + wire.INFO.resp_size
        off = wire.pack_str(self.raw, off, FW_VERSION)
        off = wire.pack_str(self.raw, off, self.hal_name + ":" + fe.name)
        struct.pack_into(
            wire.INFO_TAIL,
            self.raw,
            off,
            self.heap_peak,
            PREDICTOR.n_params if PREDICTOR.loaded else 0,
            self.boot_id,
            1 if lim.valid else 0,
        )
        off = wire.pack_str(self.raw, off + struct.calcsize(wire.INFO_TAIL), self.image)
        off = wire.pack_str(self.raw, off, _ARCH)
        struct.pack_into(wire.INFO_MODEL, self.raw, off, PREDICTOR.feature_set if PREDICTOR.loaded else 0)
        off += struct.calcsize(wire.INFO_MODEL)
        struct.pack_into(wire.INFO_DISTURB, self.raw, off, lim.v_disturb)
        return off + struct.calcsize(wire.INFO_DISTURB) - HDR_SIZE

    def do_read(self, p, seq):
        m = wire.READ
        self.need(p, m.req_size)
        r, c = struct.unpack_from(m.req, p, 0)
        g = self.array.read(r, c)
        struct.pack_into(m.resp, self.raw, HDR_SIZE, g * self.array.v_read, g)
        return m.resp_size

    def do_read_rows(self, p, seq):
        m = wire.READ_ROWS
        self.need(p, m.req_size)
        r0, nr = struct.unpack_from(m.req, p, 0)
        a = self.array
        if nr < 1 or r0 + nr > a.rows:
            raise AddressError("rows out of range")
        if m.resp_size + nr * a.cols * m.resp_item_size > MAX_PAYLOAD:
            raise CommandError("too many rows for one frame")
        off = HDR_SIZE + m.resp_size
        row = self.row
        for r in range(r0, r0 + nr):
            a.read_row(r, row)
            for c in range(a.cols):
                struct.pack_into(m.resp_item, self.raw, off, row[c])
                off += m.resp_item_size
        return off - HDR_SIZE

    def do_pulse(self, p, seq):
        m = wire.PULSE
        self.need(p, m.req_size)
        r, c, v, w = struct.unpack_from(m.req, p, 0)
        applied = self.array.pulse(r, c, v, w)
        struct.pack_into(m.resp, self.raw, HDR_SIZE, applied)
        return m.resp_size

    def do_program(self, p, seq):
        m = wire.PROGRAM
        if len(p) < m.req_size:
            raise CommandError("short PROGRAM header")
        pp = self.params
        f = struct.unpack_from(m.req, p, 0)
        pp.tol, pp.max_pulses, n, pp.algorithm, pp.patience = f[0], f[1], f[2], f[3], f[4]
        for i in range(wire.N_PARAMS):
            pp.p[i] = f[5 + i]
        if len(p) != m.req_size + n * m.req_item_size:
            raise CommandError("PROGRAM length does not match device count")
        if m.resp_size + n * m.resp_item_size > MAX_PAYLOAD:
            raise CommandError("too many devices for one frame")
        algo = prepare(pp, self.limits)
        a = self.array
        # Check every item before the first pulse: a bad item changes nothing.
        off = m.req_size
        for _ in range(n):
            r, c, t = struct.unpack_from(m.req_item, p, off)
            a.check(r, c)
            if not 0 <= t < 1:
                raise CommandError("target conductance must be 0..1 S")
            off += m.req_item_size
        fe = a.fe
        # Passive arrays share pulses only with a disturb limit to check them against; without one, serially.
        if pp.algorithm & wire.A_ROWS and (fe.one_t1r or self.limits.v_disturb > 0):
            return self.program_rows(p, seq, n, pp)
        t_start = fe.clock()
        t_prev = t_start
        off = m.req_size
        out = HDR_SIZE + m.resp_size
        o = self.outcome
        self.live[0], self.live[1], self.live[2] = seq, 0, n
        for k in range(n):
            r, c, t = struct.unpack_from(m.req_item, p, off)
            off += m.req_item_size
            try:
                program_device(a, r, c, t, pp, algo, o, self.alive)
            except ChipFault:  # the hardware, not the device: stop, naming the chip
                raise
            except HALError:  # a reading that is not a value: report it, go on
                o.g, o.status, o.pulses, o.energy = NAN, wire.S_SATURATED, 0, 0.0
            now = fe.clock()
            struct.pack_into(m.resp_item, self.raw, out, o.g, o.pulses, o.status, (now - t_prev) * 1e-9, o.energy)
            t_prev = now
            out += m.resp_item_size
            self.send_progress(seq, k + 1, n)
        struct.pack_into(m.resp, self.raw, HDR_SIZE, (t_prev - t_start) * 1e-9, n)
        return out - HDR_SIZE

    def program_rows(self, p, seq, n, pp):
        """Row-parallel PROGRAM (1T1R, or passive with a disturb limit): the items of one row go together (a
        column twice in a row waits for the next group), rows in order of first
        appearance; results land at each item's place in the reply. A device's
        time is its row's board time until it finished."""
        m = wire.PROGRAM
        a = self.array
        fe = a.fe
        taken = bytearray(n)
        cols, targets, which = self.grp_cols, self.grp_targets, self.grp_items
        t_start = fe.clock()
        done = 0
        k0 = 0
        self.live[0], self.live[1], self.live[2] = seq, 0, n
        while k0 < n:
            if taken[k0]:
                k0 += 1
                continue
            r0 = struct.unpack_from(m.req_item, p, m.req_size + k0 * m.req_item_size)[0]
            g = 0
            for k in range(k0, n):
                if taken[k]:
                    continue
                r, c, t = struct.unpack_from(m.req_item, p, m.req_size + k * m.req_item_size)
                if r != r0 or _holds(cols, g, c):
                    continue
                taken[k] = 1
                cols[g], targets[g], which[g] = c, t, k
                g += 1
            t_row = fe.clock()
            try:
                ROWS.program(a, r0, cols, targets, g, pp, self.limits, self.row, fe.clock, self.alive)
                saturated = False
            except ChipFault:
                raise
            except HALError:  # a reading that is not a value: the row's devices report it
                saturated = True
            vs = ROWS.verifies
            for j in range(g):
                at = HDR_SIZE + m.resp_size + which[j] * m.resp_item_size
                if saturated:
                    struct.pack_into(m.resp_item, self.raw, at, NAN, 0, wire.S_SATURATED, 0.0, 0.0)
                else:
                    vf = vs[j]
                    dt = (vf.t_end - t_row) * 1e-9
                    struct.pack_into(m.resp_item, self.raw, at, vf.g, vf.pulses, vf.status, dt, vf.energy)
            done += g
            self.send_progress(seq, done, n)
        struct.pack_into(m.resp, self.raw, HDR_SIZE, (fe.clock() - t_start) * 1e-9, n)
        return m.resp_size + n * m.resp_item_size

    def do_vmm(self, p, seq):
        a = self.array
        m = wire.VMM
        if len(p) < m.req_size:
            raise CommandError("short VMM payload")
        (n,) = struct.unpack_from(m.req, p, 0)
        if len(p) != m.req_size + m.req_item_size * n:
            raise CommandError("VMM length does not match input count")
        vin = self.vin
        if n > len(vin):
            raise AddressError("VMM needs one input per row")
        for i in range(n):
            vin[i] = struct.unpack_from(m.req_item, p, m.req_size + m.req_item_size * i)[0]
        a.vmm(vin, n)
        fe = a.fe
        struct.pack_into(m.resp, self.raw, HDR_SIZE, a.lsb)
        off = HDR_SIZE + m.resp_size
        for c in range(a.cols):
            struct.pack_into(m.resp_item, self.raw, off + m.resp_item_size * c, fe.current(c))
        return m.resp_size + m.resp_item_size * a.cols

    def do_set_limits(self, p, seq):
        m = wire.SET_LIMITS
        self.need(p, m.req_size)
        v, w, vr, vd = struct.unpack_from(m.req, p, 0)
        fe = self.array.fe
        if not 0 < v <= fe.v_full_scale:
            raise LimitError("pulse limit %.4g V must be within the DAC range 0..%.4g V" % (v, fe.v_full_scale))
        if not 0 < w <= HW_MAX_WIDTH:
            raise LimitError("width limit %.4g s must be within 0..%.4g s, the hardware maximum" % (w, HW_MAX_WIDTH))
        if not 0 < vr <= v:
            raise LimitError("read limit %.4g V must be > 0 and at most the pulse limit %.4g V" % (vr, v))
        if not 0 <= vd < v:
            raise LimitError("disturb limit %.4g V must be >= 0 (0: none) and below the pulse limit %.4g V" % (vd, v))
        a = self.array
        if self.limits.valid and a.v_read > vr:
            raise LimitError(
                "read limit %.4g V is below the read voltage in use, %.4g V: lower the read voltage first "
                "(memctl config --v-read V)" % (vr, a.v_read)
            )
        if a.v_read > vr:  # first limits on a fresh board: bring V_read inside them
            a.v_read = a.fe.within(vr, vr)
        persist.save(self.storage, (v, w, vr, a.v_read, a.scheme, a.read_mode, vd))
        self.limits.set(v, w, vr, vd)
        struct.pack_into(m.resp, self.raw, HDR_SIZE, v, w, vr, vd)
        return m.resp_size

    def do_config(self, p, seq):
        m = wire.CONFIG
        self.need(p, m.req_size)
        v, scheme, mode = struct.unpack_from(m.req, p, 0)
        if not 0 < v:
            raise CommandError("read voltage must be > 0 V")
        check_read(self.limits, v)
        if scheme not in (SCHEME_V2, SCHEME_V3):
            raise CommandError("bias scheme must be 2 (V/2) or 3 (V/3)")
        if mode > READ_FLOATING:
            raise CommandError("read mode must be 0 (grounded) or 1 (floating)")
        a = self.array
        lim = self.limits
        v = a.fe.within(v, lim.v_read)
        persist.save(self.storage, (lim.v_pulse, lim.width, lim.v_read, v, scheme, mode, lim.v_disturb))
        a.v_read = v
        a.scheme, a.read_mode = scheme, mode
        struct.pack_into(m.resp, self.raw, HDR_SIZE, a.v_read, scheme, mode)
        return m.resp_size

    def do_pulse_train(self, p, seq):
        """Paper 004's pulse period, n times: set pulse, anti-pulse, pause,
        read pulse, pause. Replies with the read current of every period."""
        m = wire.PULSE_TRAIN
        self.need(p, m.req_size)
        r, c, n, v_set, t_set, v_anti, t_anti, t_off, v_r, t_r = struct.unpack_from(m.req, p, 0)
        a = self.array
        a.check(r, c)
        if not 1 <= n <= (MAX_PAYLOAD - m.resp_size) // m.resp_item_size:
            raise CommandError("period count must be 1..256")
        lim = self.limits
        check_pulse(lim, v_set, t_set)
        if t_anti != 0:
            check_pulse(lim, v_anti, t_anti)
        check_read(lim, v_r)
        if not (0 <= t_off <= MAX_PAUSE and 0 <= t_r <= MAX_PAUSE):
            raise CommandError("pause and read times must be 0..60 s")
        off = HDR_SIZE + m.resp_size
        for k in range(n):
            a.pulse(r, c, v_set, t_set)
            if t_anti != 0:
                a.pulse(r, c, v_anti, t_anti)
            a.wait(t_off)
            struct.pack_into(m.resp_item, self.raw, off, a.read_current(r, c, v_r, t_r))
            off += m.resp_item_size
            a.wait(t_off)
            if k % 10 == 9:
                self.send_progress(seq, k + 1, n)
        return off - HDR_SIZE

    def do_ffp_table(self, p, seq):
        """Empty payload: read the table. Otherwise replace it (all or nothing)."""
        t = FFP_TABLE
        m = wire.FFP_TABLE
        size = m.req_item_size
        if len(p):
            if len(p) < m.req_size:
                raise CommandError("short FFP table")
            g_lo, g_hi, bins = struct.unpack_from(m.req, p, 0)
            if len(p) != m.req_size + 2 * size * bins:
                raise CommandError("FFP table length does not match its bins")
            off = m.req_size
            for i in range(2 * bins):
                v = struct.unpack_from(m.req_item, p, off + size * i)[0]
                if not 0 <= v <= 1000:
                    raise CommandError("FFP table voltages must be finite magnitudes")
            t.configure(g_lo, g_hi, bins)
            for d in range(2):
                for i in range(bins):
                    t.v[d][i] = struct.unpack_from(m.req_item, p, off + size * (d * bins + i))[0]
        struct.pack_into(m.resp, self.raw, HDR_SIZE, t.g_lo, t.g_hi, t.bins)
        off = HDR_SIZE + m.resp_size
        for d in range(2):
            for i in range(t.bins):
                struct.pack_into(m.resp_item, self.raw, off, t.v[d][i])
                off += m.resp_item_size
        return off - HDR_SIZE

    def do_ffp_trace(self, p, seq):
        m = wire.FFP_TRACE
        self.need(p, m.req_size)
        f = struct.unpack_from(m.req, p, 0)
        r, c, direction, n = f[0], f[1], f[2], f[3]
        a = self.array
        a.check(r, c)
        if direction not in (1, -1):
            raise CommandError("direction must be +1 (set) or -1 (reset)")
        if not 1 <= n <= wire.FFP_TRACE_MAX:
            raise CommandError("events per request must be 1..120")
        pp = self.params
        pp.algorithm, pp.tol, pp.patience = wire.A_FFP, 1e-6, 8
        for i in range(wire.N_PARAMS):
            pp.p[i] = f[4 + i]
        algo = prepare(pp, self.limits)
        events, ended = ffp_trace(a, r, c, direction, n, algo, pp.patience, self.raw, HDR_SIZE + m.resp_size)
        struct.pack_into(m.resp, self.raw, HDR_SIZE, events, 1 if ended else 0)
        return m.resp_size + m.resp_item_size * events

    def do_load_predictor(self, p, seq):
        """Chunks arrive in order into a staging buffer; the complete blob is
        checked (CRC, version, feature set, shapes) before it replaces the
        loaded model, so a corrupt or truncated blob changes nothing."""
        m = wire.LOAD_PREDICTOR
        received, total = self.staging.take(m, p, MAX_BLOB)
        if received == total:
            try:
                PREDICTOR.load(self.staging.buf, total)
            except ValueError as e:
                raise CommandError(str(e)) from None
        struct.pack_into(m.resp, self.raw, HDR_SIZE, received, total, PREDICTOR.n_params)
        return m.resp_size

    def do_tiles(self, p, seq):
        """List, set or clear the deployment fingerprints; the reply lists the tiles held."""
        m = wire.TILES
        if len(p) < m.req_size or (len(p) - m.req_size) % m.req_item_size:
            raise CommandError("payload must be an op byte and whole tile records")
        op = p[0]
        n = (len(p) - m.req_size) // m.req_item_size
        t = self.tiles
        if op == wire.TILES_SET:
            if n == 0:
                raise CommandError("TILES set needs at least one tile")
            a = self.array
            held = t.held
            try:  # all or nothing
                for k in range(n):
                    r0, c0, r1, c1, fp = struct.unpack_from(m.req_item, p, m.req_size + k * m.req_item_size)
                    t.set(r0, c0, r1, c1, fp, a.rows, a.cols)
            except CommandError:
                t.held = held
                raise
            t.save()
        elif op == wire.TILES_CLEAR:
            t.clear()
            t.save()
        elif op != wire.TILES_LIST or n:
            raise CommandError("TILES op must be 0 (list), 1 (set) or 2 (clear)")
        struct.pack_into(m.resp, self.raw, HDR_SIZE, len(t.held))
        off = HDR_SIZE + m.resp_size
        for r in t.held:
            struct.pack_into(m.resp_item, self.raw, off, r[0], r[1], r[2], r[3], r[4], r[5])
            off += m.resp_item_size
        return off - HDR_SIZE

    def do_load_network(self, p, seq):
        """A deployed network's layout (network_blob.py), staged like a
        predictor and checked whole against this array before it is installed."""
        m = wire.LOAD_NETWORK
        received, total = self.staging.take(m, p, MAX_NET_BLOB)
        if received == total:
            a = self.array
            try:
                NETWORK.load(self.staging.buf, total, a.rows, a.cols)
            except ValueError as e:
                raise CommandError(str(e)) from None
        struct.pack_into(m.resp, self.raw, HDR_SIZE, received, total, NETWORK.n_layers)
        return m.resp_size

    def do_run_network(self, p, seq):
        """Whole-MLP inference for a batch of inputs: every sample is checked
        (finite) before the first VMM; progress frames keep the host waiting."""
        net = NETWORK
        if not net.loaded:
            raise CommandError("no network loaded (memctl infer --manifest M, or Deployment.run, loads it)")
        m = wire.RUN_NETWORK
        if len(p) < m.req_size:
            raise CommandError("short RUN_NETWORK")
        n, flags = struct.unpack_from(m.req, p, 0)
        n_in, n_out = net.n_in, net.n_out
        size = m.req_item_size
        if n < 1 or len(p) != m.req_size + size * n * n_in:
            raise CommandError("RUN_NETWORK length does not match samples x inputs")
        if m.resp_size + m.resp_item_size * n * n_out > MAX_PAYLOAD:
            raise CommandError("too many samples for one reply frame")
        for i in range(n * n_in):
            v = struct.unpack_from(m.req_item, p, m.req_size + size * i)[0]
            if not (v == v and -1e30 < v < 1e30):
                raise CommandError("network inputs must be finite")
        a = net.a
        out = HDR_SIZE + m.resp_size
        for k in range(n):
            for i in range(n_in):
                a[i] = struct.unpack_from(m.req_item, p, m.req_size + size * (k * n_in + i))[0]
            net.run(self.array, self.vin, flags & wire.RUN_CALIBRATED)
            for j in range(n_out):
                struct.pack_into(m.resp_item, self.raw, out, a[j])
                out += m.resp_item_size
            if k % 8 == 7:
                self.send_progress(seq, k + 1, n)
        struct.pack_into(m.resp, self.raw, HDR_SIZE, n, n_out)
        return out - HDR_SIZE

    def do_update(self, p, seq):
        m = wire.UPDATE
        head = m.req_size
        if len(p) < head:
            raise CommandError("short UPDATE")
        step, value = struct.unpack_from(m.req, p, 0)
        if self.updater is None:
            self.updater = self.retry(_updater, self.storage, self.slot)
        u = self.updater
        off = HDR_SIZE + m.resp_size
        if step == wire.U_BEGIN:
            value = u.begin()
        elif step == wire.U_FILE:
            u.file(bytes(p[head:]).decode(), value)
            value = 0
        elif step == wire.U_DATA:
            value = u.data(value, p[head:])
        elif step == wire.U_COMMIT:
            off = wire.pack_str(self.raw, off, u.commit())
            value = 0
            self.reboot = True
        else:
            raise CommandError("unknown update step")
        struct.pack_into(m.resp, self.raw, HDR_SIZE, step, value)
        return off - HDR_SIZE


class Staging:
    """Collects a blob's chunks in order (predictor or network) in the
    buffer app.py takes at boot, before any code loads, for
    the largest blob either may be: a buffer taken later, on a heap that
    requests have fragmented, could find far more free bytes than its largest
    block."""

    def __init__(self, buf):
        self.buf = buf
        self.kind = None  # the message (LOAD_PREDICTOR or LOAD_NETWORK) being staged
        self.len = 0

    def take(self, kind, p, limit):
        """Append one chunk of kind (wire.LOAD_PREDICTOR or LOAD_NETWORK); returns (received, total)."""
        head = kind.req_size
        if len(p) < head:
            raise CommandError("short blob chunk")
        off, total = struct.unpack_from(kind.req, p, 0)
        n = len(p) - head
        if not 0 < total <= limit:
            raise CommandError("blob size out of range")
        if off == 0:
            self.len = 0
            self.kind = kind
        if off != self.len or kind != self.kind or off + n > total:
            self.len = 0
            raise CommandError("blob chunk out of order: start again at offset 0")
        self.buf[off : off + n] = p[head:]
        self.len = off + n
        if self.len == total:
            self.len = 0
            return total, total
        return self.len, total
