# ADG1408 (Analog Devices): 8:1 analog multiplexer addressed by GPIO. EN low
# opens every switch; EN high connects D to S(n + 1) for address A2 A1 A0 = n.
# Change the address with EN low (break-before-make) so no two lines touch.


class ADG1408:
    def __init__(self, a0, a1, a2, en):
        """machine.Pin outputs for the address lines and the enable."""
        self.a = (a0, a1, a2)
        self.en = en
        en(0)

    def select(self, n):
        """Connect source n (0-7); None opens every switch."""
        self.en(0)
        if n is None:
            return
        if not 0 <= n < 8:
            raise ValueError("ADG1408 source must be 0..7")
        a = self.a
        a[0](n & 1)
        a[1](n >> 1 & 1)
        a[2](n >> 2 & 1)
        self.en(1)
