"""Fuzzing the frame parser: 100 000 random and mutated frames into
the firmware under MicroPython over its real serial line, and the same
stream into the host decoder.

The firmware must never crash or hang, never pulse, and answer every
non-empty frame (the bytes between two delimiters) with exactly one error
reply; the host decoder must flag every one of them without raising."""

from __future__ import annotations

import struct
import threading
import time
import zlib

import numpy as np
import pytest
from cobs import cobs

import memctl
from memctl import protocol
from memctl_emulator import EmulatedBoard
from memctl_shared import wire

FRAMES = 100_000
RV32_FRAMES = 10_000


def templates() -> list[bytes]:
    """Valid requests of every kind, including ones that would pulse or change limits."""
    return [
        wire.encode_frame(t, seq, p)
        for seq, (t, p) in enumerate(
            [
                (wire.T_INFO, b""),
                (wire.T_READ, protocol.encode_read(1, 2)),
                (wire.T_PULSE, protocol.encode_pulse(3, 4, 1.2, 1e-4)),
                (
                    wire.T_PROGRAM,
                    protocol.encode_program(1e-6, 50, 0, 8, [0.9, 0.02, -1.1, 0.02, 1e-4, 0, 0, 0], [(5, 5, 60e-6)]),
                ),
                (wire.T_VMM, protocol.encode_vmm(np.full(32, 0.1))),
                (wire.T_SET_LIMITS, protocol.encode_limits(2.5, 1e-2, 0.3)),
                (wire.T_PULSE_TRAIN, protocol.encode_pulse_train(1, 1, 5, 1.0, 1e-4, 0, 0, 0, 0.2, 1e-4)),
                (wire.T_CONFIG, protocol.encode_config(0.1, 3, 1)),
            ],
            start=1,
        )
    ]


def corpus(n: int, seed: int = 0, keep_valid: bool = False) -> bytes:
    """n frames, each closed by one delimiter: random bytes, mutated valid
    frames (bit flips, byte changes, insertions, deletions, truncations),
    oversize runs, and idle delimiters. Mutations that leave a valid frame
    are damaged further unless keep_valid."""
    rng = np.random.default_rng(seed)
    base = templates()
    out = bytearray()
    for _ in range(n):
        kind = rng.random()
        if kind < 0.3:
            body = bytearray(rng.integers(1, 256, rng.integers(1, 80), dtype=np.uint8).tobytes())
        elif kind < 0.97:
            original = base[rng.integers(len(base))][:-1]  # without its delimiter
            body = bytearray(original)
            for _ in range(rng.integers(1, 4)):
                if not body:
                    break
                op = rng.integers(5)
                at = int(rng.integers(len(body)))
                if op == 0:
                    body[at] ^= 1 << int(rng.integers(8))
                elif op == 1:
                    body[at] = int(rng.integers(256))
                elif op == 2:
                    body.insert(at, int(rng.integers(256)))
                elif op == 3 and len(body) > 1:
                    del body[at]
                elif len(body) > 1:
                    del body[at:]
            while not keep_valid and _decodes(body):  # still a valid request: damage it for sure
                body[int(rng.integers(len(body)))] ^= 0x10
        elif kind < 0.99:
            body = bytearray(rng.integers(1, 256, wire.MAX_ENCODED + rng.integers(1, 600), dtype=np.uint8).tobytes())
        else:
            body = bytearray()  # an idle delimiter: no reply expected
        out += body + b"\x00"
    return bytes(out)


def reference(body: bytes) -> tuple[int, int, bytes] | None:
    """What the frame format (docs/protocol.md) makes of the bytes between two
    delimiters: (type, seq, payload), or None for a damaged frame. Written from
    the spec with the cobs package and zlib, not with memctl's own decoder."""
    try:
        raw = cobs.decode(body)
    except cobs.DecodeError:
        return None
    if len(raw) < 10 or zlib.crc32(raw[:-4]) != struct.unpack("<I", raw[-4:])[0]:
        return None
    mtype, _tag, seq, plen = struct.unpack("<BBHH", raw[:6])
    return (mtype, seq, raw[6:-4]) if plen == len(raw) - 10 else None


def _decodes(body: bytearray) -> bool:
    """Whether a mutated frame still holds a valid frame: a few edits cancel
    out or give an equivalent encoding, or a delimiter an edit put inside
    leaves a valid tail. Those are valid requests (the safety property test
    covers them), not fuzz input."""
    return any(reference(part) is not None for part in bytes(body).split(b"\x00") if part)


def segments(stream: bytes) -> int:
    """Frames the decoders see: non-empty runs between delimiters."""
    return sum(1 for s in stream.split(b"\x00") if s)


@pytest.mark.slow
@pytest.mark.rv32
def test_the_firmware_survives_random_and_mutated_frames(hal):
    frames = RV32_FRAMES if hal == "rv32" else FRAMES  # the RISC-V core under QEMU parses about 10x slower
    stream = corpus(frames)
    expected = segments(stream)
    with EmulatedBoard(seed=31) as emu:
        afe = emu.afe()
        n0, g0 = afe.truth()
        raw = memctl.Board(emu.port, progress=False)
        info0 = raw.info()
        ser = raw.link.ser
        replies: dict = {"n": 0, "bad": 0, "types": set(), "codes": set()}
        dec = wire.FrameDecoder()
        done = threading.Event()

        # The stream ends with an INFO request: the firmware answers in order, so its reply
        # closes the stream and every answer before it belongs to the fuzz frames.
        marker = wire.encode_frame(wire.T_INFO, 0xBEEF)

        def writer() -> None:
            for k in range(0, len(stream), 4096):
                ser.write(stream[k : k + 4096])
            ser.write(marker)
            done.set()

        start = time.monotonic()
        threading.Thread(target=writer, daemon=True).start()
        ended = False
        while not ended and time.monotonic() - start < 600:  # the deadline only guards a hang
            data = ser.read(max(1, ser.in_waiting))
            i = 0
            while i < len(data) and not ended:
                i = dec.feed(data, i, len(data))
                if dec.status == wire.F_OK and dec.mtype == wire.T_INFO | wire.RESP and dec.seq == 0xBEEF:
                    ended = True
                elif dec.status == wire.F_OK:
                    replies["n"] += 1
                    replies["types"].add(dec.mtype)
                    replies["codes"].add(bytes(dec.payload())[0])
                elif dec.status == wire.F_BAD:
                    replies["bad"] += 1
        elapsed = time.monotonic() - start
        assert ended and done.is_set() and emu.alive()
        info1 = raw.info()  # still answering, same session: it never restarted
        n1, g1 = afe.truth()
        afe.close()
        raw.close()
    assert replies["bad"] == 0  # every reply arrived whole
    assert replies["n"] == expected  # one answer per frame, none dropped
    assert replies["types"] == {wire.T_ERROR | wire.RESP}
    assert replies["codes"] <= {wire.E_CRC, wire.E_FRAME, wire.E_TOO_LONG}
    assert n1 == n0 and np.array_equal(g0, g1)  # not one pulse
    assert info1.boot_id == info0.boot_id and info1.limits == info0.limits
    print(f"{frames} frames ({len(stream)} bytes, {expected} non-empty) in {elapsed:.1f} s")


def test_the_host_decoder_agrees_with_the_reference_on_every_frame():
    """Random, mutated (not filtered: some edits leave a valid frame) and valid
    frames: the decoder accepts exactly what the reference accepts, with the
    same content, and flags the rest."""
    rng = np.random.default_rng(1)
    parts = [s + b"\x00" for s in corpus(FRAMES, seed=1, keep_valid=True).split(b"\x00") if s]
    parts += [wire.encode_frame(int(t), int(q), rng.bytes(int(n))) for t, q, n in rng.integers(0, 256, (2000, 3))]
    rng.shuffle(parts)
    dec = wire.FrameDecoder()
    valid = 0
    for part in parts:
        dec.feed(part, 0, len(part))
        want = reference(part[:-1]) if len(part) - 1 <= dec.max_enc else None
        if want is None:
            assert dec.status == wire.F_BAD and dec.error in (wire.E_CRC, wire.E_FRAME, wire.E_TOO_LONG), part
        else:
            valid += 1
            assert dec.status == wire.F_OK and (dec.mtype, dec.seq, bytes(dec.payload())) == want, part
    assert valid > 2000  # the mutations left some frames valid too
