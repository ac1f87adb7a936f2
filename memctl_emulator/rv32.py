"""The emulated RV32 board's launcher side: MicroPython's qemu port on
`qemu-system-riscv32 -machine virt`, its one UART demultiplexed
(hal_backends/uart_mux.py) into the host link (a pty, behind the launcher's
relay like the unix-port boards), the analog bus (the front end process's
socket) and the flash (a host folder that outlives QEMU restarts).

Boot: QEMU starts MicroPython's REPL; the launcher enters the raw REPL and
runs `hal_port.boot()` (frozen in the board's MicroPython build), which
switches the UART over, mounts the flash and runs main.py from it, as a
port's _boot.py would. machine.reset() ends QEMU (semihosting exit 0); the
launcher boots it again.
"""

from __future__ import annotations

import errno
import os
import re
import select
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from memctl_emulator.hal_backends import afe_bus as bus
from memctl_emulator.hal_backends import uart_mux as mux

RESET_EXIT = 0  # machine.reset() on the qemu port: exit(0) through semihosting
_BOOT = b"import hal_port\r\nhal_port.boot()\r\n"


def qemu_command(qemu: str, elf: Path, icount: bool = True) -> list[str]:
    cmd = [qemu, "-machine", "virt", "-bios", "none", "-display", "none", "-monitor", "none"]
    cmd += ["-serial", "stdio", "-semihosting", "-no-reboot", "-kernel", str(elf)]
    # Virtual time counts instructions (1 per ns): time.ticks_us() measures what the code costs on the target.
    return cmd + (["-icount", "shift=0"] if icount else [])


def _read_exact(read: Callable[[int], bytes], n: int) -> bytes:
    """n bytes from read(up_to); EOFError if the other end closed first."""
    out = bytearray()
    while len(out) < n:
        chunk = read(n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return bytes(out)


class FlashServer:
    """The board's flash: requests of uart_mux's F_* ops against a host folder."""

    def __init__(self, root: str):
        self.root = Path(root).resolve()

    def _path(self, rel: bytes) -> Path:
        p = (self.root / rel.decode()).resolve()
        if p != self.root and self.root not in p.parents:
            raise OSError(errno.EACCES, "outside the flash")
        return p

    def handle(self, req: bytes) -> bytes:
        try:
            return b"\0" + self._op(req)
        except OSError as e:
            return bytes([e.errno if e.errno and e.errno < 256 else errno.EIO])
        except (ValueError, IndexError, struct.error, UnicodeDecodeError):
            return bytes([errno.EINVAL])

    def _op(self, req: bytes) -> bytes:
        op, rest = req[0], req[1:]
        if op == mux.F_STAT:
            p = self._path(rest)
            st = p.stat()
            return struct.pack("<BI", mux.KIND_DIR if p.is_dir() else mux.KIND_FILE, st.st_size)
        if op == mux.F_LIST:
            p = self._path(rest)
            out = bytearray()
            for e in sorted(p.iterdir()):
                out += bytes([mux.KIND_DIR if e.is_dir() else mux.KIND_FILE]) + e.name.encode() + b"\0"
            return bytes(out)
        if op == mux.F_READ:
            offset, n = struct.unpack_from("<IH", rest)
            with open(self._path(rest[6:]), "rb") as fh:
                fh.seek(offset)
                return fh.read(min(n, mux.READ_MAX))
        if op == mux.F_WRITE:
            offset, plen = struct.unpack_from("<IH", rest)
            p = self._path(rest[6 : 6 + plen])
            data = rest[6 + plen :]
            with open(p, "r+b" if offset and p.exists() else "wb") as fh:
                fh.seek(offset)
                fh.write(data)
            return b""
        if op == mux.F_REMOVE:
            self._path(rest).unlink()
            return b""
        if op == mux.F_MKDIR:
            self._path(rest).mkdir()
            return b""
        if op == mux.F_RMDIR:
            self._path(rest).rmdir()
            return b""
        if op == mux.F_RENAME:
            (olen,) = struct.unpack_from("<H", rest)
            self._path(rest[2 : 2 + olen]).replace(self._path(rest[2 + olen :]))
            return b""
        raise OSError(errno.ENOSYS, f"flash op {op}")


class QemuUart:
    """Demultiplexes one QEMU board's UART; lives as long as that QEMU process."""

    def __init__(
        self,
        proc: subprocess.Popen,
        host_fd: int | None,
        afe_socket: str | None,
        flash: str,
        console: Callable[[str], None],
        firmware: bool = True,
    ):
        self.proc = proc
        self.firmware = firmware  # the memctl firmware runs (else a script): its end powers the board off
        self.host_fd = host_fd  # the firmware's end of the host pty (the relay holds the other); None: no host
        self.afe: socket.socket | None = None
        if afe_socket:
            self.afe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.afe.connect(afe_socket)
        self.flash = FlashServer(flash)
        self.console = console
        self.lock = threading.Lock()
        self.muxed = threading.Event()  # the board has switched the UART over
        self.ended = threading.Event()
        self.text = bytearray()  # console bytes not yet a full line
        self.lines: list[str] = []
        self.line_added = threading.Condition()
        threading.Thread(target=self._read, daemon=True, name="memctl-rv32-uart").start()
        if host_fd is not None:
            threading.Thread(target=self._pump_host, daemon=True, name="memctl-rv32-host").start()

    # -- board -> launcher --------------------------------------------------
    def _recv(self, n: int) -> bytes:
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        return _read_exact(lambda k: os.read(fd, k), n)

    def _read(self) -> None:
        try:
            while True:
                b = self._recv(1)
                if b[0] != mux.SYNC:
                    self._text(b)
                    continue
                _, chan, n = struct.unpack(mux.HEAD, b + self._recv(mux.HEAD_SIZE - 1))
                payload = self._recv(n)
                self.muxed.set()
                if chan == mux.HOST:
                    self._to_host(payload)
                elif chan == mux.AFE and self.afe is not None:
                    self._send(mux.AFE, self._afe(payload))
                elif chan == mux.FLASH:
                    self._send(mux.FLASH, self.flash.handle(payload))
                else:
                    self.console(f"[rv32] frame on unknown channel {chan} ({n} bytes) dropped")
        except (EOFError, OSError):
            pass
        finally:
            self.ended.set()
            if self.afe is not None:
                self.afe.close()
            with self.line_added:
                self.line_added.notify_all()

    def _text(self, b: bytes) -> None:
        if b == b"\n":
            line = self.text.decode(errors="replace").rstrip("\r")
            self.text.clear()
            self.console(line)
            with self.line_added:
                self.lines.append(line)
                self.line_added.notify_all()
        else:
            self.text += b
            if self.firmware and self.text.endswith(b"\x04>") and self.muxed.is_set():
                # The raw REPL is back: the firmware stopped (its traceback is in the log). A host's frames
                # would now be typed into the REPL: power the board off, as a dead firmware process is.
                self.console("firmware stopped: back at the REPL; the board is off")
                self.proc.kill()

    def _to_host(self, data: bytes) -> None:
        if self.host_fd is None:
            return
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.host_fd, view) :]
            except BlockingIOError:
                time.sleep(0.001)
            except OSError:
                return

    def _afe(self, msg: bytes) -> bytes:
        afe = self.afe
        assert afe is not None
        afe.sendall(msg)
        head = _read_exact(afe.recv, bus.REPLY_HEAD_SIZE)
        length, _ = struct.unpack(bus.REPLY_HEAD, head)
        return head + _read_exact(afe.recv, length)

    # -- launcher -> board --------------------------------------------------
    def _send(self, chan: int, payload: bytes) -> None:
        self._write(struct.pack(mux.HEAD, mux.SYNC, chan, len(payload)) + payload)

    def _write(self, data: bytes) -> None:
        with self.lock:
            stdin = self.proc.stdin
            assert stdin is not None
            stdin.write(data)
            stdin.flush()

    def _pump_host(self) -> None:
        """Host bytes (from the relay) to the board, once it reads frames."""
        while not self.ended.is_set():
            if not self.muxed.wait(0.1):
                continue
            ready, _, _ = select.select([self.host_fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self.host_fd, 4096)
                if data:
                    self._send(mux.HOST, data)
            except (OSError, ValueError):
                if self.ended.is_set():
                    return
                time.sleep(0.01)

    # -- boot ---------------------------------------------------------------
    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> tuple[str, int]:
        """The first console line from index start matching pattern, and the index after it."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.line_added:
            while True:
                for i in range(start, len(self.lines)):
                    if rx.search(self.lines[i]):
                        return self.lines[i], i + 1
                start = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or self.ended.is_set():
                    raise TimeoutError(pattern)
                self.line_added.wait(left)

    def boot(self, timeout: float, code: bytes = _BOOT) -> None:
        """From MicroPython's REPL to the firmware: raw REPL, then code (default hal_port.boot())."""
        self.wait_for(r"^MicroPython v", timeout)
        self._write(b"\r\x03\x03\x01")  # interrupt anything, raw REPL
        self._wait_text(b"raw REPL; CTRL-B to exit", timeout)
        self._write(code + b"\x04")

    def _wait_text(self, marker: bytes, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.text and not any(marker.decode() in line for line in self.lines[-3:]):
            if time.monotonic() > deadline or self.ended.is_set():
                raise TimeoutError(marker.decode())
            time.sleep(0.005)


DONE = "memctl-script-done"
FAILED = "memctl-script-failed"
SCRIPT = "__main_script__.py"


def script_code(script: str | Path, args: list[str], setup: str = "") -> bytes:
    """What the raw REPL runs to execute a script saved as SCRIPT on the board's flash: ports without sys.argv
    find [script, *args] in its global ARGV; DONE or FAILED (after the traceback) ends its output."""
    namespace = {"__name__": "__main__", "ARGV": [str(script), *map(str, args)]}
    return (
        "import sys\r\n"
        f"try:\r\n{setup} exec(open({SCRIPT!r}).read(), {namespace!r})\r\n"
        f"except BaseException as e:\r\n sys.print_exception(e)\r\n print({FAILED!r})\r\n"
        f"else:\r\n print({DONE!r})\r\n"
    ).encode()


def collect_script(
    proc: subprocess.Popen, uart: QemuUart, out: list[str], script: str | Path, where: str, timeout: float, begin
) -> list[str]:
    """begin() starts the script on the board whose console uart appends to out; returns what it printed once it
    ends (the board is powered off then); RuntimeError if it raised or did not finish in time."""
    try:
        begin()
        last, _ = uart.wait_for(f"{DONE}|{FAILED}", timeout)
    except TimeoutError:
        raise RuntimeError(f"{script} did not finish on {where} in {timeout:.0f} s:\n" + "\n".join(out[-30:])) from None
    finally:
        proc.kill()
        proc.wait()
    return script_output(out, last, script, where)


def script_output(out: list[str], last: str, script: str | Path, where: str) -> list[str]:
    """The lines a script printed (out: the console from the raw REPL on); RuntimeError if it raised."""
    start = next((i + 1 for i, x in enumerate(out) if "raw REPL" in x), 0)
    printed = [x[3:] if x.startswith(">OK") else x for x in out[start:]]
    printed = [x for x in printed if DONE not in x and FAILED not in x]
    if FAILED in last:
        raise RuntimeError(f"{script} failed on {where}:\n" + "\n".join(printed[-30:]))
    return printed


def run_script(
    elf: Path,
    script: str | Path,
    files: str | Path,
    args: list[str] = (),  # type: ignore[assignment]
    timeout: float = 300.0,
    qemu: str = "qemu-system-riscv32",
) -> list[str]:
    """Run a MicroPython script on the rv32 target (virtual time = instructions): the folder `files` is its
    flash, mounted as / (its changes stay there). The qemu port has no sys.argv: the script finds
    [script, *args] in its global ARGV. Returns the lines it printed; RuntimeError with its output if it
    raised."""
    flash = Path(files)
    (flash / SCRIPT).write_text(Path(script).read_text())
    code = b"import hal_port\r\n" + script_code(script, args, setup=" hal_port.mount()\r\n")
    out: list[str] = []
    proc = subprocess.Popen(qemu_command(qemu, elf), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        uart = QemuUart(proc, None, None, str(flash), out.append, firmware=False)
        return collect_script(proc, uart, out, script, "rv32", timeout, lambda: uart.boot(timeout, code))
    finally:
        (flash / SCRIPT).unlink(missing_ok=True)
