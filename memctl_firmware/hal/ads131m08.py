# ADS131M08 (Texas Instruments): 8-channel, 24-bit simultaneous-sampling
# delta-sigma ADC on SPI (mode 1), behind the column TIAs. Every frame is
# ten 24-bit words framed by CS: in, a command word (16 bits, MSB-aligned),
# a data word (WREG) or zeros, zeros, and a CRC word (unused: zeros); out,
# the response to the *previous* frame's command, eight conversion words
# (two's complement) and a CRC word.
try:
    from micropython import const
except ImportError:  # CPython (chip-level tests)

    def const(x):
        return x


NULL = const(0x0000)  # response: the STATUS register
RESET = const(0x0011)  # response: 0xFF28
STANDBY = const(0x0022)
WAKEUP = const(0x0033)
LOCK = const(0x0555)
UNLOCK = const(0x0655)
RREG = const(0xA000)  # | address << 7 | (registers - 1)
WREG = const(0x6000)
REG_ID = const(0x00)
REG_STATUS = const(0x01)
FRAME = const(30)  # 10 words x 3 bytes
RESET_ACK = const(0xFF28)
WLENGTH_24 = const(1)  # STATUS bits 9:8 at power-on: 24-bit words


class ADS131M08:
    def __init__(self, spi, cs):
        """spi: machine.SPI (mode 1); cs: machine.Pin output, active low."""
        self.spi = spi
        self.cs = cs
        self.tx = bytearray(FRAME)
        self.rx = bytearray(FRAME)
        cs(1)

    def frame(self, command, data=0):
        """One full frame; returns the response word (to the previous command)."""
        tx = self.tx
        for i in range(FRAME):
            tx[i] = 0
        tx[0] = command >> 8
        tx[1] = command & 0xFF
        tx[3] = data >> 8 & 0xFF
        tx[4] = data & 0xFF
        self.cs(0)
        self.spi.write_readinto(tx, self.rx)
        self.cs(1)
        return self.rx[0] << 8 | self.rx[1]

    def read(self, codes):
        """The latest conversion of all 8 channels into codes[0:8]; returns STATUS."""
        status = self.frame(NULL)
        rx = self.rx
        for ch in range(8):
            o = 3 + 3 * ch
            v = rx[o] << 16 | rx[o + 1] << 8 | rx[o + 2]
            codes[ch] = v - (1 << 24) if v & 0x800000 else v
        return status

    def read_register(self, address):
        self.frame(RREG | (address & 0x3F) << 7)
        return self.frame(NULL)

    def write_register(self, address, value):
        """Returns the device's acknowledgment word (0x4000 | address << 7)."""
        self.frame(WREG | (address & 0x3F) << 7, value)
        return self.frame(NULL)

    def reset(self):
        """Software reset; True when the device acknowledged it."""
        self.frame(RESET)
        return self.frame(NULL) == RESET_ACK
