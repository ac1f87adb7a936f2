# The chips backend in emulation: machine.SPI / machine.Pin stand-ins and
# the pulse timer, forwarded to the chip models of memctl_emulator/chips over the
# analog bus (afe_bus OP_PIN / OP_SPI / OP_FRAME / OP_XFER / OP_STROBE). Writes queue;
# a transfer that reads, the clock and sync() send the queue, in order.
import struct

import afe_bus as bus
from afe_link import AFELink
from hal.chips import ChipFrontEnd


class Wires:
    """The emulated board's GPIO and SPI traffic on one link. A chip-select
    edge down, one write and the edge back up travel as one OP_FRAME: the
    models see the same three events, the link carries one op instead of three."""

    def __init__(self, link):
        self.link = link
        self.sel = -1  # pin whose falling edge is the last op queued, and where that op starts
        self.sel_at = 0
        self.frame = -1  # pin whose OP_FRAME is the last op queued
        self.mark = (-1, -1)  # (link.sent, link.n) right after either

    def _last(self):
        return self.mark == (self.link.sent, self.link.n)

    def pin(self, number, level):
        link = self.link
        if level and number == self.frame and self._last():
            self.frame = -1  # the frame already ends with this edge
            return
        o = link.queue(bus.OP_PIN, 3)
        struct.pack_into("<HB", link.tx, o, number, level)
        self.sel, self.sel_at = (-1, 0) if level else (number, o - 1)
        self.mark = (link.sent, link.n)

    def write(self, op, buf):
        link = self.link
        n = len(buf)
        if op == bus.OP_SPI and self.sel >= 0 and self._last() and link.room(n + 1):
            o = self.sel_at  # turn the select edge into a frame
            link.tx[o] = bus.OP_FRAME
            struct.pack_into("<HH", link.tx, o + 1, self.sel, n)
            link.tx[o + 5 : o + 5 + n] = buf
            link.n = o + 5 + n
            self.frame, self.sel = self.sel, -1
            self.mark = (link.sent, link.n)
            return
        o = link.queue(op, 2 + n)
        struct.pack_into("<H", link.tx, o, n)
        link.tx[o + 2 : o + 2 + n] = buf
        self.sel = self.frame = -1


class Pin:
    def __init__(self, wires, number):
        self.wires = wires
        self.number = number
        self.level = -1

    def __call__(self, level=None):
        if level is None:
            return self.level
        level = 1 if level else 0
        if level != self.level:  # an unchanged output makes no edge
            self.level = level
            self.wires.pin(self.number, level)


class SPI:
    def __init__(self, wires):
        self.wires = wires
        self.link = wires.link

    def write(self, buf):
        self.wires.write(bus.OP_SPI, buf)

    def write_readinto(self, tx, rx):
        self.wires.write(bus.OP_XFER, tx)
        n = self.link.commit()
        rx[:n] = self.link.rxmv[:n]


class Timer:
    def __init__(self, link):
        self.link = link

    def _op(self, op, value):
        struct.pack_into("<I", self.link.tx, self.link.queue(op, 4), value)

    def pulse(self, ns):
        self._op(bus.OP_STROBE, ns)

    def sleep_us(self, us):
        self._op(bus.OP_WAIT, us)

    def ns(self):
        self.link.op(bus.OP_CLOCK)
        self.link.commit()
        return struct.unpack_from("<q", self.link.rx, 0)[0]

    def sync(self):
        if self.link.n > 2:
            self.link.commit()


def chip_front_end(link):
    """The reference board's drivers, their SPI and GPIO reaching the chip models over link (an AFELink)."""
    wires = Wires(link)
    return ChipFrontEnd(SPI(wires), lambda n: Pin(wires, n), Timer(link), link.info())


def connect():
    import hal_emulated

    return hal_emulated.connect(lambda path: chip_front_end(AFELink(hal_emulated.afe_socket(path))))
