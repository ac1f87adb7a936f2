# The verify loop: one device's write-verify as steppable state (Verify),
# run alone (program_device) or a row at a time (Rows: a 1T1R word line, or
# column groups on a passive array). The algorithms (algorithms.py) only
# choose the next pulse.
from algorithms import _ALGO_MASK, ALGORITHMS, setup
from wire import S_LIMIT, S_MAX_PULSES, S_OK, S_STUCK, S_UNREACHABLE


class Outcome:
    def __init__(self):
        self.g = 0.0
        self.pulses = 0
        self.status = S_OK
        self.energy = 0.0


class Verify:
    """One device's write-verify, stepped: read, stop if inside tolerance, else
    ask the algorithm for a pulse (want), apply it, read again (applied). A
    device programmed alone runs it in a loop (program_device); a row of
    devices shares each pulse and read (program_row). Either way each device
    follows exactly these rules.

    Stops with a reason: ok; max-pulses; at-safety-limit (at full drive, and
    that drive was the safety limits in both amplitude and width: the limits,
    not the device, may be what stopped it); stuck (never responded at the
    algorithm's full drive, which was inside the limits); unreachable (moved,
    but stopped approaching the target at full drive inside the limits).
    Energy is estimated as the sum of V^2 G t with G from the last read.
    """

    def begin(self, c, target, params, algo, g):
        self.c = c
        self.target = target
        self.params = params
        self.algo = algo
        self.eps = params.tol * 0.25  # a change smaller than this is no response
        algo.start(g, target)
        self.g = g
        self.pulses = 0
        self.stall = 0
        self.best = abs(target - g)  # the closest read so far
        self.moved = False
        self.energy = 0.0
        self.status = S_MAX_PULSES
        self.at_lim = False  # the last pulse was at both safety limits
        self.done = False
        self.v = self.w = self.err = 0.0
        self.t_end = 0
        self.stepped = False  # row-parallel: this step's pulse is placed

    def want(self):
        """True with the next pulse in self.v (V) and self.w (s); False when done."""
        if self.done:
            return False
        tol = self.params.tol
        err = self.target - self.g
        if -tol <= err <= tol:
            self.status = S_OK
            self.done = True
            return False
        algo = self.algo
        if self.pulses >= self.params.max_pulses:
            self.status = S_LIMIT if self.at_lim and algo.maxed() else S_MAX_PULSES
            self.done = True
            return False
        self.err = err
        self.v = algo.next(err, self.g)
        self.w = algo.width
        return True

    def applied(self, g_new):
        """The pulse self.v, self.w was applied and the device now reads g_new."""
        v, w, g, algo = self.v, self.w, self.g, self.algo
        lim = algo.limits
        # Within float32 rounding: limits and parameters cross the wire as float32.
        self.at_lim = (v >= lim.v_pulse * 0.9999 or -v >= lim.v_pulse * 0.9999) and w >= lim.width * 0.9999
        self.energy += v * v * g * w
        self.pulses += 1
        step = g_new - g
        if step > self.eps or step < -self.eps:
            self.moved = True
        # Progress is a new closest read by more than eps: steps that read noise makes
        # (a device at its own ceiling wanders) do not count, a slow approach does.
        miss = self.target - g_new
        if miss < 0:
            miss = -miss
        if miss < self.best - self.eps:
            self.best = miss
            self.stall = 0
        elif algo.maxed():
            self.stall += 1
            if self.stall >= self.params.patience:
                self.g = g_new
                self.status = S_LIMIT if self.at_lim else (S_UNREACHABLE if self.moved else S_STUCK)
                self.done = True
                return
        else:
            self.stall = 0
        algo.observe(self.err, self.target - g_new)
        self.g = g_new

    def outcome(self, out):
        out.g, out.pulses, out.status, out.energy = self.g, self.pulses, self.status, self.energy


_ONE = Verify()


def alone(array, r, vf, alive=None):
    """Apply the pulse vf wants (want() was True) and go on, one device at a
    time, until it stops. alive() after each pulse: the caller's chance to
    tell the host it is still at work (one device can take many pulses)."""
    while True:
        array.pulse(r, vf.c, vf.v, vf.w)
        vf.applied(array.read(r, vf.c))
        if alive:
            alive()
        if not vf.want():
            return


def program_device(array, r, c, target, params, algo, out, alive=None):
    """Write-verify one device (Verify's rules); fills out (an Outcome)."""
    vf = _ONE
    algo.v_read = array.v_read
    vf.begin(c, target, params, algo, array.read(r, c))
    if vf.want():
        alone(array, r, vf, alive)
    vf.outcome(out)


class Rows:
    """Row-parallel write-verify: per device its own Verify and algorithm
    instance (kept between requests, so the heap settles), one read of the
    whole row per step, and each step's pulses shared: on 1T1R one pulse per
    distinct width among the devices that want one; on a passive array the
    largest pulse carries every device of its width and polarity whose
    half-selected neighbours stay within the disturb limit (Array.shares,
    joins), and a device whose pulse cannot share finishes alone."""

    def __init__(self):
        self.verifies = []
        self.algos = []
        self.kind = None
        self.cols = []
        self.volts = []

    def ready(self, n, params, limits, cols):
        """n devices' state for this request's algorithm and parameters."""
        kind = type(ALGORITHMS[params.algorithm & _ALGO_MASK])
        if kind is not self.kind:
            self.algos = []
            self.kind = kind
        while len(self.verifies) < n:
            self.verifies.append(Verify())
        while len(self.algos) < n:
            self.algos.append(kind())
        for k in range(n):
            setup(self.algos[k], params, limits)
        if len(self.cols) < cols:
            self.cols = [0] * cols
            self.volts = [0.0] * cols
        return self.verifies, self.algos

    def program(self, array, r, cols, targets, n, params, limits, row_buf, clock, alive=None):
        """Program devices (r, cols[k]) to targets[k]; each Verify's t_end is the
        board clock when it finished; alive() once a step."""
        verifies, algos = self.ready(n, params, limits, array.cols)
        array.read_row(r, row_buf)
        for k in range(n):
            algos[k].v_read = array.v_read
            verifies[k].begin(cols[k], targets[k], params, algos[k], row_buf[cols[k]])
        pc, pv = self.cols, self.volts
        passive = not array.fe.one_t1r
        left = n
        while left:
            for k in range(n):  # who wants a pulse this step
                vf = verifies[k]
                vf.stepped = vf.done
                if not vf.done and not vf.want():
                    vf.t_end = clock()
                    vf.stepped = True
                    left -= 1
            if not left:
                break
            while True:  # the step's pulses: the largest that can share first, with every device that joins it
                lead = None
                lone = None
                for k in range(n):
                    vf = verifies[k]
                    if vf.stepped:
                        continue
                    if passive and not array.shares(vf.v):
                        if lone is None:  # in request order, as one device at a time would go
                            lone = vf
                    elif lead is None or abs(vf.v) > abs(lead.v):
                        lead = vf
                if lead is None and lone is not None:
                    # Its half-selected devices would pass the disturb limit: once the shared pulses are out,
                    # it finishes alone, one device at a time (lone pulses interleaved with the row's would
                    # only stretch each device's time between pulses).
                    lead = lone
                    alone(array, r, lead, alive)
                    lead.stepped = True
                    lead.t_end = clock()
                    left -= 1
                    continue
                if lead is None:
                    break
                width = lead.w
                m = 0
                for k in range(n):
                    vf = verifies[k]
                    if not vf.stepped and vf.w == width and array.joins(lead.v, vf.v):
                        pc[m] = vf.c
                        pv[m] = vf.v
                        vf.stepped = True
                        m += 1
                array.pulse_row(r, pc, pv, m, width)
            array.read_row(r, row_buf)
            if alive:
                alive()
            for k in range(n):
                vf = verifies[k]
                if not vf.done:
                    vf.applied(row_buf[vf.c])
                    if vf.done:
                        vf.t_end = clock()
                        left -= 1


ROWS = Rows()
