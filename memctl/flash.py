"""memctl flash: put a firmware image (memctl build-firmware) on a board.

A board running memctl is updated through the memctl protocol: the image's
files stream in chunks into the slot beside the running one, the board
checks every file against the manifest's SHA-256 hashes, switches fw/active
atomically and reboots into the new image; anything short of that leaves the
old firmware running. A board with MicroPython only gets its first install
through mpremote: the boot stub (main.py) and the image into slot a.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import serial

from memctl import protocol
from memctl.board import Board
from memctl.errors import BoardTimeout, FirmwareError, MemctlError, PortError, SessionLost
from memctl.firmware_image import ENTRY, ImageError, build, verify
from memctl.progress import progress_bar
from memctl_shared import wire

_ATTEMPTS = 3
BOOT_WAIT = 60.0  # s a freshly installed board has to answer INFO
READY_LINE = b"memctl firmware ready"  # what app.py prints once it serves
BOOT_QUIET = 5.0  # s of silence after which a rebooting board is taken to be up


class FlashError(MemctlError):
    """The update did not take; the board runs the firmware it ran before."""


def image_files(image: str | Path) -> tuple[dict, dict[str, bytes]]:
    """The verified manifest and every file of the image (manifest.json included)."""
    manifest = verify(image)
    with zipfile.ZipFile(image) as z:
        return manifest, {name: z.read(name) for name in sorted(z.namelist())}


def _check_compatible(manifest: dict, arch: str, force: bool) -> None:
    if arch and manifest["arch"] != arch:
        raise ImageError(
            f"the image is built for {manifest['arch']}; the board runs {arch} code "
            f"(memctl build-firmware --arch {arch})"
        )
    if manifest["protocol"] != wire.PROTOCOL_VERSION and not force:
        raise ImageError(
            f"the image speaks memctl protocol {manifest['protocol']}, this memctl speaks "
            f"{wire.PROTOCOL_VERSION}: the board could not be talked to afterwards (force=True to flash "
            "anyway, then use a matching memctl)"
        )


def _step(board: Board, step: int, value: int = 0, data: bytes = b"") -> tuple[int, bytes]:
    req = protocol.encode_update(step, value, data)
    # COMMIT is never resent across a reset: the reset may be the reboot into the new image.
    p = board.link.request(wire.T_UPDATE, req) if step == wire.U_COMMIT else board._request(wire.T_UPDATE, req)
    got, value, rest = protocol.decode_update(p)
    if got != step:
        raise FlashError(f"board answered update step {got} to step {step}")
    return value, rest


def _stream(board: Board, files: dict[str, bytes], advance: Callable[[int], None]) -> None:
    chunk = protocol.update_room(board.info().max_payload)
    _step(board, wire.U_BEGIN)
    for name, data in files.items():
        _step(board, wire.U_FILE, len(data), name.encode())
        for off in range(0, len(data), chunk):
            written, _ = _step(board, wire.U_DATA, off, data[off : off + chunk])
            if written != min(off + chunk, len(data)):
                raise FlashError(f"board has {written} bytes of {name}, expected {min(off + chunk, len(data))}")
            advance(min(chunk, len(data) - off))


def update(board: Board, image: str | Path, *, force: bool = False, progress: bool | None = None) -> str:
    """Update a board running memctl to `image`; returns the new image hash
    (as INFO reports it). FlashError if the board does not end up running it."""
    manifest, files = image_files(image)
    _check_compatible(manifest, board.info().arch, force)
    want = manifest["image_hash"][:16]
    for attempt in range(_ATTEMPTS):
        try:
            with progress_bar("firmware update", sum(map(len, files.values())), progress) as advance:
                _stream(board, files, advance)
            break
        except (SessionLost, BoardTimeout, FirmwareError) as e:  # a reset or a refused chunk: start over
            if attempt == _ATTEMPTS - 1 or (isinstance(e, FirmwareError) and "begin again" not in e.message):
                raise FlashError(f"update failed, the board keeps its firmware: {e}") from e
    boot = board.info().boot_id
    try:
        _step(board, wire.U_COMMIT)
    except (SessionLost, BoardTimeout):
        pass  # committed, and the reply was lost to the reboot - or not: INFO tells
    except FirmwareError as e:
        raise FlashError(f"the board refused the image and keeps its firmware: {e.message}") from e
    _await_boot(board.link.ser, BOOT_WAIT)
    running = _wait_for_boot(board, boot)
    if running != want:
        raise FlashError(
            f"the board rebooted into image {running}, not {want}: the new image did not start, "
            "so the board went back to the previous one"
        )
    return running


def _wait_for_boot(board: Board, boot: int) -> str:
    """INFO's image once the board has rebooted (its boot id changes)."""
    for _ in range(10):
        try:
            info = board.info()
        except BoardTimeout:
            continue
        if info.boot_id != boot:
            board.resync()
            return info.image
    raise FlashError("the board did not come back after the update")


# -- first install (MicroPython only on the board) -------------------------
def _mpremote(port: str, *args: str, timeout: float = 120.0) -> str:
    cmd = [sys.executable, "-m", "mpremote", "connect", port, "resume", *args]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as e:  # pragma: no cover - sys.executable always exists
        raise PortError(str(e)) from e
    except subprocess.TimeoutExpired as e:
        raise FlashError(f"mpremote timed out on {port}") from e
    if out.returncode != 0:
        if "No module named mpremote" in out.stderr:
            raise FlashError("mpremote is not installed: pip install 'memctl[firmware]'")
        raise FlashError(f"mpremote failed on {port}: {(out.stderr or out.stdout).strip()[-500:]}")
    return out.stdout


def board_arch(port: str) -> str:
    """The .mpy architecture of the MicroPython on `port` (asked over its REPL)."""
    out = _mpremote(port, "exec", "import sys; print('MPY', sys.implementation._mpy)")
    for line in out.splitlines():
        if line.startswith("MPY "):
            a = int(line.split()[1]) >> 10
            return wire.MPY_ARCHES[a] if a < len(wire.MPY_ARCHES) else "unknown"
    raise FlashError(f"no answer from MicroPython's REPL on {port}: {out.strip()[-200:]}")


# Run on the board before the copy: fw/ exists and fw/a is gone (a reinstall starts clean).
_CLEAR_SLOT_A = """import os
def rm(p):
    if os.stat(p)[0] & 0x4000:
        for n in os.listdir(p):
            rm(p + '/' + n)
        os.rmdir(p)
    else:
        os.remove(p)
try:
    os.mkdir('fw')
except OSError:
    pass
try:
    rm('fw/a')
except OSError:
    pass
"""


def install(port: str, image: str | Path) -> dict:
    """First install through MicroPython's REPL with mpremote: the boot stub
    as main.py and the image in slot a; then a hard reset boots it."""
    manifest, files = image_files(image)
    _check_compatible(manifest, board_arch(port), False)
    with tempfile.TemporaryDirectory(prefix="memctl-flash-") as tmp:
        root = Path(tmp)
        for name, data in files.items():
            dst = root / "fw" / "a" / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(data)
        (root / "fw" / "active").write_text("a")
        (root / "main.py").write_bytes(files[ENTRY])
        # fw/ first, main.py last: a board cut off mid-copy has no main.py and stays at its REPL.
        _mpremote(
            port,
            "exec",
            _CLEAR_SLOT_A,
            "+",
            "fs",
            "cp",
            "-r",
            str(root / "fw" / "a"),
            ":fw/a",
            "+",
            "fs",
            "cp",
            str(root / "fw" / "active"),
            ":fw/active",
            "+",
            "fs",
            "cp",
            str(root / "main.py"),
            ":main.py",
            "+",
            "reset",
        )
    return manifest


def _await_boot(ser: serial.SerialBase, timeout: float) -> None:
    """Listen, sending nothing, to a rebooting board until it says the firmware is ready, or has been quiet for
    BOOT_QUIET s (a real board may have said it before the port reopened). On a board whose console is the link
    a 0x03 in a host frame would be a Ctrl-C while MicroPython boots (mounting its filesystem): the REPL, not
    the firmware."""
    deadline = time.monotonic() + timeout
    heard, quiet_since = b"", time.monotonic()
    try:
        while time.monotonic() < deadline and time.monotonic() - quiet_since < BOOT_QUIET:
            data = ser.read(256)
            if data:
                heard = (heard + data)[-256:]
                quiet_since = time.monotonic()
                if READY_LINE in heard:
                    return
    except (serial.SerialException, OSError):
        time.sleep(1.0)  # the port is away while the board re-enumerates: give it a moment


def flash(
    port: str,
    image: str | Path | None = None,
    *,
    out: str | Path | None = None,
    force: bool = False,
    progress: bool | None = None,
    timeout: float = 1.0,
) -> str:
    """Install or update: a board answering the memctl protocol is updated
    over it, anything else gets a first install through mpremote. Without an
    image, one is built (into `out`) for the board's architecture. Returns
    the image hash the board runs afterwards."""
    out = out or tempfile.mkdtemp(prefix="memctl-image-")
    try:
        board = Board(port, timeout=timeout, retries=1, progress=False)
    except (BoardTimeout, FirmwareError):
        board = None
    if board is not None:
        with board:
            arch = board.info().arch
        # The probe's short timeout says quickly whether memctl answers; the update itself gets the link's own
        # (flash writes on a microcontroller take their time).
        with Board(port, progress=False) as b:
            return update(b, image or build(out, arch), force=force, progress=progress)
    want = install(port, image or build(out, board_arch(port)))["image_hash"][:16]
    # The board boots the image: it should answer INFO with its hash. Nothing is sent while it boots (on a board
    # whose console is the link, a 0x03 in a frame before the firmware turns Ctrl-C off would stop the boot at the
    # REPL): first its ready line, or a second of silence. Then one request resent with its own seq while the
    # board loads is answered once and then from the board's cache.
    try:
        with serial.serial_for_url(port, timeout=0.1) as ser:
            _await_boot(ser, BOOT_WAIT)
    except (serial.SerialException, OSError):
        pass  # not there yet: the INFO requests below wait for it
    deadline = time.monotonic() + BOOT_WAIT
    while time.monotonic() < deadline:
        try:
            with Board(port, timeout=timeout, retries=8, progress=False) as b:
                running = b.info().image
        except (BoardTimeout, FirmwareError):
            continue
        if running != want:
            raise FlashError(f"the board runs image {running} after installing {want}")
        return running
    raise FlashError(f"installed image {want}, but the board on {port} does not answer memctl INFO")
