# Runs under MicroPython (and CPython): reads wire test cases as JSON from the
# file named in argv[2], answers with what memctl_shared/wire.py and the blob
# codecs (found in the folder argv[1]) make of them, so a test can compare the
# interpreters byte for byte. Floats are reported as their float32 bytes. On the
# rv32 board (no sys.argv) the arguments come in ARGV.
import sys

ARGV = globals().get("ARGV") or sys.argv
sys.path.insert(0, ARGV[1])
import json  # noqa: E402
import struct  # noqa: E402
from binascii import crc32, hexlify, unhexlify  # noqa: E402

import network_blob  # noqa: E402
import predictor_blob  # noqa: E402
import wire  # noqa: E402


def h(b):
    return hexlify(bytes(b)).decode()


def norm(v):
    if isinstance(v, float):
        return h(struct.pack("<f", v))
    if isinstance(v, (int, str)) or v is None:
        return v
    return [norm(x) for x in v]


def cases(path):
    """A JSON list, or one case per line (what a 256 KB heap holds: one case at a time)."""
    with open(path) as f:
        first = f.read(1)
    if first == "[":
        with open(path) as f:
            yield from json.load(f)
        return
    with open(path) as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def main():
    lines = not ARGV[2].endswith(".json")
    out = []
    for case in cases(ARGV[2]):
        if lines and out:
            print(json.dumps(out[0]))
            out.clear()
        if case["kind"] == "messages":  # every declaration's formats and sizes as this interpreter sees them
            out.append(
                [
                    [
                        m.mtype,
                        m.name,
                        m.req,
                        m.resp,
                        m.req_item,
                        m.resp_item,
                        m.req_size,
                        m.resp_size,
                        m.req_item_size,
                        m.resp_item_size,
                    ]
                    for m in wire.MESSAGES
                ]
            )
        elif case["kind"] == "crc":
            out.append(crc32(unhexlify(case["data"])))
        elif case["kind"] in ("predictor_blob", "network_blob"):
            codec = predictor_blob if case["kind"] == "predictor_blob" else network_blob
            blob = bytearray(unhexlify(case["blob"]))
            try:
                out.append(norm(codec.decode(blob, len(blob), *case.get("shape", []))))
            except Exception as e:  # a refused blob: the message must agree too
                out.append(["error", str(e)])
        elif case["kind"] == "encode":
            out.append(h(wire.encode_frame(case["type"], case["seq"], unhexlify(case["payload"]))))
        else:  # decode: feed a byte stream, report every event
            dec = wire.FrameDecoder()
            data = unhexlify(case["stream"])
            events = []
            i = 0
            while i < len(data):
                i = dec.feed(data, i, len(data))
                if dec.status == wire.F_OK:
                    events.append([1, dec.mtype, dec.seq, h(dec.payload())])
                elif dec.status == wire.F_BAD:
                    events.append([2, dec.error, dec.seq, ""])
            out.append(events)
    if lines:
        for answer in out:
            print(json.dumps(answer))
    else:
        print(json.dumps(out))


main()
