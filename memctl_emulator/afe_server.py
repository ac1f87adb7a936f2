"""The analog front end as its own process, like a separate analog chip.

Serves the bus protocol of memctl_emulator/hal_backends/afe_bus.py on a Unix socket. Several
clients may connect (the firmware, and a test's debug client reading ground
truth); one lock serializes them, as one physical array would.
"""

from __future__ import annotations

import argparse
import socket
import socketserver
import struct
import sys
import threading

import numpy as np

from memctl.devices import load_device
from memctl_emulator.afe import AFEConfig, AnalogFrontEnd
from memctl_emulator.chips.bus import ChipProtocolError
from memctl_emulator.chips.front_end import ChipFrontEndModel
from memctl_emulator.hal_backends import afe_bus as bus
from memctl_shared import board_wiring as wiring

_ARG_STRUCTS = {op: struct.Struct(fmt) for op, fmt in bus.OP_ARGS.items()}
_BOARD_OPS = (bus.OP_PIN, bus.OP_SPI, bus.OP_FRAME, bus.OP_XFER, bus.OP_STROBE)  # the chips backend's wires


def execute(afe: AnalogFrontEnd, body: bytes, board: ChipFrontEndModel | None = None) -> bytes:
    """Run one transaction's ops in order; returns their concatenated results.
    board: the chip-level model the chips backend's wires reach."""
    out = bytearray()
    i, n = 0, len(body)
    while i < n:
        op = body[i]
        i += 1
        st = _ARG_STRUCTS.get(op)
        if st is None:
            raise ValueError(f"unknown op {op}")
        if i + st.size > n:
            raise ValueError(f"truncated arguments for op {op}")
        args = st.unpack_from(body, i)
        i += st.size
        if op in _BOARD_OPS and board is None:
            raise ValueError("no board model on this bus")
        if op == bus.OP_FILL:
            afe.fill(*args)
        elif op == bus.OP_SET:
            afe.set_line(*args)
        elif op == bus.OP_LINES:
            group, first, count = args
            end = i + 2 * count
            if end > n:
                raise ValueError("truncated line codes")
            afe.set_lines(group, first, np.frombuffer(body, "<i2", count, i).astype(np.int32))
            i = end
        elif op in (bus.OP_SPI, bus.OP_XFER, bus.OP_FRAME):
            end = i + args[-1]
            if end > n:
                raise ValueError("truncated SPI transfer")
            data = body[i:end]
            i = end
            if op == bus.OP_XFER:
                rx = bytearray(len(data))
                board.spi.write_readinto(data, rx)
                out += rx
            elif op == bus.OP_SPI:
                board.spi.write(data)
            else:
                board.set_pin(args[0], 0)
                board.spi.write(data)
                board.set_pin(args[0], 1)
        elif op == bus.OP_PIN:
            board.set_pin(*args)
        elif op == bus.OP_STROBE:
            board.strobe(args[0])
        elif op == bus.OP_PULSE:
            afe.pulse(args[0])
        elif op == bus.OP_SAMPLE:
            out += afe.sample(*args).tobytes()
        elif op == bus.OP_FLOAT:
            afe.float_line(*args)
        elif op == bus.OP_WAIT:
            afe.wait(args[0])
        elif op == bus.OP_GATE:
            afe.set_gate(*args)
        elif op == bus.OP_RANGES:
            lo, hi = afe.xbar.ranges()
            out += np.stack([lo, hi], axis=-1).astype("<f8").tobytes()
        elif op == bus.OP_STATS:
            frames, windows = (board.frames, board.windows) if board is not None else (0, 0)
            peaks = (afe.max_pulse_v, afe.max_pulse_width, afe.max_read_v)
            out += struct.pack(bus.STATS_FMT, afe.pulses, afe.conversions, frames, windows, *peaks)
            if args[0]:
                afe.clear_peaks()
        elif op == bus.OP_INFO:
            out += info_blob(afe.config)
        elif op == bus.OP_CLOCK:
            out += struct.pack("<q", round(afe.clock * 1e9))  # the clock advances in whole ns
        elif op == bus.OP_FAULT and args[0] == bus.FAULT_ADC_MISO:
            if board is None:
                raise ValueError("no board model on this bus")
            board.stick_adc_miso(args[1], int(args[3]))
            out += struct.pack("<I", afe.brownouts)
        elif op == bus.OP_FAULT:
            out += struct.pack("<I", afe.fault(*args))
        elif op == bus.OP_PEAKS:
            out += afe.device_peaks.astype("<f8").tobytes()
        elif op == bus.OP_TRUTH:
            out += struct.pack("<I", afe.pulses) + afe.xbar.conductance.astype("<f8").tobytes()
    return bytes(out)


def board_info(c: AFEConfig) -> tuple:
    """The board description (memctl_shared/board_wiring.py) of the array this front end drives."""
    one_t1r = int(c.cell == "1T1R")
    return (c.rows, c.cols, c.dac_bits, c.dac_full_scale, c.adc_bits, c.sample_time, one_t1r, c.current_ranges, c.name)


def info_blob(c: AFEConfig) -> bytes:
    return wiring.encode_info(board_info(c))


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        server: AFEServer = self.server  # type: ignore[assignment]
        while True:
            head = _recv_exact(sock, 2)
            if head is None:
                return
            (length,) = struct.unpack(bus.MSG_HEAD, head)
            body = _recv_exact(sock, length)
            if body is None:
                return
            afe = server.afe
            with server.lock:
                try:
                    result, status = execute(afe, body, server.board), 0
                except (ValueError, struct.error, ChipProtocolError) as exc:
                    result, status = str(exc).encode()[:1000], 1
                browned, afe.powered = not afe.powered, True
            if browned:  # power lost during this transaction: its sender never hears back
                while sock.recv(4096):
                    pass
                return
            sock.sendall(struct.pack(bus.REPLY_HEAD, len(result), status) + result)


class AFEServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, afe: AnalogFrontEnd):
        self.afe = afe
        self.board = ChipFrontEndModel(afe)
        self.lock = threading.Lock()
        super().__init__(path, _Handler)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="memctl emulated analog front end")
    ap.add_argument("--socket", required=True)
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--cols", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None, help="preset name or device file")
    ap.add_argument("--line-resistance", type=float, default=0.0)
    ap.add_argument("--cell", default="0T1R", choices=["0T1R", "1T1R"])
    a = ap.parse_args(argv)
    config = AFEConfig(
        rows=a.rows, cols=a.cols, device=load_device(a.device), line_resistance=a.line_resistance, cell=a.cell
    )
    afe = AnalogFrontEnd(config, seed=a.seed)
    with AFEServer(a.socket, afe) as server:
        print(f"AFE READY {a.socket}", flush=True)
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
