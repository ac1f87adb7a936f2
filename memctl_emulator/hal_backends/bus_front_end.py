# The front end in semantic bus operations (afe_bus.py) over an AFELink
# (afe_link.py): the unix port's emulated backend and the RV32 board's.
import struct

import afe_bus as bus
from hal.frontend import Converters, ticks


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
