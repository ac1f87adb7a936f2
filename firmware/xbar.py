# Crossbar access through the HAL: read, pulse with V/2 biasing, VMM.
# Every pulse the firmware applies passes through Array.pulse, which checks the
# safety limits first; nothing else calls front_end.pulse.
from config import RANGE_READ, RANGE_VMM
from errors import AddressError, LimitError
from hal import BOTH, COLS, ROWS


class Limits:
    def __init__(self, v_pulse, width, v_read):
        self.v_pulse = v_pulse
        self.width = width
        self.v_read = v_read


class Array:
    def __init__(self, fe, limits, v_read):
        self.fe = fe
        self.rows = fe.rows
        self.cols = fe.cols
        self.limits = limits
        self.v_read = fe.quantize(v_read)

    def check(self, r, c):
        if not (0 <= r < self.rows and 0 <= c < self.cols):
            raise AddressError("device out of range")

    def read_row(self, r):
        """Sample every column with row r at V_read; currents via fe.current."""
        if not 0 <= r < self.rows:
            raise AddressError("row out of range")
        fe = self.fe
        fe.fill(BOTH, 0.0)
        fe.set_line(ROWS, r, self.v_read)
        fe.sample(RANGE_READ)
        fe.fill(BOTH, 0.0)
        fe.commit()

    def conductance(self, c):
        """Conductance of column c from the last read_row."""
        return self.fe.current(c) / self.v_read

    def read(self, r, c):
        self.check(r, c)
        self.read_row(r)
        return self.conductance(c)

    def pulse(self, r, c, v, width):
        """One pulse on (r, c) with V/2 biasing; returns the applied volts.

        Selected row at v, selected column at 0, every other line at v/2, so
        half-selected devices see v/2 and the rest see 0.
        """
        self.check(r, c)
        lim = self.limits
        # Written so NaN and inf fail the comparison and are refused too.
        if not abs(v) <= lim.v_pulse:
            raise LimitError("pulse amplitude beyond safety limit")
        if not 0 < width <= lim.width:
            raise LimitError("pulse width beyond safety limit")
        fe = self.fe
        fe.fill(BOTH, v * 0.5)
        fe.set_line(ROWS, r, v)
        fe.set_line(COLS, c, 0.0)
        fe.pulse(width)
        fe.fill(BOTH, 0.0)
        fe.commit()
        return fe.quantize(v)

    def vmm(self, volts, n):
        """Drive rows with volts[:n], columns at virtual ground; sample all."""
        if n != self.rows:
            raise AddressError("VMM needs one input per row")
        lim = self.limits.v_read
        for i in range(n):
            if not abs(volts[i]) <= lim:
                raise LimitError("VMM input beyond read-voltage limit")
        fe = self.fe
        fe.fill(COLS, 0.0)
        fe.set_lines(ROWS, volts, n)
        fe.sample(RANGE_VMM)
        fe.fill(BOTH, 0.0)
        fe.commit()
