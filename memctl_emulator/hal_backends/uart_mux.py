# One UART, three channels: how the emulated RV32 board (hal_port.py) shares
# QEMU virt's only serial port between the host link, the analog bus and its
# flash filesystem with the launcher (memctl_emulator/rv32.py), which
# demultiplexes it. Shared by both sides, like afe_bus.py; written in the
# subset MicroPython and CPython both run.
#
# frame: SYNC, channel, <H payload length, payload. Board -> launcher, bytes
# outside frames are console text (print, tracebacks, the REPL); SYNC is not
# ASCII, so text never starts a frame. Launcher -> board, frames only, once
# the board has switched the line over (hal_port.boot()).
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


SYNC = const(0xA5)
HEAD = "<BBH"
HEAD_SIZE = const(4)
MAX_PAYLOAD = const(8192)

HOST = const(0)  # the memctl wire protocol, byte stream both ways
AFE = const(1)  # analog bus messages (afe_bus.py): one request frame, one reply frame
FLASH = const(2)  # flash requests below: one request frame, one reply frame

# Flash: request = op byte, the op's struct, then the path (UTF-8, relative to
# the flash root, "/" separated) and for F_WRITE / F_RENAME what follows it.
# Reply = status byte (0 ok, else an errno), then the result.
F_STAT = const(1)  # "" path -> <BI kind (KIND_*), size
F_LIST = const(2)  # "" path -> entries: kind byte, name, NUL
F_READ = const(3)  # <IH offset, n, path -> up to n bytes
F_WRITE = const(4)  # <IH offset, path length, path, data -> nothing; offset 0 truncates (creates)
F_REMOVE = const(5)  # "" path -> nothing
F_MKDIR = const(6)  # "" path -> nothing
F_RMDIR = const(7)  # "" path -> nothing
F_RENAME = const(8)  # <H old path length, old path, new path -> nothing (replaces new)
KIND_FILE = const(1)
KIND_DIR = const(2)
READ_MAX = const(1024)  # largest F_READ answer
