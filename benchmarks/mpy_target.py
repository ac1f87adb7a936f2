# Runs on the rv32 board (memctl_emulator.rv32.run_script, -icount shift=0:
# one instruction per virtual ns, so ticks_us x 1000 counts instructions) and
# on the rp2 board (cycles): what the firmware's own code costs there. ARGV:
# blob files (float32 forward, int8 forward, int8 inverse). Prints one JSON
# line per measurement: {"what": ..., "us": per operation}. Under CPython
# (memctl_emulator.firmware_python) benchmarks/target.py imports toy_step to
# characterize the toy device the inverse predictor is fitted to.
import gc
import json
import math
import struct
import sys
import time

ARGV = globals().get("ARGV") or sys.argv
sys.path.insert(0, "")
import algorithms  # noqa: E402
import verify  # noqa: E402
import wire  # noqa: E402
from hal.frontend import Converters  # noqa: E402
from predictor import PREDICTOR  # noqa: E402
from xbar import Array, Limits  # noqa: E402

ticks_us = getattr(time, "ticks_us", lambda: 0)
ticks_diff = getattr(time, "ticks_diff", lambda a, b: a - b)
G_MIN, G_MAX = 1e-6, 1e-4
V_READ = 0.2
LIMITS = (2.0, 1e-3, 0.3)  # V pulse, width, V read
# The inverse predictor's programming parameters (wire.PARAMS_INVERSE) for the toy device.
INVERSE = [0.8, 2.0, -0.8, -2.0, 1e-5, 1e-3, 0.0]


def toy_step(g, v, width):
    """The toy device's conductance after a pulse of v volts for width s: the change grows exponentially with
    |v| above a 0.9 V threshold and with the square root of the width, and slows toward the bounds (a
    filamentary device's shape, so the inverse predictor has something to learn)."""
    a = v if v > 0 else -v
    if a <= 0.9:
        return g
    r = 3e-6 * math.exp((a - 1.2) / 0.12) * math.sqrt(width / 1e-4)
    if v > 0:
        g += r * (G_MAX - g) / G_MAX
    else:
        g -= r * (g - G_MIN) / G_MAX
    return G_MIN if g < G_MIN else (G_MAX if g > G_MAX else g)


def report(what, us, n=1, **extra):
    d = {"what": what, "us": us / n}
    d.update(extra)
    print(json.dumps(d))


class ToyFrontEnd(Converters):
    """A pure-Python front end with a toy device (toy_step) per crosspoint, timing its own calls so the
    firmware's share can be told apart. one_t1r: only the gated row conducts."""

    def __init__(self, rows, cols, one_t1r=0):
        Converters.__init__(self, (rows, cols, 16, 2.5, 24, 1e-4, one_t1r, (1e-5, 1e-4, 1e-3, 1e-2), "toy"))
        self.g = [2e-5] * (rows * cols)
        self.v = [[0.0] * rows, [0.0] * cols]
        self.i = [0.0] * cols
        self.on = [True] * rows
        self.t = 0
        self.fe_us = 0

    def _t(self, t0):
        self.fe_us += ticks_diff(ticks_us(), t0)

    def fill(self, group, v):
        t0 = ticks_us()
        for k in (0, 1) if group == 2 else (group,):
            line = self.v[k]
            for j in range(len(line)):
                line[j] = v
        self._t(t0)

    def set_line(self, group, line, v):
        t0 = ticks_us()
        self.v[group][line] = v
        self._t(t0)

    def set_lines(self, group, values, n):
        t0 = ticks_us()
        for j in range(n):
            self.v[group][j] = values[j]
        self._t(t0)

    def float_line(self, group, line):
        pass

    def gate(self, row, on):
        if row < 0:
            for r in range(self.rows):
                self.on[r] = on
        else:
            self.on[row] = on

    def pulse(self, width_s):
        t0 = ticks_us()
        rows, cols, vr, vc, g = self.rows, self.cols, self.v[0], self.v[1], self.g
        for r in range(rows):
            if self.one_t1r and not self.on[r]:
                continue
            for c in range(cols):
                k = r * cols + c
                g[k] = toy_step(g[k], vr[r] - vc[c], width_s)
        self.t += int(width_s * 1e9)
        self._t(t0)

    def wait(self, seconds):
        self.t += int(seconds * 1e9)

    def sample(self, range_index, integration_s=0.0, col=-1):
        t0 = ticks_us()
        rows, cols, vr, vc, g = self.rows, self.cols, self.v[0], self.v[1], self.g
        for c in range(cols):
            acc = 0.0
            for r in range(rows):
                if not self.one_t1r or self.on[r]:
                    acc += (vr[r] - vc[c]) * g[r * cols + c]
            self.i[c] = acc
        self.last_range = range_index
        self.t += 100000
        self._t(t0)

    def commit(self):
        pass

    def code(self, col):
        c = int(self.i[col] / self.lsb(self.last_range))
        return self.adc_max if c > self.adc_max else (-self.adc_max if c < -self.adc_max else c)

    def lsb(self, range_index):
        return self.ranges[range_index] / self.adc_max

    def current(self, col):
        return self.code(col) * self.lsb(self.last_range)

    def clock(self):
        return self.t


def load(path):
    with open(path, "rb") as f:
        blob = bytearray(f.read())
    PREDICTOR.load(blob, len(blob))


def predictor_cost(path, what, n=50):
    load(path)
    if PREDICTOR.n_features == 4:  # inverse: scaled current, step, log10 width, polarity
        feats = [0.3, 0.1, -4.0, 1.0]
    else:
        feats = [1.0, 1e-4, 1.2, 1e-3, 0.3, 2e-5, 0.1]
    f = PREDICTOR.feat  # where the algorithms put features
    for i in range(len(feats)):
        f[i] = feats[i]
    PREDICTOR.predict(f)
    gc.collect()
    t0 = ticks_us()
    for _ in range(n):
        PREDICTOR.predict(f)
    report(what, ticks_diff(ticks_us(), t0), n)


def _board(algorithm, p, one_t1r):
    fe = ToyFrontEnd(4, 4, one_t1r)
    lim = Limits()
    lim.set(*LIMITS)
    a = Array(fe, lim, V_READ)
    pp = algorithms.Params()
    pp.algorithm, pp.tol, pp.max_pulses, pp.patience = algorithm, 5e-7, 300, 50
    pp.p = (list(p) + [0.0] * 8)[:8]
    return fe, a, pp, algorithms.prepare(pp, a.limits)


def iteration_cost(name, algorithm, p, targets):
    """Firmware time per write-verify iteration (a decision, its pulse, the verify read; the toy front end's own
    time taken out) of one device programmed alone to each target in turn, as verify.program_device runs it;
    each device's setup (its first read, Verify.begin and the algorithm's start) is timed apart."""
    fe, a, pp, algo = _board(algorithm, p, 0)
    vf = verify.Verify()
    it = setup = 0
    pulses = ok = 0
    gc.collect()
    for target in targets:
        fe.fe_us = 0
        t0 = ticks_us()
        algo.v_read = a.v_read
        vf.begin(2, target, pp, algo, a.read(1, 2))
        t1 = ticks_us()
        fe_setup = fe.fe_us
        if vf.want():
            verify.alone(a, 1, vf)
        it += ticks_diff(ticks_us(), t1) - (fe.fe_us - fe_setup)
        setup += ticks_diff(t1, t0) - fe_setup
        pulses += vf.pulses
        ok += vf.status == wire.S_OK
    report("verify iteration, one device: " + name, it, max(pulses, 1), pulses=pulses, ok=ok, devices=1)
    report("verify setup per device: " + name, setup, len(targets))


def row_cost(name, algorithm, p, targets):
    """Firmware time per device pulse of a row of a 1T1R array programmed together (Rows, as `memctl program`
    runs a map by default), everything included: the row's reads and pulses are shared, each device's setup
    is not, so an algorithm that needs fewer pulses carries more setup per pulse."""
    n = len(targets)
    fe, a, pp, algo = _board(algorithm, p, 1)
    row = [0.0] * 4
    gc.collect()
    t0 = ticks_us()
    verify.ROWS.program(a, 1, list(range(n)), targets, n, pp, a.limits, row, fe.clock)
    total = ticks_diff(ticks_us(), t0)
    vfs = verify.ROWS.verifies[:n]
    pulses = sum(vf.pulses for vf in vfs)
    ok = sum(vf.status == wire.S_OK for vf in vfs)
    where = "a row of " + str(n) + " (1T1R), per device pulse"
    report(where + ": " + name, total - fe.fe_us, max(pulses, 1), pulses=pulses, ok=ok, devices=n)


def wire_cost(n=20):
    payload = bytes(range(256)) * 4  # a full 1 KB frame
    t0 = ticks_us()
    for k in range(n):
        frame = wire.encode_frame(wire.T_PROGRAM, k, payload)
    report("frame encode (1 KB payload)", ticks_diff(ticks_us(), t0), n)
    dec = wire.FrameDecoder()
    t0 = ticks_us()
    for _ in range(n):
        dec.feed(frame, 0, len(frame))
    report("frame decode (1 KB payload)", ticks_diff(ticks_us(), t0), n, ok=dec.status == wire.F_OK)


def vmm_cost(n=3):
    fe = ToyFrontEnd(32, 32)
    lim = Limits()
    lim.set(2.0, 1e-3, 0.3)
    a = Array(fe, lim, 0.2)
    volts = [0.1] * 32
    a.vmm(volts, 32)
    fe.fe_us = 0
    gc.collect()
    t0 = ticks_us()
    for _ in range(n):
        a.vmm(volts, 32)
    report("VMM 32x32 (firmware side)", ticks_diff(ticks_us(), t0) - fe.fe_us, n)


def main():
    predictor_cost(ARGV[1], "forward predictor float32 inference (7-16-16-1)")
    predictor_cost(ARGV[2], "forward predictor int8 inference (7-16-16-1)")
    predictor_cost(ARGV[3], "inverse predictor int8 inference (4-16-16-2, what predicted programming ships)")
    wire_cost()
    vmm_cost()
    one, row = [6e-5, 3e-5, 8e-5, 1.5e-5, 5e-5], [3e-5, 5e-5, 7e-5, 1.2e-5]
    ispp = [1.2, 0.02, -1.2, 0.02, 1e-4]
    adaptive = [1.2, -1.2, 0.05, 1e-4, 1e-3, 0.3, 1.5]
    for cost, targets in ((iteration_cost, one), (row_cost, row)):
        cost("ISPP", wire.A_ISPP, ispp, targets)
        cost("adaptive", wire.A_ADAPTIVE, adaptive, targets)
        load(ARGV[3])
        cost("predicted (inverse int8)", wire.A_PREDICT, INVERSE, targets)
    table = algorithms.FFP_TABLE
    table.configure(1e-6, 1e-4, 16)
    for b in range(16):
        table.v[0][b], table.v[1][b] = 1.3, -1.3
    iteration_cost("FFP", wire.A_FFP, [1e-7, 4e-6, 1.2, -1.2, 0.02, 1e-4, 0.5], one)
    load(ARGV[2])  # the int8 forward predictor guides
    forward = [1.0, 1.8, -1.0, -1.8, 1e-4, 1e-3, 4, 2]
    iteration_cost("predictor-guided (forward int8, bisection)", wire.A_PREDICT, forward, one)
    struct.calcsize("<I")


if __name__ == "__main__":
    main()
