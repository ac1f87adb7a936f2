"""Request/response over a serial line, with retries and progress frames.

Any pyserial URL works (a device path, socket://host:port, loop://), so the
same code talks to a real board, the emulated board or a test double.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import serial

from memctl import protocol
from memctl.errors import BoardTimeout, PortError, ProtocolError, firmware_error
from memctl_shared import wire

ProgressFn = Callable[[int, int], None]

# Errors the firmware sends when our request arrived damaged: resend it.
_RESEND = (wire.E_CRC, wire.E_FRAME, wire.E_TOO_LONG)
_DAMAGED = object()  # _await's answer when a frame arrived damaged
_GRACE = 0.03  # s to keep listening after a damaged frame before resending


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
        self.ser = self._open()
        self.decoder = wire.FrameDecoder()
        # Random start so a new session never repeats the last session's
        # (seq, request) pair that the firmware keeps for idempotency.
        self._seq = random.randrange(1, 0x10000)
        self.stats = {"requests": 0, "retries": 0, "bad_frames": 0, "reconnects": 0}

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

    def fit(self, size: int) -> None:
        """Adapt the frame budget: halve it after trouble, grow it back slowly."""
        self.budget = max(64, min(self.max_payload, size))

    def close(self) -> None:
        self.ser.close()

    def _next_seq(self) -> int:
        self._seq = self._seq % 0xFFFF + 1
        return self._seq

    def request(
        self, mtype: int, payload: bytes = b"", *, timeout: float | None = None, progress: ProgressFn | None = None
    ) -> bytes:
        """Send one request; return the response payload.

        Resends the identical frame (same sequence number) on silence, on a
        damaged reply, or when the board says our frame arrived damaged; the
        firmware answers a repeat from its cache instead of acting twice.
        `retries` bounds the silent timeouts in a row; damaged answers (a noisy but
        live line) are resent at once, up to `noisy_retries` times.
        """
        seq = self._next_seq()
        frame = wire.encode_frame(mtype, seq, payload, 0 if mtype == wire.T_INFO else self.tag)
        self.stats["requests"] += 1
        wait = self.timeout if timeout is None else timeout
        silent = silences = noisy = 0
        while True:
            try:
                # A resend opens with a delimiter: if the last one lost its own, the board's decoder
                # drops the torn bytes as one bad frame instead of gluing them to this one.
                self.ser.write(b"\x00" + frame if silent or noisy else frame)
                answer = self._await(seq, mtype, wait, progress)
            except (serial.SerialException, OSError) as e:
                self._reconnect(e)
                answer = None
            if isinstance(answer, bytes):
                if not silent and not noisy:
                    self.fit(self.budget + self.budget // 4)
                return answer
            if answer is _DAMAGED:
                noisy += 1
                silent = 0  # the line is alive: only silence in a row means it is not
            else:
                silent += 1
                silences += 1
                # A reply whose delimiter was lost sits torn in the decoder; end it so the next one decodes.
                self.decoder.feed(b"\x00", 0, 1)
                self.decoder.status = wire.F_NONE
            if silent > self.retries or noisy > self.noisy_retries:
                raise BoardTimeout(
                    f"no valid answer from {self.port} to {wire.message_name(mtype)}: {silences} silent timeouts "
                    f"({silent} in a row, {wait:.1f} s each), {noisy} damaged answers"
                )
            self.stats["retries"] += 1
            self.fit(self.budget // 2)

    def _await(self, seq: int, mtype: int, wait: float, progress: ProgressFn | None) -> bytes | object | None:
        """The reply's payload; _DAMAGED for a damaged frame; None on silence."""
        dec = self.decoder
        deadline = time.monotonic() + wait
        damaged = False
        while time.monotonic() < deadline:
            data = self.ser.read(max(1, self.ser.in_waiting))
            i, n = 0, len(data)
            while i < n:
                i = dec.feed(data, i, n)
                if dec.status == wire.F_BAD:
                    self.stats["bad_frames"] += 1
                    if progress is None:
                        return _DAMAGED  # damaged reply: resend, the board replays it
                    # A long command: maybe the reply, maybe one of its progress
                    # frames; listen a little longer before resending.
                    damaged = True
                    deadline = min(deadline, time.monotonic() + _GRACE)
                    continue
                if dec.status != wire.F_OK:
                    continue
                rtype, payload = dec.mtype, bytes(dec.payload())
                if rtype == wire.T_ERROR | wire.RESP and payload and payload[0] in _RESEND:
                    self.stats["bad_frames"] += 1
                    return _DAMAGED
                if dec.seq != seq:
                    continue  # a stale reply to an earlier attempt
                if rtype == wire.T_PROGRESS | wire.RESP:
                    deadline = time.monotonic() + wait
                    damaged = False
                    if progress is not None and len(payload) == wire.PROGRESS.resp_size:
                        progress(*protocol.decode_progress(payload))
                    continue
                if rtype == wire.T_ERROR | wire.RESP:
                    code, message = protocol.decode_error(payload) if payload else (wire.E_INTERNAL, "")
                    raise firmware_error(code, message)
                if rtype != mtype | wire.RESP:
                    raise ProtocolError(
                        f"reply {wire.message_name(rtype & ~wire.RESP)} to request {wire.message_name(mtype)}"
                    )
                return payload
        return _DAMAGED if damaged else None
