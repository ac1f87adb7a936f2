"""Request/response over a serial line, with retries and progress frames.

Any pyserial URL works (a device path, socket://host:port, loop://), so the
same code talks to a real board, the emulated board or a test double.
"""

from __future__ import annotations

import math
import random
import time
import zlib
from collections.abc import Callable

import serial

from memctl import protocol
from memctl.errors import BoardTimeout, FirmwareError, PortError, ProtocolError, firmware_error
from memctl_shared import wire

ProgressFn = Callable[[int, int], None]

# Errors the firmware sends when our request arrived damaged: resend it.
_RESEND = (wire.E_CRC, wire.E_FRAME, wire.E_TOO_LONG)
_DAMAGED = object()  # _await's answer when a frame arrived damaged
_REFUSED = object()  # _await's answer when the board says our frame arrived damaged
_LOST = object()  # _await's answer when nothing came for the RTO although the board is alive
_RTO_FLOOR = 0.01  # s: G of RFC 6298's RTO = SRTT + max(G, 4 RTTVAR): scheduling jitter on either side
_POLL = 0.002  # s a read blocks while nothing arrives (the resolution of the RTO)
_SLOW_POLL = 0.05  # s the same while no deadline is near
_FRAME_BYTES = wire.HDR_SIZE + wire.CRC_SIZE + 2  # what a frame costs beyond its payload: COBS code, delimiter
# A damaged frame this short, during a request that sends progress, was most likely a progress frame
# (16 bytes encoded): its reply is still to come, so keep listening instead of resending.
_SHORT = _FRAME_BYTES + wire.PROGRESS.resp_size + 4
_MIN_BUDGET = 64
# The board's refusal of a damaged frame ("malformed frame", 28 bytes on the line), give or take a byte or two.
_REFUSAL = 32


class RttEstimator:
    """RFC 6298: smoothed round-trip time (SRTT) and its variation (RTTVAR), s."""

    __slots__ = ("srtt", "rttvar", "samples")

    def __init__(self) -> None:
        self.srtt = 0.0
        self.rttvar = 0.0
        self.samples = 0

    def add(self, r: float) -> None:
        r = max(0.0, r)
        if not self.samples:
            self.srtt, self.rttvar = r, r / 2
        else:
            self.rttvar += (abs(self.srtt - r) - self.rttvar) / 4
            self.srtt += (r - self.srtt) / 8
        self.samples += 1

    def rto(self) -> float:
        return self.srtt + max(_RTO_FLOOR, 4 * self.rttvar)


def first_error_position(rate: float, n: int) -> float:
    """Expected position (1..n) of the first damaged byte of an n-byte frame
    known to hold one, at byte error rate `rate` (a geometric law cut at n)."""
    if rate * n < 1e-4:
        return (n + 1) / 2
    q = 1.0 - rate
    qn = q**n
    return (1.0 - (n + 1) * qn + n * qn * q) / (rate * (1.0 - qn))


class ByteErrorRate:
    """The line's byte error rate, from the frames seen whole or damaged.

    A whole frame of n bytes counts n clean bytes; a damaged one counts one
    error and the bytes expected up to it at the rate so far (EM on a geometric
    law censored at the frame's end, whose fixed point is the maximum-likelihood
    rate: a damaged 1 KB frame says less than a damaged 64-byte one). Every new
    frame fades the tallies by `keep`, so the estimate follows a line that gets
    worse or better within a few dozen frames.
    """

    def __init__(self, keep: float = 0.97, prior: float = 1e-6, weight: float = 1e4):
        self.keep = keep
        self.errors = prior * weight
        self.bytes = weight
        self.frames = 0

    @property
    def rate(self) -> float:
        return self.errors / self.bytes

    def frame(self, n: int, damaged: bool) -> None:
        if n <= 0:
            return
        rate = min(self.rate, 0.5)
        self.errors *= self.keep
        self.bytes *= self.keep
        self.frames += 1
        if damaged:
            self.errors += 1.0
            self.bytes += first_error_position(rate, n)
        else:
            self.bytes += n


def best_payload(rate: float, fixed: float) -> float:
    """Payload bytes per frame that minimize the expected line time per useful
    byte: an exchange costs `fixed` byte times beyond its payload L and gets
    through whole with probability (1 - rate)^L times a constant, so the cost
    (fixed + L) / (L (1 - rate)^L) is least where a L^2 + a fixed L = fixed,
    a = -ln(1 - rate): about sqrt(fixed / a) on a good line, 1 / a on a bad one."""
    a = -math.log1p(-min(rate, 0.5))
    if a * fixed < 1e-12:
        return math.inf
    return (-a * fixed + math.sqrt((a * fixed) ** 2 + 4 * a * fixed)) / (2 * a)


class Link:
    """One serial connection to a board; thread-unsafe, like the line itself."""

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 115200,
        timeout: float = 2.0,
        retries: int = 3,
        reconnect: float = 10.0,
        max_payload: int = wire.MAX_PAYLOAD,
        noisy_retries: int = 300,
    ):
        self.port = port
        self.baudrate = baudrate
        self.timeout = timeout
        self.retries = retries  # silent timeouts tolerated per request
        self.noisy_retries = noisy_retries  # damaged answers tolerated per request (the line is alive)
        self.reconnect_timeout = reconnect
        self.tag = 0  # session tag: low byte of the board's boot id (0: none yet)
        self.max_payload = max_payload
        self.budget = max_payload  # payload bytes per frame the link carries well now
        self.errors = ByteErrorRate()  # the line's measured byte error rate (sets the budget)
        self.rtt: dict[int, RttEstimator] = {}  # per message type: the board's silences while it works
        self._heard = 0.0  # when the board was last heard (a byte arrived), time.monotonic()
        self._bad_len = 0  # bytes of the last damaged answer
        self._working = False  # the board has shown it works on the request in hand (a frame of ours came)
        self.replay: bool | None = None  # the board answers REPLAY (learnt after each INFO)
        self.ser = self._open()
        self.decoder = wire.FrameDecoder()
        # Random start so a new session never repeats the last session's
        # (seq, request) pair that the firmware keeps for idempotency.
        self._seq = random.randrange(1, 0x10000)
        # retries: resends after a damaged answer or a silent timeout; resends: early ones after an RTO of silence
        self.stats = {"requests": 0, "retries": 0, "resends": 0, "replays": 0, "bad_frames": 0, "reconnects": 0}

    def _open(self) -> serial.SerialBase:
        try:
            return serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=0.05)
        except (serial.SerialException, ValueError, OSError) as e:
            raise PortError(f"cannot open {self.port}: {e}") from e

    def _reconnect(self, error: Exception) -> None:
        """The port failed (cable pulled?): reopen the same path until it is
        back or reconnect_timeout passes."""
        try:
            self.ser.close()
        except (serial.SerialException, OSError):
            pass
        deadline = time.monotonic() + self.reconnect_timeout
        while True:
            try:
                self.ser = self._open()
                self.decoder = wire.FrameDecoder()
                self.stats["reconnects"] += 1
                return
            except PortError:
                if time.monotonic() > deadline:
                    raise PortError(
                        f"{self.port} failed ({error}) and did not come back within {self.reconnect_timeout:.0f} s"
                    ) from error
                time.sleep(0.1)

    def fit(self, size: int | None = None) -> None:
        """Set the frame budget (payload bytes per frame, 64 .. max_payload):
        to `size`, or with none to the size whose expected line time per useful
        byte is least at the measured byte error rate (a 1 KB frame on a clean
        line; at 1 % of bytes damaged, where a 1 KB frame almost never arrives
        whole, the floor). Board calls halve it after a chunk that did not get
        through; the next request's outcome sets it from the measurement again."""
        if size is None:
            size = best_payload(self.errors.rate, self._fixed_cost())
        self.budget = int(max(_MIN_BUDGET, min(self.max_payload, size)))

    def _fixed_cost(self) -> float:
        """What an exchange costs beyond its payload, in byte times: the framing
        both ways and the board's shortest turnaround."""
        turn = min((e.srtt for e in self.rtt.values() if e.samples), default=0.0)
        byte_time = self._byte_time()
        return 2 * _FRAME_BYTES + (turn / byte_time if byte_time else 0.0)

    def _byte_time(self) -> float:
        return 10.0 / self.baudrate if self.baudrate else 0.0

    def _estimator(self, mtype: int) -> RttEstimator:
        est = self.rtt.get(mtype)
        if est is None:
            est = self.rtt[mtype] = RttEstimator()
        return est

    def rto(self, mtype: int, wait: float) -> float:
        """How long to wait for the first answer to a request of this type before
        resending (the frame's own line time comes on top): SRTT + max(10 ms,
        4 RTTVAR) of the board's turnaround for this type, measured; a type not
        seen yet gets a quarter of the timeout. Never more than the timeout."""
        est = self.rtt.get(mtype)
        return min(wait, est.rto() if est is not None and est.samples else wait / 4)

    def close(self) -> None:
        self.ser.close()

    def _next_seq(self) -> int:
        self._seq = self._seq % 0xFFFF + 1
        return self._seq

    def request(
        self, mtype: int, payload: bytes = b"", *, timeout: float | None = None, progress: ProgressFn | None = None
    ) -> bytes:
        """Send one request; return the response payload.

        Resends the identical frame (same sequence number) when the board says
        our frame arrived damaged, and when nothing comes for the retransmission
        timeout (RTO: measured per message type, doubled after each early
        resend; not while progress frames say the board works on it); the firmware
        answers a repeat from its cache instead of acting twice. A reply that
        arrives damaged is asked for again: whole (the identical request), or,
        where that is cheaper at the measured error rate, in pieces from the
        board's cache (REPLAY), again only the pieces that were lost.
        `retries` bounds the silent timeouts in a row (`timeout` seconds without
        a byte from the board: a dead board fails as fast as before); damaged
        answers (a noisy but live line) are resent at once, up to
        `noisy_retries` times. Every request's outcome updates the measured
        byte error rate and, from it, the frame budget.
        """
        seq = self._next_seq()
        frame = wire.encode_frame(mtype, seq, payload, 0 if mtype == wire.T_INFO else self.tag)
        self.stats["requests"] += 1
        try:
            reply = self._exchange(mtype, seq, frame, self.timeout if timeout is None else timeout, progress)
        finally:
            self.fit()
        if mtype == wire.T_INFO:
            self._probe_replay(seq, frame)
        return reply

    def _exchange(self, mtype: int, seq: int, frame: bytes, wait: float, progress: ProgressFn | None) -> bytes:
        """request's loop: send `frame` until its reply arrives whole."""
        boost = 1.0  # RFC 6298 backoff: doubles with every early resend of this request
        silent = silences = noisy = sends = 0
        torn = 0  # after silence: the board may hold the torn rest of our last frame
        self._heard = time.monotonic()  # the silence a timeout measures starts now
        self._working = False  # no frame of ours yet: the board may not have the request
        while True:
            try:
                # Every frame ends with a second delimiter (an idle one to the board): if the first is
                # damaged the frame still ends there, a damaged frame the board answers at once instead
                # of waiting for more; if it is dropped, the frame arrives whole. A resend also opens with
                # one: if the last one lost both, the board drops the torn bytes as one bad frame
                # instead of gluing them to this one.
                self.ser.write(b"\x00" + frame + b"\x00" if sends else frame + b"\x00")
                sends += 1
                answer = self._await(seq, mtype, len(frame), wait, boost, progress, sends == 1, torn)
                torn = 0
            except (serial.SerialException, OSError) as e:
                self._reconnect(e)
                self._heard = time.monotonic()
                answer = None
            if isinstance(answer, bytes):
                return answer
            if answer is _DAMAGED or answer is _REFUSED:
                noisy += 1
                silent = 0  # the line is alive: only silence in a row means it is not
                # A damaged answer no longer than the board's refusal of a damaged frame most likely was
                # one: send the frame again rather than ask for a reply the board may not have.
                if (
                    answer is _DAMAGED
                    and mtype != wire.T_REPLAY
                    and noisy <= self.noisy_retries
                    and self._bad_len > _REFUSAL
                ):
                    piece = self._replay_piece(len(frame), self._bad_len)
                    if piece:
                        reply = self._replay(mtype, seq, frame, piece)
                        if reply is not None:
                            return reply
                        self._working = False  # the board holds no reply to this request: send it again
            else:
                # A reply whose delimiter was lost sits torn in the decoder; end it so the next one decodes.
                if self.decoder.n:
                    self.errors.frame(self.decoder.n + 1, True)
                self.decoder.feed(b"\x00", 0, 1)
                self.decoder.status = wire.F_NONE
                boost = min(2 * boost, 64.0)
                torn = 1
                if answer is _LOST:  # silence for an RTO, not for the timeout: resend early
                    self.stats["resends"] += 1
                    continue
                silent += 1
                silences += 1
                self._heard = time.monotonic()  # the next silent timeout starts now
            if silent > self.retries or noisy > self.noisy_retries:
                raise BoardTimeout(
                    f"no valid answer from {self.port} to {wire.message_name(mtype)}: {silences} silent "
                    f"timeouts ({silent} in a row, {wait:.1f} s each), {noisy} damaged answers"
                )
            self.stats["retries"] += 1

    def _replay_piece(self, sent: int, length: int) -> int:
        """Bytes per REPLAY piece that get a damaged reply of about `length`
        bytes (encoded) through in the fewest expected round trips, or 0 when
        resending the `sent`-byte request for the whole reply again is as cheap
        (a short request, a good line) or the board cannot replay."""
        if not self.replay or length <= 0:
            return 0
        lnq = -math.log1p(-min(self.errors.rate, 0.5))  # a frame of n bytes gets through with exp(-n lnq)
        best, cost = 0, math.exp(min(700.0, (sent + length) * lnq))
        ask = 2 * _FRAME_BYTES + wire.REPLAY.req_size + wire.REPLAY.resp_size  # bytes a piece costs beyond its own
        for k in range(1, 65):
            piece = -(-length // k)
            if piece > wire.REPLAY_MAX:
                continue
            c = k * math.exp(min(700.0, (ask + piece) * lnq))
            if c < cost:
                best, cost = piece, c
            if piece <= 16:
                break
        return best

    def _replay(self, mtype: int, seq: int, frame: bytes, piece: int) -> bytes | None:
        """The reply to request `seq` (sent as `frame`) from the board's cache,
        `piece` bytes per REPLAY; each piece is its own request (resent until it
        arrives whole) and the reassembled frame passes the same CRC check as any
        other. None when the board holds no reply to that request."""
        crc = zlib.crc32(_unstuff(frame)[: -wire.CRC_SIZE])
        data = bytearray()
        total = -1
        while len(data) != total:
            rseq = self._next_seq()
            ask = protocol.encode_replay(seq, crc, len(data), piece)
            self.stats["replays"] += 1
            try:
                p = self._exchange(
                    wire.T_REPLAY, rseq, wire.encode_frame(wire.T_REPLAY, rseq, ask, self.tag), self.timeout, None
                )
                total, offset, chunk = protocol.decode_replay(p)
            except (FirmwareError, ProtocolError):
                # A piece the board cannot give (its cached reply is not the one we had in part): fall back
                # to resending the request, which the board answers from its cache or runs once.
                self.stats["replay_fallbacks"] = self.stats.get("replay_fallbacks", 0) + 1
                return None
            if total == 0 or offset != len(data) or not chunk:
                return None
            data += chunk
        dec = wire.FrameDecoder()
        if dec.feed(data, 0, len(data)) != len(data) or dec.status != wire.F_OK or dec.seq != seq:
            return None  # not the reply to this request after all: ask again
        self.errors.frame(len(data), False)
        return self._accept(mtype, dec.mtype, bytes(dec.payload()))

    def _probe_replay(self, seq: int, frame: bytes) -> None:
        """Learn whether the board answers REPLAY. A firmware from before it
        answers `unknown-type`, and that answer takes the place of its cached
        reply, which would make a resent request run again: so ask right after
        an INFO (safe to run again), about that INFO, and never otherwise."""
        self.replay = None
        rseq = self._next_seq()
        ask = protocol.encode_replay(seq, zlib.crc32(_unstuff(frame)[: -wire.CRC_SIZE]), 0, 0)
        try:
            self._exchange(wire.T_REPLAY, rseq, wire.encode_frame(wire.T_REPLAY, rseq, ask, 0), self.timeout, None)
        except FirmwareError as e:
            if e.code != wire.E_UNKNOWN:
                raise
            self.replay = False
        else:
            self.replay = True

    def _await(
        self,
        seq: int,
        mtype: int,
        sent: int,
        wait: float,
        boost: float,
        progress: ProgressFn | None,
        first: bool,
        torn: int,
    ) -> bytes | object | None:
        """Listen for the answer to the frame just sent (`sent` bytes long).

        Returns the reply's payload; _DAMAGED when an answer arrived damaged
        (its length in _bad_len) or _REFUSED when the board says our frame did
        (resend now); _LOST when the board, heard within `wait`, went quiet for
        the RTO before any frame of ours came, or in the middle of a frame (its
        delimiter was lost: resend); None after `wait` seconds without a byte.
        Once a progress frame says the board works on this request (from then
        on, `_working`), only a torn frame or `wait` seconds of silence end the
        wait, as ever: a long request is not resent while the board works.
        After silence the board may answer the torn rest of our last frame
        (which the resend's opening delimiter ends) before the resend itself:
        the first `torn` refusals count only if nothing follows them at once.
        Samples the board's turnaround for the RTO (Karn: only after a first
        send) and every frame for the byte error rate.
        """
        dec = self.decoder
        byte_time = self._byte_time()
        start = time.monotonic()
        working = self._working  # a frame of ours came: the board has the request
        if working:
            deadline = self._heard + wait
        else:
            deadline = min(start + boost * self.rto(mtype, wait) + sent * byte_time, self._heard + wait)
        torn_gap = boost * 2 * _RTO_FLOOR + 32 * byte_time  # silence inside a frame: its delimiter was lost
        turn = 2 * _RTO_FLOOR + sent * byte_time  # the board's answer to our frame right behind another
        begun = start  # when the frame being decoded began to arrive
        size = 0  # bytes of the frame being decoded
        refused = False  # a refusal was waited out
        while True:
            now = time.monotonic()
            if now >= deadline:
                if refused:  # nothing followed it: it was about our frame
                    return _REFUSED
                return None if now >= self._heard + wait else _LOST
            # A read returns as soon as a byte arrives; its timeout only says how soon a deadline is noticed.
            poll = _POLL if deadline - now < _SLOW_POLL else _SLOW_POLL
            if self.ser.timeout != poll:
                self.ser.timeout = poll
            data = self.ser.read(max(1, self.ser.in_waiting))
            if not data:
                continue
            now = time.monotonic()
            i, n = 0, len(data)
            while i < n:
                if not dec.n:
                    begun = now
                j = dec.feed(data, i, n)
                size += j - i
                i = j
                if dec.status == wire.F_NONE:
                    continue
                length, size = size, 0
                if dec.status == wire.F_BAD:
                    self._heard = now  # a frame came, though damaged: the line is alive
                    self.stats["bad_frames"] += 1
                    self.errors.frame(length, True)
                    if progress is not None and length <= _SHORT:
                        continue  # most likely a progress frame: the reply is still to come
                    self._bad_len = length
                    self._working = False  # it has answered
                    return _DAMAGED  # damaged reply: ask again, the board replays it
                self.errors.frame(length, False)
                rtype, payload = dec.mtype, bytes(dec.payload())
                if rtype == wire.T_ERROR | wire.RESP and payload and payload[0] in _RESEND:
                    self._heard = now
                    self.stats["bad_frames"] += 1
                    self.errors.frame(sent, True)
                    if torn:  # perhaps about the torn rest of our last frame: our answer follows at once
                        torn -= 1
                        refused = True
                        continue
                    return _REFUSED
                if dec.seq != seq:
                    continue  # a stale reply to an earlier attempt (not a sign of this request's life)
                self._heard = now
                if not working:
                    working = self._working = True
                    self.errors.frame(sent, False)
                    if first:
                        self._estimator(mtype).add(begun - start - sent * byte_time)
                if rtype == wire.T_PROGRESS | wire.RESP:
                    if progress is not None and len(payload) == wire.PROGRESS.resp_size:
                        progress(*protocol.decode_progress(payload))
                    continue
                return self._accept(mtype, rtype, payload)
            if dec.n:  # a frame is arriving: the rest of it follows at once, or its delimiter was lost
                self._heard = now
                deadline = now + min(torn_gap, wait)
            elif refused:
                deadline = now + min(turn, wait)
            elif working:  # the board works on this request: only silence for `wait` is trouble
                deadline = self._heard + wait

    @staticmethod
    def _accept(mtype: int, rtype: int, payload: bytes) -> bytes:
        """The payload of a whole reply of ours; its error as an exception."""
        if rtype == wire.T_ERROR | wire.RESP:
            code, message = protocol.decode_error(payload) if payload else (wire.E_INTERNAL, "")
            raise firmware_error(code, message)
        if rtype != mtype | wire.RESP:
            raise ProtocolError(f"reply {wire.message_name(rtype & ~wire.RESP)} to request {wire.message_name(mtype)}")
        return payload


def _unstuff(frame: bytes) -> bytes:
    """An encoded frame's raw bytes (header, payload, CRC)."""
    raw = bytearray(frame[:-1])
    return bytes(raw[: wire.cobs_decode(raw, len(raw))])
