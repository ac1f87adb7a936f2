# The reference board's front end (docs/hardware.md), composed from its chip
# drivers. Every row and column line has an AD5676R channel (code 32768 =
# 0 V) and an ADG1414 switch to the array (open = the line floats); 1T1R
# word lines have ADG1414 switches too. Column lines are held by their TIAs,
# whose feedback the ADG1408 range mux picks: sources 1-4 the current ranges,
# source 8 a short (write mode: the TIA follows its DAC). The pulse gate (a
# PIO/RMT one-shot) connects the switched lines to the array for exactly a
# pulse's width; with the TIAs on a range, that window is a conversion and
# the ADS131M08s (one per 8 columns) hold its result.
#
# Drivers act at once; the timer's sync() waits until they are done.
from array import array

from errors import ChipFault, HALError
from hal.ad5676 import AD5676
from hal.adg1408 import ADG1408
from hal.adg1414 import ADG1414
from hal.ads131m08 import ADS131M08, WLENGTH_24
from hal import BOTH, ROWS
from board_wiring import MIDSCALE, PIN_MUX_A, PIN_MUX_EN, PIN_SWITCH_SYNC, WRITE_MODE, wiring
from hal.frontend import Converters, ticks


class ChipFrontEnd(Converters):
    def __init__(self, spi, pin, timer, info):
        """spi: machine.SPI (mode 1); pin(n): a machine.Pin output for GPIO n;
        timer: pulse(ns) on the gate, sleep_us(us), ns() (board time), sync()."""
        Converters.__init__(self, info)
        if self.dac_max != MIDSCALE - 1:
            raise HALError("the reference board has 16-bit line DACs")
        dac, adc, chips, self.col_sw, self.wl_sw = wiring(self.rows, self.cols, self.one_t1r)
        self.timer = timer
        self.dacs = [AD5676(spi, pin(p)) for p in dac]
        self.adcs = [ADS131M08(spi, pin(p)) for p in adc]
        self.switches = ADG1414(spi, pin(PIN_SWITCH_SYNC), chips)
        a = PIN_MUX_A
        self.mux = ADG1408(pin(a[0]), pin(a[1]), pin(a[2]), pin(PIN_MUX_EN))
        self.held = array("i", [-1] * (self.rows + self.cols))  # code on each DAC channel (-1: unknown)
        self.want = array("i", [MIDSCALE] * (self.rows + self.cols))  # code each line should have at the gate
        self.codes = array("i", [0] * self.cols)
        self.chunk = array("i", [0] * 8)
        self.mux_at = -1
        self.dirty = True
        for k in range(len(self.adcs)):
            if not self.adcs[k].reset():
                raise ChipFault("ADC " + str(k) + " (ADS131M08) did not acknowledge its reset")
        self.fill(BOTH, 0.0)
        if self.one_t1r:
            self.gate(-1, True)
        self.commit()

    # Lines: index i < rows is row i, rows + c is column c.
    def _line_switch(self, i):
        return i if i < self.rows else self.col_sw + i - self.rows

    def _drive(self, i, code):
        self.want[i] = code + MIDSCALE
        self._switch(self._line_switch(i), True)

    def _switch(self, s, closed):
        m = 1 << (s & 7)
        if bool(self.switches.bits[s >> 3] & m) != closed:
            self.switches.set(s, closed)
            self.dirty = True

    def _lines(self, group):
        if group == ROWS:
            return 0, self.rows
        if group == BOTH:
            return 0, self.rows + self.cols
        return self.rows, self.rows + self.cols

    def fill(self, group, v):
        c = self.dac_code(v)
        first, end = self._lines(group)
        for i in range(first, end):
            self._drive(i, c)

    def set_line(self, group, line, v):
        first, end = self._lines(group)
        if not 0 <= line < end - first:
            raise HALError("line outside the array")
        self._drive(first + line, self.dac_code(v))

    def set_lines(self, group, values, n):
        first, end = self._lines(group)
        if n > end - first:
            raise HALError("more values than lines")
        for i in range(n):
            self._drive(first + i, self.dac_code(values[i]))

    def float_line(self, group, line):
        first, end = self._lines(group)
        lines = range(first, end) if line < 0 else (first + line,)
        for i in lines:
            self._switch(self._line_switch(i), False)

    def gate(self, row, on):
        if not self.one_t1r:
            raise HALError("this array has no access transistors (0T1R)")
        for r in range(self.rows) if row < 0 else (row,):
            self._switch(self.wl_sw + r, on)

    def _arm(self, source):
        # DAC writes wait for the gate: the array sees the lines only then, so
        # a line set back and forth between gates costs no frame at all.
        want, held, dacs = self.want, self.held, self.dacs
        for i in range(len(want)):
            u = want[i]
            if held[i] != u:
                held[i] = u
                dacs[i >> 3].write(i & 7, u)
        if self.dirty:
            self.switches.latch()
            self.dirty = False
        if self.mux_at != source:
            self.mux.select(source)
            self.mux_at = source

    def pulse(self, width_s):
        self._arm(WRITE_MODE)
        self.timer.pulse(ticks(width_s))

    def sample(self, range_index, integration_s=0.0, col=-1):
        if not 0 <= range_index < len(self.ranges):
            raise HALError("no such current range")
        self._arm(range_index)
        self.timer.pulse(ticks(integration_s or self.sample_time))
        self.last_range = range_index
        chunk, codes, cols = self.chunk, self.codes, self.cols
        for k in range(len(self.adcs)) if col < 0 else (col >> 3,):  # one device: only its column's ADC
            status = self.adcs[k].read(chunk)
            if status >> 8 & 3 != WLENGTH_24:
                # Not the status word an ADS131M08 sends: its conversions cannot be trusted either.
                raise ChipFault(
                    "ADC " + str(k) + " (ADS131M08) answered 0x%04x, not its status word: check its SPI lines and "
                    "supply" % status
                )
            for j in range(min(8, cols - 8 * k)):
                codes[8 * k + j] = chunk[j]

    def code(self, col):
        return self.codes[col]

    def wait(self, seconds):
        self.timer.sleep_us(int(seconds * 1e6 + 0.5))

    def clock(self):
        return self.timer.ns()

    def commit(self):
        self.timer.sync()
