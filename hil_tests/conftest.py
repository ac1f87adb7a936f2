"""Fixtures: a fresh emulated board per test module, and a connected Board."""

from __future__ import annotations

import time

import pytest
import serial

import memctl
from memctl_emulation import EmulatedBoard
from memctl_emulation.launcher import HALS
from memctl_firmware import wire


@pytest.fixture(scope="module", params=HALS, autouse=True)
def hal(request):
    """Every HIL test runs on both firmware front ends: semantic bus operations
    ("emulated") and the reference board's chip drivers against chip-level
    models ("board"). Boards a test starts itself follow it through $MEMCTL_HAL."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEMCTL_HAL", request.param)
        yield request.param


@pytest.fixture(scope="module")
def emu(hal):
    with EmulatedBoard(seed=1234) as e:
        yield e


@pytest.fixture(scope="module")
def board(emu):
    with memctl.Board(emu.port, progress=False) as b:
        yield b


@pytest.fixture
def afe(emu):
    client = emu.afe()
    yield client
    client.close()


class RawPort:
    """Raw frame access to the board, bypassing the SDK's own checks."""

    def __init__(self, port: str):
        self.ser = serial.serial_for_url(port, timeout=0.05)
        self.dec = wire.FrameDecoder()

    def close(self) -> None:
        self.ser.close()

    def send(self, data: bytes) -> None:
        self.ser.write(data)

    def frames(self, timeout: float = 3.0, count: int | None = None) -> list[tuple[int, int, bytes]]:
        """Collect (type, seq, payload) frames, progress frames aside, until
        `count` have arrived or the timeout passes."""
        out: list[tuple[int, int, bytes]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.ser.read(max(1, self.ser.in_waiting))
            i = 0
            while i < len(data):
                i = self.dec.feed(data, i, len(data))
                if self.dec.status == wire.F_OK:
                    if self.dec.mtype == wire.T_PROGRESS | wire.RESP:
                        continue
                    out.append((self.dec.mtype, self.dec.seq, bytes(self.dec.payload())))
                    if count is not None and len(out) >= count:
                        return out
        return out

    def request(self, mtype: int, seq: int, payload: bytes = b"") -> tuple[int, int, bytes]:
        self.send(wire.encode_frame(mtype, seq, payload))
        frames = self.frames(count=1)
        assert frames, "no reply"
        return frames[0]


@pytest.fixture
def raw(board, emu):
    r = RawPort(emu.port)
    yield r
    r.close()
