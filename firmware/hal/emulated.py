# Emulated backend for the MicroPython unix port: the UART is a pseudo-
# terminal opened by path, and the analog front end is another process
# reached over a Unix socket speaking hal/afe_bus.py.
import os
import select
import socket
import struct

import termios
from errors import HALError
from hal import afe_bus as bus

_TX_SIZE = 4096


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


class FrontEnd:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(struct.pack("H", socket.AF_UNIX) + path.encode() + b"\x00")
        self.tx = bytearray(_TX_SIZE)
        self.txmv = memoryview(self.tx)
        self.n = 2
        self.head = bytearray(bus.REPLY_HEAD_SIZE)
        self.rx = bytearray(256)
        self.rxmv = memoryview(self.rx)
        self._op(bus.OP_INFO)
        self.commit()
        rows, cols, dac_bits, vfs, adc_bits, t_sample, one_t1r, nr = struct.unpack_from(bus.INFO_FMT, self.rx, 0)
        self.one_t1r = bool(one_t1r)
        off = bus.INFO_SIZE
        self.ranges = struct.unpack_from("<" + str(nr) + "f", self.rx, off)
        off += 4 * nr
        self.name = bytes(self.rx[off + 1 : off + 1 + self.rx[off]]).decode()
        self.rows = rows
        self.cols = cols
        self.dac_max = (1 << (dac_bits - 1)) - 1
        self.adc_max = (1 << (adc_bits - 1)) - 1
        self.v_full_scale = vfs
        self.v_lsb = vfs / self.dac_max
        self.sample_time = t_sample
        self.rx = bytearray(max(4 * cols, 256))
        self.rxmv = memoryview(self.rx)
        self.last_range = 0

    def dac_code(self, v):
        c = int(round(v / self.v_lsb))
        if not -self.dac_max - 1 <= c <= self.dac_max:
            raise HALError("voltage outside DAC range")
        return c

    def quantize(self, v):
        return self.dac_code(v) * self.v_lsb

    def lsb(self, range_index):
        return self.ranges[range_index] / self.adc_max

    def _op(self, op):
        if self.n + 8 > _TX_SIZE:
            raise HALError("bus transaction too long")
        self.tx[self.n] = op
        self.n += 1

    def fill(self, group, v):
        self._op(bus.OP_FILL)
        struct.pack_into("<Bh", self.tx, self.n, group, self.dac_code(v))
        self.n += 3

    def set_line(self, group, line, v):
        self._op(bus.OP_SET)
        struct.pack_into("<BHh", self.tx, self.n, group, line, self.dac_code(v))
        self.n += 5

    def set_lines(self, group, values, n):
        self._op(bus.OP_LINES)
        if self.n + 5 + 2 * n > _TX_SIZE:
            raise HALError("bus transaction too long")
        struct.pack_into("<BHH", self.tx, self.n, group, 0, n)
        self.n += 5
        for i in range(n):
            struct.pack_into("<h", self.tx, self.n, self.dac_code(values[i]))
            self.n += 2

    def pulse(self, width_s):
        self._op(bus.OP_PULSE)
        struct.pack_into("<I", self.tx, self.n, int(width_s * 1e9 + 0.5))
        self.n += 4

    def float_line(self, group, line):
        self._op(bus.OP_FLOAT)
        struct.pack_into("<BH", self.tx, self.n, group, bus.ALL_LINES if line < 0 else line)
        self.n += 3

    def gate(self, row, on):
        self._op(bus.OP_GATE)
        struct.pack_into("<BH", self.tx, self.n, 1 if on else 0, bus.ALL_LINES if row < 0 else row)
        self.n += 3

    def wait(self, seconds):
        self._op(bus.OP_WAIT)
        struct.pack_into("<I", self.tx, self.n, int(seconds * 1e6 + 0.5))
        self.n += 4

    def sample(self, range_index, integration_s=0.0):
        self._op(bus.OP_SAMPLE)
        struct.pack_into("<BI", self.tx, self.n, range_index, int(integration_s * 1e9 + 0.5))
        self.n += 5
        self.last_range = range_index

    def clock(self):
        self._op(bus.OP_CLOCK)
        self.commit()
        return struct.unpack_from("<d", self.rx, 0)[0]

    def code(self, col):
        return struct.unpack_from("<i", self.rx, 4 * col)[0]

    def current(self, col):
        return self.code(col) * self.ranges[self.last_range] / self.adc_max

    def commit(self):
        struct.pack_into(bus.MSG_HEAD, self.tx, 0, self.n - 2)
        self.sock.write(self.txmv[: self.n])
        self.n = 2
        if self.sock.readinto(self.head, bus.REPLY_HEAD_SIZE) != bus.REPLY_HEAD_SIZE:
            raise HALError("analog front end closed the bus")
        length, status = struct.unpack_from(bus.REPLY_HEAD, self.head, 0)
        if length > len(self.rx):
            raise HALError("bus reply too long")
        if length:
            self.sock.readinto(self.rxmv[:length], length)
        if status:
            raise HALError("front end: " + bytes(self.rx[:length]).decode())


def connect():
    uart_path = os.getenv("MEMCTL_UART")
    afe_path = os.getenv("MEMCTL_AFE")
    if not uart_path or not afe_path:
        raise ValueError("emulated HAL needs MEMCTL_UART and MEMCTL_AFE")
    return PtyUart(uart_path), FrontEnd(afe_path), os.getenv("MEMCTL_FLASH") or ""
