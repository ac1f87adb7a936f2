# Runs under MicroPython (and CPython): reads wire test cases as JSON from the
# file named in argv[2], answers with what memctl_shared/wire.py (argv[1]) makes of
# them, so a test can compare the two interpreters byte for byte.
import sys

sys.path.insert(0, sys.argv[1])
import json  # noqa: E402
from binascii import hexlify, unhexlify  # noqa: E402

import wire  # noqa: E402


def h(b):
    return hexlify(bytes(b)).decode()


def main():
    with open(sys.argv[2]) as f:
        cases = json.load(f)
    out = []
    for case in cases:
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
    print(json.dumps(out))


main()
