"""A small front end with the HAL's interface (memctl_firmware/hal/__init__.py) and
toy devices: a pulse beyond a device's threshold moves its conductance by a
rate times the overdrive times the width, saturating at its range. Line
voltages are tracked as the firmware sets them, so biasing and reads are
the firmware's own."""

from __future__ import annotations

import numpy as np

ROWS, COLS, BOTH = 0, 1, 2  # the firmware's line groups (hal/__init__.py)


class FakeFrontEnd:
    name = "fake"

    def __init__(
        self, rows=4, cols=4, g=20e-6, g_min=10e-6, g_max=100e-6, v_th=1.0, rate=2e-6 / 1e-4, one_t1r=False, noise=0.0
    ):
        self.rows, self.cols = rows, cols
        self.v_full_scale, self.v_lsb = 5.0, 10.0 / 65536
        self.ranges = [1e-6, 1e-5, 1e-4, 1e-3]
        self.adc_max = 32767
        self.one_t1r = one_t1r
        self.g = np.full((rows, cols), float(g))
        self.g_min, self.g_max, self.v_th, self.rate = g_min, g_max, v_th, rate
        self.noise = noise  # read noise, S (one standard deviation; seeded)
        self.rng = np.random.default_rng(0)
        self.stuck = np.zeros((rows, cols), bool)
        self.line = [np.zeros(rows), np.zeros(cols)]
        self.gates = np.ones(rows, bool)
        self.codes = np.zeros(cols, int)
        self.range = 0
        self.t = 0  # ns, as the HAL's clock counts
        self.pulses = []  # (row volts, col volts, width) per pulse: what the array saw
        self.peak = 0.0  # largest |V| across any device during a pulse

    # -- DAC ----------------------------------------------------------------
    def quantize(self, v):
        return round(v / self.v_lsb) * self.v_lsb

    def within(self, v, limit):
        q = self.quantize(v)
        if q > limit:
            q -= self.v_lsb
        elif q < -limit:
            q += self.v_lsb
        return q

    def lsb(self, rng):
        return self.ranges[rng] / self.adc_max

    def fill(self, group, v):
        for k in (ROWS, COLS) if group == BOTH else (group,):
            self.line[k][:] = self.quantize(v)

    def set_line(self, group, line, v):
        self.line[group][line] = self.quantize(v)

    def set_lines(self, group, values, n):
        for i in range(n):
            self.line[group][i] = self.quantize(values[i])

    def float_line(self, group, line):
        pass  # floating lines read as grounded here: no sneak paths in this toy

    def gate(self, row, on):
        if row < 0:
            self.gates[:] = on
        else:
            self.gates[row] = on

    # -- array --------------------------------------------------------------
    def _across(self):
        v = self.line[ROWS][:, None] - self.line[COLS][None, :]
        return np.where(self.gates[:, None], v, 0.0)

    def pulse(self, width):
        v = self._across()
        self.pulses.append((self.line[ROWS].copy(), self.line[COLS].copy(), width))
        self.peak = max(self.peak, float(np.abs(v).max()))
        over = np.maximum(np.abs(v) - self.v_th, 0.0) * np.sign(v)
        dg = np.where(self.stuck, 0.0, self.rate * over * width)
        self.g = np.clip(self.g + dg, self.g_min, self.g_max)
        self.t += round(width * 1e9)

    def wait(self, seconds):
        self.t += round(seconds * 1e9)

    def sample(self, rng, t_s=0.0, col=-1):
        g = self.g + self.noise * self.rng.standard_normal(self.g.shape)
        i = (self._across() * g).sum(axis=0)
        self.range = rng
        self.codes = np.clip(np.rint(i / self.lsb(rng)), -self.adc_max, self.adc_max).astype(int)
        self.t += 100_000

    def commit(self):
        pass

    def code(self, col):
        return int(self.codes[col])

    def current(self, col):
        return self.codes[col] * self.lsb(self.range)

    def clock(self):
        return self.t
