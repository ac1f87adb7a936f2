# The analog bus's client on the board side, over any byte stream: the
# unix port reaches the front end process through a Unix socket
# (hal_emulated.py), the RV32 board through its multiplexed UART
# (hal_port.py). BusFrontEnd drives the front end in semantic operations.
import struct

import afe_bus as bus
from errors import HALError
from hal.frontend import Converters, ticks

_TX_SIZE = 4096


class AFELink:
    """One connection to the analog front end process over a byte stream
    (write(buf), readinto(buf, n) -> n): ops queue in tx, and commit() sends
    them as one message and leaves the reply body in rx."""

    def __init__(self, stream):
        self.sock = stream
        self.tx = bytearray(_TX_SIZE)
        self.txmv = memoryview(self.tx)
        self.n = 2
        self.head = bytearray(bus.REPLY_HEAD_SIZE)
        self.rx = bytearray(256)
        self.rxmv = memoryview(self.rx)
        self.sent = 0  # messages sent so far

    def room(self, size):
        return self.n + 1 + size <= _TX_SIZE

    def op(self, op, size=0):
        """Queue op with size argument bytes; returns where the arguments go."""
        if not self.room(size):
            raise HALError("bus transaction too long")
        self.tx[self.n] = op
        self.n += 1 + size
        return self.n - size

    def queue(self, op, size):
        """op() for write-only traffic: a full message is sent first instead of refused."""
        if not self.room(size):
            self.commit()
        return self.op(op, size)

    def reply_room(self, size):
        if len(self.rx) < size:
            self.rx = bytearray(size)
            self.rxmv = memoryview(self.rx)

    def commit(self):
        struct.pack_into(bus.MSG_HEAD, self.tx, 0, self.n - 2)
        self.sock.write(self.txmv[: self.n])
        self.n = 2
        self.sent += 1
        if self.sock.readinto(self.head, bus.REPLY_HEAD_SIZE) != bus.REPLY_HEAD_SIZE:
            raise HALError("analog front end closed the bus")
        length, status = struct.unpack_from(bus.REPLY_HEAD, self.head, 0)
        if length > len(self.rx):
            raise HALError("bus reply too long")
        if length:
            self.sock.readinto(self.rxmv[:length], length)
        if status:
            raise HALError("front end: " + bytes(self.rx[:length]).decode())
        return length

    def info(self):
        """The board description (Converters' info tuple) from OP_INFO."""
        self.op(bus.OP_INFO)
        self.commit()
        rows, cols, dac_bits, vfs, adc_bits, t_sample, one_t1r, nr = struct.unpack_from(bus.INFO_FMT, self.rx, 0)
        off = bus.INFO_SIZE
        ranges = struct.unpack_from("<" + str(nr) + "f", self.rx, off)
        off += 4 * nr
        name = bytes(self.rx[off + 1 : off + 1 + self.rx[off]]).decode()
        return rows, cols, dac_bits, vfs, adc_bits, t_sample, one_t1r, ranges, name


class BusFrontEnd(Converters):
    """The front end in semantic bus operations, one message per commit()."""

    def __init__(self, link):
        self.link = link
        Converters.__init__(self, self.link.info())
        self.link.reply_room(4 * self.cols)

    def fill(self, group, v):
        o = self.link.op(bus.OP_FILL, 3)
        struct.pack_into("<Bh", self.link.tx, o, group, self.dac_code(v))

    def set_line(self, group, line, v):
        o = self.link.op(bus.OP_SET, 5)
        struct.pack_into("<BHh", self.link.tx, o, group, line, self.dac_code(v))

    def set_lines(self, group, values, n):
        o = self.link.op(bus.OP_LINES, 5 + 2 * n)
        tx = self.link.tx
        struct.pack_into("<BHH", tx, o, group, 0, n)
        for i in range(n):
            struct.pack_into("<h", tx, o + 5 + 2 * i, self.dac_code(values[i]))

    def pulse(self, width_s):
        struct.pack_into("<I", self.link.tx, self.link.op(bus.OP_PULSE, 4), ticks(width_s))

    def float_line(self, group, line):
        o = self.link.op(bus.OP_FLOAT, 3)
        struct.pack_into("<BH", self.link.tx, o, group, bus.ALL_LINES if line < 0 else line)

    def gate(self, row, on):
        o = self.link.op(bus.OP_GATE, 3)
        struct.pack_into("<BH", self.link.tx, o, 1 if on else 0, bus.ALL_LINES if row < 0 else row)

    def wait(self, seconds):
        struct.pack_into("<I", self.link.tx, self.link.op(bus.OP_WAIT, 4), int(seconds * 1e6 + 0.5))

    def sample(self, range_index, integration_s=0.0, col=-1):
        o = self.link.op(bus.OP_SAMPLE, 5)
        struct.pack_into("<BI", self.link.tx, o, range_index, ticks(integration_s))
        self.last_range = range_index

    def clock(self):
        self.link.op(bus.OP_CLOCK)
        self.link.commit()
        return struct.unpack_from("<q", self.link.rx, 0)[0]

    def code(self, col):
        return struct.unpack_from("<i", self.link.rx, 4 * col)[0]

    def commit(self):
        self.link.commit()
