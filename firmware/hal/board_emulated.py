# The board backend in emulation: machine.SPI / machine.Pin stand-ins and
# the pulse timer, forwarded to the chip models of emulation/chips over the
# analog bus (afe_bus OP_PIN / OP_SPI / OP_XFER / OP_STROBE). Writes queue;
# a transfer that reads, the clock and sync() send the queue, in order.
import struct

from hal import afe_bus as bus
from hal.board import FrontEnd
from hal import emulated
from hal.emulated import AFESocket


class Pin:
    def __init__(self, link, number):
        self.link = link
        self.number = number
        self.level = -1

    def __call__(self, level=None):
        if level is None:
            return self.level
        level = 1 if level else 0
        if level != self.level:  # an unchanged output makes no edge
            self.level = level
            link = self.link
            if not link.room(3):
                link.commit()
            struct.pack_into("<HB", link.tx, link.op(bus.OP_PIN, 3), self.number, level)


class SPI:
    def __init__(self, link):
        self.link = link

    def _queue(self, op, buf):
        link = self.link
        n = len(buf)
        if not link.room(2 + n):
            link.commit()
        o = link.op(op, 2 + n)
        struct.pack_into("<H", link.tx, o, n)
        link.tx[o + 2 : o + 2 + n] = buf

    def write(self, buf):
        self._queue(bus.OP_SPI, buf)

    def write_readinto(self, tx, rx):
        self._queue(bus.OP_XFER, tx)
        n = self.link.commit()
        rx[:n] = self.link.rxmv[:n]


class Timer:
    def __init__(self, link):
        self.link = link

    def _op(self, op, value):
        link = self.link
        if not link.room(4):
            link.commit()
        struct.pack_into("<I", link.tx, link.op(op, 4), value)

    def pulse(self, ns):
        self._op(bus.OP_STROBE, ns)

    def sleep_us(self, us):
        self._op(bus.OP_WAIT, us)

    def seconds(self):
        self.link.op(bus.OP_CLOCK)
        self.link.commit()
        return struct.unpack_from("<d", self.link.rx, 0)[0]

    def sync(self):
        if self.link.n > 2:
            self.link.commit()


def board_front_end(afe_path):
    link = AFESocket(afe_path)
    return FrontEnd(SPI(link), lambda n: Pin(link, n), Timer(link), link.info())


def connect():
    return emulated.connect(board_front_end)
