"""CPython client of the emulated analog bus: ground truth for tests and
benchmarks (true conductances, pulse count, board clock), never used by the
firmware, which has its own MicroPython client in memctl_emulator/hal_backends/hal_emulated.py."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

import numpy as np

from memctl_emulator.hal_backends import afe_bus as bus


@dataclass(frozen=True)
class FrontEndStats:
    """What the front end saw: counts since it started, peaks since they were last cleared."""

    pulses: int
    conversions: int
    chip_frames: int  # SPI transfers that reached the chip models (chips backend)
    gate_windows: int  # pulse gate windows (chips backend)
    peak_pulse_v: float  # largest |V| across any device during a pulse
    peak_width: float  # longest pulse, s
    peak_read_v: float  # largest |V| across any device during a conversion (reads, VMM)


class AFEClient:
    def __init__(self, path: str, rows: int, cols: int):
        self.rows, self.cols = rows, cols
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)

    def close(self) -> None:
        self.sock.close()

    def transact(self, ops: bytes) -> bytes:
        self.sock.sendall(struct.pack(bus.MSG_HEAD, len(ops)) + ops)
        length, status = struct.unpack(bus.REPLY_HEAD, self._recv(bus.REPLY_HEAD_SIZE))
        body = self._recv(length)
        if status:
            raise RuntimeError(f"AFE error: {body.decode()}")
        return body

    def _recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("AFE closed the connection")
            buf += chunk
        return bytes(buf)

    def truth(self) -> tuple[int, np.ndarray]:
        """(pulses applied so far, true conductance matrix in S)."""
        body = self.transact(bytes([bus.OP_TRUTH]))
        (pulses,) = struct.unpack_from("<I", body, 0)
        return pulses, np.frombuffer(body, "<f8", offset=4).reshape(self.rows, self.cols).copy()

    def device_peaks(self) -> np.ndarray:
        """Per device, the largest |V_row - V_col| a pulse put across it since peaks were last cleared
        (stats(clear=True)), V."""
        body = self.transact(bytes([bus.OP_PEAKS]))
        return np.frombuffer(body, "<f8").reshape(self.rows, self.cols).copy()

    def ranges(self) -> tuple[np.ndarray, np.ndarray]:
        """Each device's lowest and highest reachable conductance, S."""
        both = np.frombuffer(self.transact(bytes([bus.OP_RANGES])), "<f8").reshape(self.rows, self.cols, 2)
        return both[..., 0].copy(), both[..., 1].copy()

    def stats(self, *, clear: bool = False) -> FrontEndStats:
        """Counts and peaks; clear=True starts new peaks after reporting these."""
        return FrontEndStats(*struct.unpack(bus.STATS_FMT, self.transact(bytes([bus.OP_STATS, int(clear)]))))

    def fault(self, kind: int, row: int = 0, col: int = 0, value: float = 0.0) -> int:
        """Inject a fault (afe_bus FAULT_*); returns the brown-outs so far."""
        body = self.transact(struct.pack("<BBHHf", bus.OP_FAULT, kind, row, col, value))
        return struct.unpack("<I", body)[0]

    def clock(self) -> float:
        """Board time in seconds."""
        return struct.unpack("<q", self.transact(bytes([bus.OP_CLOCK])))[0] * 1e-9
