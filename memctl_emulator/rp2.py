"""The emulated rp2 board's launcher side: MicroPython's rp2 port (the UF2 `memctl build-mpy --target rp2` makes)
running in rp2040js under node (memctl_emulator/rp2/board.mjs), its USB CDC serial port relayed to the host's pty,
its SPI bus and GPIO to the chip models of the front end process, its flash a 2 MB image file that outlives a
reset and a relaunch.

Boot is a Pico's: MicroPython mounts its littlefs filesystem and runs main.py, the memctl boot stub, from it. The
launcher provisions the flash as a factory would (the firmware image, the limits, the board description) by
writing a littlefs image before the first boot; `memctl flash` installs onto a bare one over the USB REPL instead.
machine.reset() (an update's reboot) ends the node process with REBOOT_EXIT; the launcher boots it again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from memctl_emulator.hal_backends import uart_mux as mux
from memctl_emulator.mpy_build import TARGETS, BuildError, bootrom, missing_tools
from memctl_emulator.mpy_build import firmware as mpy_firmware
from memctl_emulator.rv32 import SCRIPT, QemuUart, collect_script, script_code
from memctl_shared import board_wiring as wiring

HERE = Path(__file__).resolve().parent / "rp2"
HARNESS = HERE / "board.mjs"
TARGET = TARGETS["rp2"]
FLASH_SIZE = 2 * 1024 * 1024  # the Pico's W25Q16
FS_BASE = 0xA0000  # the rp2 port's filesystem: the last 1408 KB (MICROPY_HW_FLASH_STORAGE_BYTES)
FS_BLOCK = 4096
FS_PROG = 256  # _boot.py mounts with progsize=256
READY = "memctl firmware ready"
GATE_STEP = 1 / 125e6  # the pulse gate's state machine runs at the RP2040's 125 MHz system clock (hal/rp2_board.py)


class Rp2Unavailable(RuntimeError):
    """Something the rp2 board needs is not installed; the message says what to run."""


def npm_ci_command() -> str:
    return f"npm ci --prefix {HERE}"


def check() -> tuple[Path, Path]:
    """(UF2, bootrom) of the rp2 board, or Rp2Unavailable naming what to install."""
    missing = missing_tools(TARGET)
    if missing:
        raise Rp2Unavailable(
            f"the rp2 target needs Node.js (18 or later) and the ARM toolchain: apt-get install {' '.join(TARGET.apt)}"
            f" (missing {', '.join(missing)})"
        )
    if not (HERE / "node_modules" / "rp2040js" / "package.json").exists():
        lock = HERE / "package-lock.json"
        raise Rp2Unavailable(f"the rp2 target needs rp2040js (pinned in {lock}): {npm_ci_command()}")
    try:
        return mpy_firmware("rp2"), bootrom()
    except BuildError as e:
        raise Rp2Unavailable(str(e)) from None


def chip_pins(rows: int, cols: int, one_t1r: bool) -> list[int]:
    """The GPIOs wired to the chips (the harness forwards their edges), for an array of this size."""
    dac, adc, _, _, _ = wiring.wiring(rows, cols, one_t1r)
    pins = [*dac, *adc, wiring.PIN_SWITCH_SYNC, *wiring.PIN_MUX_A, wiring.PIN_MUX_EN]
    if max(pins) > 29:
        raise ValueError(f"the rp2 board drives arrays up to 32 x 32 (GPIO 0-29), not {rows} x {cols}")
    return pins


def write_flash(folder: str | os.PathLike, image: str | os.PathLike) -> None:
    """A flash image whose filesystem holds folder's files, as the rp2 port mounts it (littlefs 2)."""
    from littlefs import LittleFS

    blocks = (FLASH_SIZE - FS_BASE) // FS_BLOCK
    fs = LittleFS(block_size=FS_BLOCK, block_count=blocks, prog_size=FS_PROG, read_size=32, lookahead_size=32)
    root = Path(folder)
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_dir():
            fs.mkdir(rel)
        else:
            with fs.open(rel, "wb") as fh:
                fh.write(p.read_bytes())
    data = bytearray(b"\xff" * FLASH_SIZE)
    data[FS_BASE:] = fs.context.buffer
    Path(image).write_bytes(data)


def read_flash(image: str | os.PathLike, path: str) -> bytes:
    """A file from the filesystem of a flash image."""
    from littlefs import LittleFS

    data = Path(image).read_bytes()[FS_BASE:]
    fs = LittleFS(block_size=FS_BLOCK, block_count=len(data) // FS_BLOCK, prog_size=FS_PROG, read_size=32, mount=False)
    fs.context.buffer[:] = data
    fs.mount()
    with fs.open(path, "rb") as fh:
        return fh.read()


def node_command(uf2: Path, rom: Path, flash: str, pins: list[int], reply_fd: int) -> list[str]:
    return [
        "node",
        str(HARNESS),
        "--uf2",
        str(uf2),
        "--bootrom",
        str(rom),
        "--flash",
        flash,
        "--pins",
        ",".join(map(str, pins)),
        "--gate",
        str(wiring.PIN_GATE),
        "--reply-fd",
        str(reply_fd),
        "--quiet-pwm",
        str(wiring.PIN_ADC_CLKIN),
    ]


class Rp2Line(QemuUart):
    """The node harness's pipes: its output is uart_mux frames (HOST: USB CDC bytes; AFE: a bus request) and
    console text; host bytes go in raw on its stdin, bus replies raw on another pipe. Until the firmware's ready line,
    the USB CDC bytes are also read as console text (the boot messages a Pico prints)."""

    def __init__(
        self,
        proc: subprocess.Popen,
        host_fd: int | None,
        afe_socket: str | None,
        console: Callable[[str], None],
        host_in: int,
        reply_in: int,
        work: str,
    ):
        self.host_in = host_in
        self.reply_in = reply_in
        self.ready = False
        super().__init__(proc, host_fd, afe_socket, work, console, firmware=False)
        self.muxed.set()  # the USB serial port carries host bytes from the start

    def _send(self, chan: int, payload: bytes) -> None:
        fd = self.reply_in if chan == mux.AFE else self.host_in
        view = memoryview(payload)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            pass  # the board is gone (reset, powered off)

    def _read(self) -> None:
        try:
            super()._read()
        finally:
            for fd in (self.host_in, self.reply_in):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _to_host(self, data: bytes) -> None:
        if not self.ready:
            for i in range(len(data)):
                self._text(data[i : i + 1])
            self.ready = any(READY in line for line in self.lines[-3:])
        super()._to_host(data)


def start(
    spawn: Callable[..., subprocess.Popen],
    flash: str,
    host_fd: int | None,
    afe_socket: str | None,
    console: Callable[[str], None],
    pins: list[int],
    work: str,
) -> tuple[subprocess.Popen, Rp2Line]:
    """Start the harness on a flash image (spawn: subprocess.Popen or the launcher's); returns the process and
    its line."""
    uf2, rom = check()
    host_out, host_in = os.pipe()
    reply_out, reply_in = os.pipe()
    os.set_blocking(host_out, False)  # the harness polls for host bytes between instruction batches
    try:
        proc = spawn(
            node_command(uf2, rom, flash, pins, reply_out),
            stdin=host_out,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(reply_out,),
        )
    except BaseException:
        os.close(host_in)
        os.close(reply_in)
        raise
    finally:
        os.close(host_out)
        os.close(reply_out)
    return proc, Rp2Line(proc, host_fd, afe_socket, console, host_in, reply_in, work)


def run_script(
    script: str | Path,
    files: str | Path,
    args: list[str] = (),  # type: ignore[assignment]
    timeout: float = 600.0,
) -> list[str]:
    """Run a MicroPython script on the rp2 board's MicroPython (simulated time: ticks_us x 125 counts its
    cycles): the folder `files` is its flash, mounted as / by the port. It finds [script, *args] in its global
    ARGV. Returns the lines it printed; RuntimeError with its output if it raised."""
    with tempfile.TemporaryDirectory(prefix="memctl-rp2-script-") as tmp:
        root = Path(tmp, "flash")
        shutil.copytree(files, root)
        (root / SCRIPT).write_text(Path(script).read_text())
        image = str(Path(tmp, "flash.bin"))
        write_flash(root, image)
        out: list[str] = []
        proc, line = start(subprocess.Popen, image, None, None, out.append, [], tmp)

        def begin() -> None:
            deadline = time.monotonic() + timeout
            while not any("raw REPL" in x for x in out) and b"raw REPL" not in line.text:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise TimeoutError
                line._send(mux.HOST, b"\r\x03\x01")  # interrupt whatever runs, raw REPL
                time.sleep(0.5)
            line._send(mux.HOST, script_code(script, args) + b"\x04")

        return collect_script(proc, line, out, script, "rp2", timeout, begin)
