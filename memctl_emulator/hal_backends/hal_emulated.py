# Emulated backend for the MicroPython unix port: the UART is a pseudo-
# terminal opened by path, and the analog front end is another process
# reached over a Unix socket speaking memctl_emulator/hal_backends/afe_bus.py.
import os
import select
import socket
import struct
import termios

from afe_link import AFELink
from bus_front_end import BusFrontEnd


class PtyUart:
    def __init__(self, path):
        self.f = open(path, "r+b")
        fd = self.f.fileno()
        termios.setraw(fd)
        attr = termios.tcgetattr(fd)
        # VMIN=0, VTIME=0: a read returns what is there instead of blocking
        # until the buffer fills; poll() provides the wait.
        attr[6][6] = 0
        attr[6][5] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attr)
        self.poll = select.poll()
        self.poll.register(self.f, select.POLLIN)

    def readinto(self, buf, timeout_ms):
        if not self.poll.poll(timeout_ms):
            return 0
        n = self.f.readinto(buf)
        return n or 0

    def write(self, buf, n):
        mv = memoryview(buf)
        done = 0
        while done < n:
            w = self.f.write(mv[done:n])
            done += w or 0


def afe_socket(path):
    """A Unix-socket stream to the analog front end process."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(struct.pack("H", socket.AF_UNIX) + path.encode() + b"\x00")
    return sock


def semantic_front_end(afe_path):
    return BusFrontEnd(AFELink(afe_socket(afe_path)))


def connect(front_end=semantic_front_end):
    """(uart, front end, flash folder) from the launcher's environment;
    front_end(AFE socket path) builds the front end (memctl_emulator/hal_backends/hal_chips.py
    passes the chips backend's)."""
    uart_path = os.getenv("MEMCTL_UART")
    afe_path = os.getenv("MEMCTL_AFE")
    if not uart_path or not afe_path:
        raise ValueError("emulated boards need MEMCTL_UART and MEMCTL_AFE")
    return PtyUart(uart_path), front_end(afe_path), os.getenv("MEMCTL_FLASH") or ""
