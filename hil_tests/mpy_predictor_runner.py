# Runs under MicroPython: the firmware's predictor on inputs from a JSON file.
# argv: firmware dir, blob path, inputs JSON (rows of 7 features); prints
# JSON: int8 output codes (int8 blob) or float predictions (float blob).
import sys

sys.path.insert(0, sys.argv[1])
import json  # noqa: E402

from predictor import PREDICTOR  # noqa: E402


def main():
    with open(sys.argv[2], "rb") as f:
        blob = bytearray(f.read())
    PREDICTOR.load(blob, len(blob))
    with open(sys.argv[3]) as f:
        rows = json.load(f)
    out = []
    xq = PREDICTOR.iscratch[1]
    for r in rows:
        if PREDICTOR.dtype == 1:
            PREDICTOR.quantize_input(r, xq)
            out.append(PREDICTOR.run_int8(xq))
        else:
            out.append(PREDICTOR.predict(r))
    print(json.dumps(out))


main()
