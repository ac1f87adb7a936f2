# AD5676R (Analog Devices): 8-channel, 16-bit voltage-output DAC on SPI.
# One 24-bit frame per command, MSB first, framed by SYNC (low while the 24
# bits shift in, latched on its rising edge): C3..C0 command, A3..A0 channel
# (0-7), D15..D0 data. SPI mode 1 (data latched on SCLK falling edges).
# A driver in the micropython-lib style: no allocation after __init__.
try:
    from micropython import const
except ImportError:  # CPython (chip-level tests)

    def const(x):
        return x


CMD_NOP = const(0x0)
CMD_WRITE_INPUT = const(0x1)  # input register n (DAC output changes on LDAC)
CMD_UPDATE = const(0x2)  # DAC register n from its input register
CMD_WRITE_UPDATE = const(0x3)  # input and DAC register n: the output changes now
CMD_POWER = const(0x4)  # two bits per channel in D15..D0 (channel 7 highest)
CMD_LDAC_MASK = const(0x5)
CMD_RESET = const(0x6)  # software reset (power-on state)
CMD_REFERENCE = const(0x7)  # D0 = 1: internal reference off
CMD_DAISY = const(0x8)
CMD_READBACK = const(0x9)  # the next frame's SDO carries channel n's input register

POWER_NORMAL = const(0)
POWER_1K = const(1)  # output to ground through 1 kohm
POWER_100K = const(2)
POWER_TRISTATE = const(3)


class AD5676:
    def __init__(self, spi, sync):
        """spi: a machine.SPI (mode 1, MSB first); sync: a machine.Pin output."""
        self.spi = spi
        self.sync = sync
        self.buf = bytearray(3)
        self.rx = bytearray(3)
        sync(1)

    def command(self, cmd, channel, data):
        b = self.buf
        b[0] = (cmd & 0xF) << 4 | (channel & 0xF)
        b[1] = (data >> 8) & 0xFF
        b[2] = data & 0xFF
        self.sync(0)
        self.spi.write(b)
        self.sync(1)

    def write(self, channel, code):
        """Set channel's output now (write and update)."""
        self.command(CMD_WRITE_UPDATE, channel, code)

    def stage(self, channel, code):
        """Load channel's input register; update() or LDAC moves the output."""
        self.command(CMD_WRITE_INPUT, channel, code)

    def update(self, channel):
        self.command(CMD_UPDATE, channel, 0)

    def power(self, modes):
        """modes: 8 POWER_* values, channel 0 first."""
        word = 0
        for ch in range(8):
            word |= (modes[ch] & 3) << (2 * ch)
        self.command(CMD_POWER, 0, word)

    def reset(self):
        self.command(CMD_RESET, 0, 0)

    def readback(self, channel):
        """Channel's input register, read back over SDO."""
        self.command(CMD_READBACK, channel, 0)
        b = self.buf
        b[0] = b[1] = b[2] = 0  # a NOP frame clocks the register out
        self.sync(0)
        self.spi.write_readinto(b, self.rx)
        self.sync(1)
        return self.rx[1] << 8 | self.rx[2]
