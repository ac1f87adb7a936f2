# Runs under MicroPython: the firmware's predictor-guided decision for given states.
# argv: firmware dir, blob path, rows file. The rows file's first line holds the 8
# algorithm parameters, the read voltage and the tolerance (S); each further line
# "g target" (S). Prints one line per row: amplitude, width, inferences. Every
# decision starts a fresh device with zero offsets, so rows do not interact.
import sys

sys.path.insert(0, sys.argv[1])
from algorithms import Params, prepare  # noqa: E402
from predictor import PREDICTOR  # noqa: E402
from wire import A_PREDICT  # noqa: E402
from xbar import Limits, f32  # noqa: E402


def main():
    with open(sys.argv[2], "rb") as f:
        blob = bytearray(f.read())
    PREDICTOR.load(blob, len(blob))
    with open(sys.argv[3]) as f:
        lines = [line.split() for line in f if line.strip()]
    a = [float(x) for x in lines[0]]
    p = Params()
    p.algorithm, p.tol = A_PREDICT, a[9]
    for i in range(8):
        p.p[i] = f32(a[i])  # as the wire carries them
    lim = Limits()
    lim.set(max(a[1], -a[3]), a[5], a[8])
    algo = prepare(p, lim)
    algo.v_read = a[8]
    calls = [0]
    predict = PREDICTOR.predict

    def counted(f, spread=True):
        calls[0] += 1
        return predict(f, spread)

    PREDICTOR.predict = counted
    for row in lines[1:]:
        g, target = float(row[0]), float(row[1])
        algo.dv = None
        PREDICTOR.offset[0] = PREDICTOR.offset[1] = 0.0
        algo.start(g, target)
        calls[0] = 0
        v = algo.next(target - g, g)
        print(repr(v), repr(algo.width), calls[0])


main()
