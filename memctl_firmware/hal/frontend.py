# What every front-end backend shares: the board's description and the
# conversions between volts/amps and DAC/ADC codes. Backends subclass it.
from errors import HALError

TICK = 1e-9  # the pulse timer's step, s: gate windows are whole ticks


def ticks(seconds):
    return int(seconds / TICK + 0.5)


class Converters:
    def __init__(self, info):
        """info: (rows, cols, DAC bits, DAC full scale V, ADC bits, sample time s, 1T1R, ranges, name)."""
        rows, cols, dac_bits, vfs, adc_bits, t_sample, one_t1r, ranges, name = info
        self.rows = rows
        self.cols = cols
        self.dac_max = (1 << (dac_bits - 1)) - 1
        self.adc_max = (1 << (adc_bits - 1)) - 1
        self.v_full_scale = vfs
        self.v_lsb = vfs / self.dac_max
        self.sample_time = t_sample
        self.one_t1r = bool(one_t1r)
        self.ranges = ranges
        self.name = name
        self.last_range = 0

    def dac_code(self, v):
        c = int(round(v / self.v_lsb))
        if not -self.dac_max - 1 <= c <= self.dac_max:
            raise HALError("voltage outside DAC range")
        return c

    def quantize(self, v):
        return self.dac_code(v) * self.v_lsb

    def within(self, v, limit):
        """The DAC voltage nearest v that stays inside +-limit: the nearest
        code alone can pass the limit by half a step."""
        c = self.dac_code(v)
        if c * self.v_lsb > limit:
            c -= 1
        elif c * self.v_lsb < -limit:
            c += 1
        return c * self.v_lsb

    def lsb(self, range_index):
        return self.ranges[range_index] / self.adc_max

    def current(self, col):
        return self.code(col) * self.ranges[self.last_range] / self.adc_max
