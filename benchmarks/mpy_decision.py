# Runs under MicroPython: the firmware's predictor-guided decisions, timed.
# argv: firmware dir, blob path, 6 algorithm parameters (v_set_lo v_set_hi
# v_reset_lo v_reset_hi t_lo t_hi), read voltage, tolerance (S), g_lo, g_hi (S),
# overshoot penalty.
# Drives Predicted.next / observe through a toy device (each pulse moves half
# the requested way) for 2000 pulses; prints "inferences_per_pulse us_per_pulse".
import sys

sys.path.insert(0, sys.argv[1])
import time  # noqa: E402

from algorithms import Params, prepare  # noqa: E402
from predictor import PREDICTOR  # noqa: E402
from wire import A_PREDICT  # noqa: E402
from xbar import Limits, f32  # noqa: E402


def main():
    with open(sys.argv[2], "rb") as f:
        blob = bytearray(f.read())
    PREDICTOR.load(blob, len(blob))
    a = [float(x) for x in sys.argv[3:14]]
    p = Params()
    p.algorithm, p.tol = A_PREDICT, a[7]
    for i in range(6):
        p.p[i] = f32(a[i])  # as the wire carries them
    p.p[6] = f32(a[10])
    lim = Limits()
    lim.set(max(a[1], -a[3]), a[5], a[6])
    algo = prepare(p, lim)
    algo.v_read = a[6]
    g_lo, g_hi = a[8], a[9]
    calls = [0]
    predict = PREDICTOR.predict

    def counted(f, spread=True):
        calls[0] += 1
        return predict(f, spread)

    PREDICTOR.predict = counted
    n = 2000
    g, target = g_lo, g_hi
    algo.start(g, target)
    t0 = time.ticks_us()
    for k in range(n):
        if k % 20 == 0:  # a new target now and then, far or near
            target = g_lo + (g_hi - g_lo) * ((k * 37) % 100) / 100
            algo.start(g, target)
        err = target - g
        algo.next(err, g)
        g_new = g + 0.5 * err
        algo.observe(err, target - g_new)
        g = g_new
    dt = time.ticks_diff(time.ticks_us(), t0)
    print(calls[0] / n, dt / n)


main()
