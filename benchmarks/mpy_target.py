# Runs on the rv32 board (memctl_emulator.rv32.run_script, -icount shift=0:
# one instruction per virtual ns, so ticks_us x 1000 counts instructions):
# what the firmware's own code costs there. ARGV: blob files. Prints one JSON
# line per measurement: {"what": ..., "us": per operation}.
import gc
import json
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

ticks_us = time.ticks_us
ticks_diff = time.ticks_diff


def report(what, us, n=1, **extra):
    d = {"what": what, "us": us / n}
    d.update(extra)
    print(json.dumps(d))


class ToyFrontEnd(Converters):
    """A pure-Python front end with one toy device per crosspoint (conductance moves by k (|V| - 1 V) per
    pulse), timing its own calls so the firmware's share can be told apart."""

    def __init__(self, rows, cols):
        Converters.__init__(self, (rows, cols, 16, 2.5, 24, 1e-4, 0, (1e-5, 1e-4, 1e-3, 1e-2), "toy"))
        self.g = [2e-5] * (rows * cols)
        self.v = [[0.0] * rows, [0.0] * cols]
        self.i = [0.0] * cols
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
        pass

    def pulse(self, width_s):
        t0 = ticks_us()
        rows, cols, vr, vc, g = self.rows, self.cols, self.v[0], self.v[1], self.g
        for r in range(rows):
            for c in range(cols):
                v = vr[r] - vc[c]
                if v > 1.0 or v < -1.0:
                    k = r * cols + c
                    g[k] = min(1e-4, max(1e-6, g[k] + 2e-6 * (v - (1.0 if v > 0 else -1.0))))
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


def predictor_cost(path, what, n=50):
    with open(path, "rb") as f:
        blob = bytearray(f.read())
    PREDICTOR.load(blob, len(blob))
    feats = [1.0, 1e-4, 1.2, 1e-3, 0.3, 2e-5, 0.1][: PREDICTOR.n_features]
    PREDICTOR.predict(feats)
    gc.collect()
    t0 = ticks_us()
    for _ in range(n):
        PREDICTOR.predict(feats)
    report(what, ticks_diff(ticks_us(), t0), n)
    if PREDICTOR.dtype == 1:
        xq = PREDICTOR.iscratch[1]
        PREDICTOR.quantize_input(feats, xq)
        t0 = ticks_us()
        for _ in range(n):
            PREDICTOR.run_int8(xq)
        report("predictor int8 (integer layers only)", ticks_diff(ticks_us(), t0), n)


def verify_cost(name, algorithm, p, target):
    """Firmware time per pulse of one device's write-verify (the toy front end's own time taken out)."""
    fe = ToyFrontEnd(4, 4)
    lim = Limits()
    lim.set(2.0, 1e-3, 0.3)
    a = Array(fe, lim, 0.2)
    pp = algorithms.Params()
    pp.algorithm, pp.tol, pp.max_pulses, pp.patience = algorithm, 5e-7, 300, 50
    pp.p = (list(p) + [0.0] * 8)[:8]
    out = verify.Outcome()
    algo = algorithms.prepare(pp, a.limits)
    gc.collect()
    t0 = ticks_us()
    verify.program_device(a, 1, 2, target, pp, algo, out)
    total = ticks_diff(ticks_us(), t0)
    report("verify iteration: " + name, total - fe.fe_us, max(out.pulses, 1), pulses=out.pulses, status=out.status)


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
    predictor_cost(ARGV[1], "predictor float32 inference")
    predictor_cost(ARGV[2], "predictor int8 inference (quantize + layers)")
    verify_cost("ISPP", wire.A_ISPP, [1.2, 0.02, -1.2, 0.02, 1e-4], 6e-5)
    verify_cost("adaptive", wire.A_ADAPTIVE, [1.2, -1.2, 0.05, 1e-4, 1e-3, 0.3, 1.5], 6e-5)
    table = algorithms.FFP_TABLE
    table.configure(1e-6, 1e-4, 16)
    for b in range(16):
        table.v[0][b], table.v[1][b] = 1.3, -1.3
    verify_cost("FFP", wire.A_FFP, [1e-7, 4e-6, 1.2, -1.2, 0.02, 1e-4, 0.5], 6e-5)
    with open(ARGV[2], "rb") as f:  # the int8 forward predictor guides
        blob = bytearray(f.read())
    PREDICTOR.load(blob, len(blob))
    verify_cost("predictor-guided (int8)", wire.A_PREDICT, [1.0, 1.8, -1.0, -1.8, 1e-4, 1e-3, 4, 2], 6e-5)
    wire_cost()
    vmm_cost()
    struct.calcsize("<I")


main()
