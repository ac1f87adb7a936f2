# Write-verify programming (ISPP): read, pulse toward the target with an
# amplitude that grows by a step each consecutive same-polarity pulse, and
# restart from the initial amplitude when the error changes sign (overshoot).
# Amplitudes are capped at the safety limit. Paper 003 used write-verify
# tuning with max 300 pulses at 30 % / 7.5 % / 2.5 % tolerance.
from errors import CommandError, LimitError
from wire import S_LIMIT, S_MAX_PULSES, S_OK


class ProgramParams:
    def __init__(self):
        self.tol = 1e-6
        self.max_pulses = 100
        self.v_set0 = 0.9
        self.v_set_step = 0.02
        self.v_reset0 = -1.1
        self.v_reset_step = 0.02
        self.width = 100e-6

    def validate(self, limits):
        if not (self.tol > 0 and self.tol < 1):
            raise CommandError("tolerance must be > 0 S")
        if not (self.v_set0 > 0 and self.v_reset0 < 0):
            raise CommandError("set start must be > 0 V and reset start < 0 V")
        if not (0 <= self.v_set_step <= 1 and 0 <= self.v_reset_step <= 1):
            raise CommandError("amplitude steps must be 0..1 V")
        if not self.v_set0 <= limits.v_pulse or not -self.v_reset0 <= limits.v_pulse:
            raise LimitError("start amplitude beyond safety limit")
        if not 0 < self.width <= limits.width:
            raise LimitError("pulse width beyond safety limit")


def write_verify(array, r, c, target, p):
    """Tune device (r, c); returns (conductance, pulses, status)."""
    vmax = array.limits.v_pulse
    g = array.read(r, c)
    pulses = 0
    last = 0
    amp = 0.0
    while True:
        err = target - g
        if -p.tol <= err <= p.tol:
            return g, pulses, S_OK
        if pulses >= p.max_pulses:
            return g, pulses, S_LIMIT if amp >= vmax else S_MAX_PULSES
        if err > 0:
            amp = p.v_set0 if last != 1 else amp + p.v_set_step
            last = 1
        else:
            amp = -p.v_reset0 if last != -1 else amp + p.v_reset_step
            last = -1
        if amp > vmax:
            amp = vmax
        array.pulse(r, c, amp if last == 1 else -amp, p.width)
        pulses += 1
        g = array.read(r, c)
