# The analog bus's client link on the board side, over any byte stream: the
# unix port reaches the front end process through a Unix socket
# (hal_emulated.py), the RV32 board through its multiplexed UART
# (hal_port.py, which creates its link before the firmware loads, so the
# buffers are not carved out of a heap that imports have fragmented).
import struct

import afe_bus as bus

TX_SIZE = 4096


def _hal_error(message):
    from errors import HALError  # the firmware's, imported once the firmware is there

    return HALError(message)


class AFELink:
    """One connection to the analog front end process over a byte stream
    (write(buf), readinto(buf, n) -> n): ops queue in tx, and commit() sends
    them as one message and leaves the reply body in rx."""

    def __init__(self, stream):
        self.sock = stream
        self.tx = bytearray(TX_SIZE)
        self.txmv = memoryview(self.tx)
        self.n = 2
        self.head = bytearray(bus.REPLY_HEAD_SIZE)
        self.rx = bytearray(256)
        self.rxmv = memoryview(self.rx)
        self.sent = 0  # messages sent so far
        self.described = None  # the board description, once asked

    def room(self, size):
        return self.n + 1 + size <= TX_SIZE

    def op(self, op, size=0):
        """Queue op with size argument bytes; returns where the arguments go."""
        if not self.room(size):
            raise _hal_error("bus transaction too long")
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
            raise _hal_error("analog front end closed the bus")
        length, status = struct.unpack_from(bus.REPLY_HEAD, self.head, 0)
        if length > len(self.rx):
            raise _hal_error("bus reply too long")
        if length:
            self.sock.readinto(self.rxmv[:length], length)
        if status:
            raise _hal_error("front end: " + bytes(self.rx[:length]).decode())
        return length

    def info(self):
        """The board description (Converters' info tuple) from OP_INFO, asked once: it does not change. Decoded
        here, not with board_wiring.decode_info (the same layout; a test holds them together): on the rv32 board
        that module's names, loaded after the firmware, need a qstr pool its fragmented heap cannot give."""
        if self.described is None:
            self.op(bus.OP_INFO)
            self.commit()
            rx = self.rx
            rows, cols, dac_bits, vfs, adc_bits, t_sample, one_t1r, nr = struct.unpack_from(bus.INFO_FMT, rx, 0)
            off = bus.INFO_SIZE
            ranges = struct.unpack_from("<" + str(nr) + "f", rx, off)
            off += 4 * nr
            name = bytes(rx[off + 1 : off + 1 + rx[off]]).decode()
            self.described = rows, cols, dac_bits, vfs, adc_bits, t_sample, one_t1r, ranges, name
        return self.described
