# Runs under MicroPython: heap bytes that N int8 inferences of the firmware's
# predictor allocate (argv / ARGV: firmware folder, blob, N), features to
# output codes (Predictor.predict's integer part: the features stored as
# float32, the network kernel). The features (floats, which a MicroPython
# without inline floats allocates) are made once, outside the measurement.
import gc
import sys

ARGV = globals().get("ARGV") or sys.argv
sys.path.insert(0, ARGV[1])
from predictor import PREDICTOR, network  # noqa: E402


def main():
    with open(ARGV[2], "rb") as f:
        blob = bytearray(f.read())
    PREDICTOR.load(blob, len(blob))
    feats = [0.5] * PREDICTOR.n_features
    x, m = PREDICTOR.x, PREDICTOR.n_features
    n = int(ARGV[3])
    PREDICTOR.predict(feats)
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    i = 0
    while i < n:
        for k in range(m):
            x[k] = feats[k]
        network(x, PREDICTOR.net, PREDICTOR.act)
        i += 1
    after = gc.mem_alloc()
    gc.enable()
    print(after - before)


main()
