# Runs under MicroPython: the firmware's predictor on inputs from a file.
# argv: firmware dir, blob path, inputs (one JSON row of the model's features per line);
# prints one line per row: the int8 output codes (int8 blob) or the float
# predictions (float blob), one per model output. Rows stream, so the 256 KB
# heap holds any count.
import sys

ARGV = globals().get("ARGV") or sys.argv  # the rv32 board has no sys.argv (memctl_emulator.rv32.run_script)
sys.path.insert(0, ARGV[1])
import json  # noqa: E402

from predictor import PREDICTOR  # noqa: E402


def main():
    with open(ARGV[2], "rb") as f:
        blob = bytearray(f.read())
    PREDICTOR.load(blob, len(blob))
    with open(ARGV[3]) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if PREDICTOR.dtype == 1:
                PREDICTOR.predict(r)
                act, at = PREDICTOR.act, PREDICTOR.out_at  # the output codes, offset binary
                print(" ".join(str(act[at + i] - 128) for i in range(PREDICTOR.n_out)))
            else:
                v = PREDICTOR.predict(r)
                print(repr(v) + (" " + repr(PREDICTOR.spread) if PREDICTOR.n_out > 1 else ""))


main()
