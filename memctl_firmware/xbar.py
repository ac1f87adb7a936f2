# Crossbar access through the HAL: reads (auto-ranging), pulses with V/2 or
# V/3 biasing, waits, VMM. Every pulse the firmware applies passes through
# Array.pulse, which checks the safety limits first; nothing else calls
# front_end.pulse.
import struct

from errors import AddressError, CommandError, HALError, LimitError
from hal import BOTH, COLS, ROWS

from wire import READ_FLOATING, READ_GROUNDED, SCHEME_V2, SCHEME_V3  # noqa: F401  (re-exported)

# Auto-ranging: step up when a code reaches this share of full scale, step
# down when the reading would fit the next range below with this margin.
_HIGH = 0.98
_LOW = 0.8


def f32(v):
    """v as the wire carries it, so a request at exactly a limit passes."""
    return struct.unpack("<f", struct.pack("<f", v))[0]


class Limits:
    """The safety limits in force. A board whose limits were never set (or
    whose stored copy is corrupt) is locked: every pulse and read is refused."""

    def __init__(self):
        self.valid = False
        self.v_pulse = self.width = self.v_read = self.v_disturb = 0.0

    def set(self, v_pulse, width, v_read, v_disturb=0.0):
        self.v_pulse = f32(v_pulse)
        self.width = f32(width)
        self.v_read = f32(v_read)
        # The largest |V| a device that is not being programmed may see (its
        # switching threshold with a margin); 0: unknown, so a passive array
        # never shares a pulse between devices.
        self.v_disturb = f32(v_disturb)
        self.valid = True


_UNSET = "safety limits not set: set them first (memctl set-limits V_PULSE WIDTH V_READ, or --device FAMILY)"


def beyond(what, value, unit, limit, name="safety limit"):
    """A limit error that names the value and the limit (the host adds how to change the limits)."""
    return LimitError("%s %.4g %s beyond the %s %.4g %s" % (what, value, unit, name, limit, unit))


def check_width(limits, width, what="pulse width"):
    if not width > 0:  # also NaN
        raise CommandError("%s must be > 0 s, got %.4g s" % (what, width))
    if not width <= limits.width:
        raise beyond(what, width, "s", limits.width)


def check_pulse(limits, v, width):
    # Written so NaN and inf fail the comparisons and are refused too.
    if not limits.valid:
        raise LimitError(_UNSET)
    if not abs(v) <= limits.v_pulse:
        raise beyond("pulse amplitude", v, "V", limits.v_pulse)
    check_width(limits, width)


def check_read(limits, v):
    if not limits.valid:
        raise LimitError(_UNSET)
    if not abs(v) <= limits.v_read:
        raise beyond("read voltage", v, "V", limits.v_read, "read limit")


class Array:
    def __init__(self, fe, limits, v_read):
        self.tiles = None  # deployment fingerprints (tiles.py): a pulse inside a held tile invalidates it
        self.fe = fe
        self.rows = fe.rows
        self.cols = fe.cols
        self.limits = limits
        self.v_read = fe.quantize(v_read)
        self.scheme = SCHEME_V2
        self.read_mode = READ_GROUNDED
        self.read_range = 0
        self.vmm_range = len(fe.ranges) - 1
        self.lsb = 0.0  # current resolution of the last conversion, A

    def check(self, r, c):
        if not (0 <= r < self.rows and 0 <= c < self.cols):
            raise AddressError("device out of range")

    # -- conversions -------------------------------------------------------
    def _convert(self, setup, arg, rng, t_int, col):
        """Run setup(arg) + sample + release, re-ranging until the reading
        fits; col < 0 checks every column. Returns the range used."""
        fe = self.fe
        top = len(fe.ranges) - 1
        while True:
            setup(arg)
            fe.sample(rng, t_int, col)
            fe.fill(BOTH, 0.0)
            fe.commit()
            peak = abs(fe.code(col)) if col >= 0 else self._peak()
            if peak >= _HIGH * fe.adc_max and rng < top:
                rng += 1
            elif peak >= fe.adc_max:  # clipped on the widest range: the reading is not a value
                raise HALError("ADC saturated on the widest current range")
            elif rng > 0 and peak * fe.ranges[rng] < _LOW * fe.ranges[rng - 1] * fe.adc_max:
                rng -= 1
            else:
                self.lsb = fe.lsb(rng)
                return rng

    def _peak(self):
        fe = self.fe
        m = 0
        for c in range(self.cols):
            a = abs(fe.code(c))
            if a > m:
                m = a
        return m

    def _select_row(self, r):
        """1T1R: only row r's access transistors conduct (r < 0: every row)."""
        fe = self.fe
        if fe.one_t1r:
            fe.gate(-1, r < 0)
            if r >= 0:
                fe.gate(r, True)

    def _setup_row(self, arg):
        r, c, v = arg
        fe = self.fe
        self._select_row(r)
        if self.read_mode == READ_FLOATING and c >= 0:
            fe.float_line(BOTH, -1)
            fe.set_line(COLS, c, 0.0)
        else:
            fe.fill(BOTH, 0.0)
        fe.set_line(ROWS, r, v)

    def read_current(self, r, c, v=None, t_int=0.0):
        """Current of device (r, c) at read voltage v (default V_read), A."""
        self.check(r, c)
        lim = self.limits
        v = self.v_read if v is None else v
        check_read(lim, v)
        v = self.fe.within(v, lim.v_read)
        self.read_range = self._convert(self._setup_row, (r, c, v), self.read_range, t_int, c)
        return self.fe.current(c)

    def read(self, r, c):
        """Conductance of device (r, c) at V_read, S."""
        return self.read_current(r, c) / self.v_read

    def read_row(self, r, out):
        """Conductances of row r into out[0:cols]."""
        if not 0 <= r < self.rows:
            raise AddressError("row out of range")
        if self.read_mode == READ_FLOATING:
            for c in range(self.cols):
                out[c] = self.read(r, c)
            return
        self.read_range = self._convert(self._setup_row, (r, -1, self.v_read), self.read_range, 0.0, -1)
        fe = self.fe
        for c in range(self.cols):
            out[c] = fe.current(c) / self.v_read

    # -- writes --------------------------------------------------------------
    def pulse_row(self, r, cols, volts, n, width):
        """One pulse on n devices of row r at once, device k seeing volts[k].
        Every device is checked against the limits before any line moves (all
        or nothing).

        1T1R: only row r's transistors conduct, its line sits at 0 V and column
        cols[k] at -volts[k]; every other column at 0 V, so the row's other
        devices see nothing. Passive (a column group): row r at the group's
        largest pulse V, column cols[k] at V - volts[k], the other lines at the
        biasing's levels; refused unless every half-selected device stays
        within the disturb limit (shares, joins)."""
        if not 0 <= r < self.rows:
            raise AddressError("row out of range")
        fe = self.fe
        lim = self.limits
        lead = 0.0
        for k in range(n):
            self.check(r, cols[k])
            check_pulse(lim, volts[k], width)
            if abs(volts[k]) > abs(lead):
                lead = volts[k]
        if not fe.one_t1r:
            if not self.shares(lead):
                raise self._disturb(lead)
            for k in range(n):
                if not self.joins(lead, volts[k]):
                    raise self._disturb(volts[k])
        t = self.tiles
        if t is not None and t.armed:
            for k in range(n):
                t.touch(r, cols[k])
        self._select_row(r)
        if fe.one_t1r:
            fe.fill(BOTH, 0.0)
            for k in range(n):
                # The column's DAC value within the limit: the device sees minus it.
                fe.set_line(COLS, cols[k], fe.within(-volts[k], lim.v_pulse))
        else:
            v, br, bc = self._lines(lead)
            fe.fill(ROWS, br)
            fe.fill(COLS, bc)
            fe.set_line(ROWS, r, v)
            for k in range(n):
                # The device's own pulse on the DAC grid first: rounding the column alone could pass the limit.
                fe.set_line(COLS, cols[k], v - fe.within(volts[k], lim.v_pulse))
        fe.pulse(width)
        fe.fill(BOTH, 0.0)
        fe.commit()

    def _lines(self, v):
        """Passive pulse of v on the selected row: (that row, the other rows, the
        other columns), on the DAC grid. V/2: v, v/2, v/2; V/3: v, v/3, 2v/3."""
        fe, lim = self.fe, self.limits.v_pulse
        br, bc = (v / 3, v * 2 / 3) if self.scheme == SCHEME_V3 else (v * 0.5, v * 0.5)
        return fe.within(v, lim), fe.within(br, lim), fe.within(bc, lim)

    def shares(self, v):
        """Passive: whether a pulse of v can carry other devices of its row:
        the row's unselected devices (v - bc), the other rows' unselected ones
        (br - bc) and the other rows' devices on the pulsed column (br, for
        the device pulsed with v itself) within the disturb limit."""
        vd = self.limits.v_disturb
        v, br, bc = self._lines(v)
        return vd > 0 and abs(v - bc) <= vd and abs(br - bc) <= vd and abs(br) <= vd

    def joins(self, lead, v):
        """Passive: whether a device wanting v can share lead's pulse: the same
        polarity, no larger, and the other rows' devices on its column (which
        sits at lead - v) within the disturb limit."""
        if self.fe.one_t1r:
            return True
        if v * lead < 0 or abs(v) > abs(lead):
            return False
        vq, br, _ = self._lines(lead)
        return abs(br - vq + self.fe.within(v, self.limits.v_pulse)) <= self.limits.v_disturb

    def _disturb(self, v):
        return LimitError(
            "a %.4g V pulse shared by a column group would put more than the disturb limit %.4g V on a "
            "half-selected device" % (v, self.limits.v_disturb)
        )

    def pulse(self, r, c, v, width):
        """One pulse on (r, c); returns the applied volts.

        1T1R: only row r conducts and the other columns sit at v, so no
        other device sees a voltage. V/2 (passive): selected row v, selected
        column 0, all other lines v/2, so half-selected devices see v/2 and
        the rest 0. V/3: unselected rows
        v/3, unselected columns 2v/3: half-selected see v/3, the rest -v/3.
        """
        self.check(r, c)
        lim = self.limits
        check_pulse(lim, v, width)
        t = self.tiles
        if t is not None and t.armed:
            t.touch(r, c)
        fe = self.fe
        # The amplitude goes onto the DAC grid without passing the limit. Widths
        # round to the nearest timer tick, so one within the limit never passes
        # the limit's own nearest tick: that tick is the width limit.
        v = fe.within(v, lim.v_pulse)
        self._select_row(r)
        if fe.one_t1r:
            # Other rows' transistors are off; the unselected columns follow
            # the selected row, so its other devices see 0 V: no half-select.
            fe.fill(ROWS, 0.0)
            fe.fill(COLS, v)
        elif self.scheme == SCHEME_V3:
            fe.fill(ROWS, v / 3)
            fe.fill(COLS, v * 2 / 3)
        else:
            fe.fill(BOTH, v * 0.5)
        fe.set_line(ROWS, r, v)
        fe.set_line(COLS, c, 0.0)
        fe.pulse(width)
        fe.fill(BOTH, 0.0)
        fe.commit()
        return v

    def wait(self, seconds):
        if seconds > 0:
            self.fe.wait(seconds)
            self.fe.commit()

    # -- compute -------------------------------------------------------------
    def _setup_vmm(self, arg):
        volts, n = arg
        fe = self.fe
        self._select_row(-1)
        fe.fill(COLS, 0.0)
        fe.set_lines(ROWS, volts, n)

    def vmm(self, volts, n):
        """Drive rows with volts[:n], columns at virtual ground; sample all.
        The inputs are put on the DAC grid in place."""
        if n != self.rows:
            raise AddressError("VMM needs one input per row")
        fe, lim = self.fe, self.limits
        for i in range(n):
            check_read(lim, volts[i])
            volts[i] = fe.within(volts[i], lim.v_read)
        self.vmm_range = self._convert(self._setup_vmm, (volts, n), self.vmm_range, 0.0, -1)
