# ADG1414 (Analog Devices): octal SPST switch on SPI, daisy-chainable. Each
# chip takes 8 bits (D7..D0 = S8..S1, 1 = closed), latched when SYNC rises;
# in a chain the first byte shifted out ends in the last chip. SPI mode 1.
# Here one switch per line: closed = the line is connected to its driver.


class ADG1414:
    def __init__(self, spi, sync, chips):
        """spi: machine.SPI; sync: machine.Pin output; chips: chain length."""
        self.spi = spi
        self.sync = sync
        self.n = chips
        self.bits = bytearray(chips)  # chip 0 (nearest the MCU) first
        self.frame = bytearray(chips)
        sync(1)

    def set(self, switch, closed):
        """Stage switch (8 * chip + n, n = 0 for S1); latch() applies it."""
        m = 1 << (switch & 7)
        i = switch >> 3
        if closed:
            self.bits[i] |= m
        else:
            self.bits[i] &= ~m & 0xFF

    def latch(self):
        n = self.n
        f = self.frame
        for i in range(n):
            f[i] = self.bits[n - 1 - i]
        self.sync(0)
        self.spi.write(f)
        self.sync(1)
