# Runs under MicroPython: heap bytes that N int8 inferences of the firmware's
# predictor allocate (argv / ARGV: firmware folder, blob, N). The inputs are
# quantized once, outside the measurement: features are floats, which a
# MicroPython without inline floats allocates.
import gc
import sys

ARGV = globals().get("ARGV") or sys.argv
sys.path.insert(0, ARGV[1])
from predictor import PREDICTOR  # noqa: E402


def main():
    with open(ARGV[2], "rb") as f:
        blob = bytearray(f.read())
    PREDICTOR.load(blob, len(blob))
    xq = PREDICTOR.iscratch[1]
    PREDICTOR.quantize_input([0.5] * PREDICTOR.n_features, xq)
    n = int(ARGV[3])
    PREDICTOR.run_int8(xq)
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    i = 0
    while i < n:
        PREDICTOR.run_int8(xq)
        i += 1
    after = gc.mem_alloc()
    gc.enable()
    print(after - before)


main()
