"""Fixtures: a fresh emulated board per test module, and a connected Board."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import serial

import memctl
from memctl.firmware_image import FIRMWARE_DIR
from memctl_emulator import EmulatedBoard, rp2
from memctl_emulator.launcher import HALS, EmulationError, rv32_firmware
from memctl_shared import wire

BOARD_TARGETS = ("rv32", "rp2")


def pytest_generate_tests(metafunc):
    """Every HIL test runs on both firmware front ends of the unix target; a module that sets RV32 = True also
    on the rv32 target (MicroPython on a 32-bit RISC-V under QEMU), as does a test marked rv32, and likewise
    RP2 = True or a test marked rp2 on the rp2 target (MicroPython's rp2 port on an emulated RP2040). A test
    marked rv32(only=True) or rp2(only=True) runs there alone."""
    if "hal" in metafunc.fixturenames:
        hals, only = list(HALS), []
        for target in BOARD_TARGETS:
            marker = metafunc.definition.get_closest_marker(target)
            if getattr(metafunc.module, target.upper(), False) or marker:
                hals.append(target)
            if marker and marker.kwargs.get("only"):
                only.append(target)
        metafunc.parametrize("hal", only or hals, scope="module", indirect=True)


@pytest.fixture(scope="module", autouse=True)
def hal(request):
    """Semantic bus operations ("emulated"), the reference board's chip drivers
    against chip-level models ("chips"), the rv32 board's own backend
    ("rv32") or the rp2 board's (the chip drivers on machine.SPI, Pin and
    PIO: "rp2"). A fixture that starts a board depends on this one (so it
    starts again for each); boards a test starts itself follow it through
    $MEMCTL_HAL."""
    if request.param == "rv32":
        try:
            rv32_firmware()
        except EmulationError as e:
            pytest.skip(f"rv32 target left out: {e}")
    if request.param == "rp2":
        try:
            rp2.check()
        except rp2.Rp2Unavailable as e:
            pytest.skip(f"rp2 target left out: {e}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEMCTL_HAL", request.param)
        yield request.param


@pytest.fixture(scope="session", autouse=True)
def started_boards():
    """Every emulated board the HIL tests start, in order."""
    started: list[EmulatedBoard] = []
    original = EmulatedBoard.start

    def start(self: EmulatedBoard) -> EmulatedBoard:
        original(self)
        started.append(self)
        return self

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(EmulatedBoard, "start", start)
        yield started


@pytest.fixture(autouse=True)
def board_matches_label(hal, started_boards):
    """A test labelled with a front end runs on boards whose firmware booted
    that front end: the ones running when it starts (module fixtures) and the
    ones it starts itself."""

    def check(boards) -> None:
        for b in boards:
            booted = b.front_end == hal or (b.bare and b.front_end is None)  # a bare board's REPL runs no firmware
            assert b.hal == hal and booted, f"[{hal}] test on a board whose firmware booted {b.front_end!r}"

    started_boards[:] = [b for b in started_boards if b.alive()]
    first = len(started_boards)
    check(started_boards)
    yield
    check(started_boards[first:])


@pytest.fixture(scope="session")
def rv32_flash(tmp_path_factory):
    """A function giving a fresh flash folder holding the firmware image compiled for rv32 (for
    memctl_emulator.rv32.run_script), and the rv32 MicroPython build."""
    from memctl_emulator.launcher import rv32_firmware, rv32_image

    elf = rv32_firmware()
    image = rv32_image(str(FIRMWARE_DIR))

    def fresh() -> Path:
        return Path(shutil.copytree(image, tmp_path_factory.mktemp("rv32-flash"), dirs_exist_ok=True))

    return elf, fresh


@pytest.fixture(scope="module")
def emu(hal):
    with EmulatedBoard(seed=1234, hal=hal) as e:
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
