"""The one wire codec, checked on both interpreters, byte for byte."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memctl import protocol
from memctl.firmware_image import staged
from memctl_emulator import micropython_executable
from memctl_shared import network_blob, predictor_blob, wire

ROOT = Path(__file__).resolve().parents[1]
RUNNER = Path(__file__).with_name("mpy_wire_runner.py")
GOLDEN = re.compile(r"```golden\ntype 0x([0-9a-f]+) seq (\d+) payload ([0-9a-f]*)\nframe ([0-9a-f]+)\n```")


def golden_blocks() -> list[tuple[int, int, bytes, bytes]]:
    text = (ROOT / "docs" / "protocol.md").read_text()
    return [(int(t, 16), int(s), bytes.fromhex(p), bytes.fromhex(f)) for t, s, p, f in GOLDEN.findall(text)]


def run_both(cases: list[dict], tmp_path: Path) -> tuple[list, list]:
    """Answers of wire.py under CPython and under MicroPython (256 KB heap)."""
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    answers = []
    for exe in ([sys.executable], [micropython_executable(), "-X", "heapsize=256K"]):
        out = subprocess.run([*exe, str(RUNNER), str(staged()), str(path)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        answers.append(json.loads(out.stdout))
    return answers[0], answers[1]


def test_docs_have_golden_frames():
    blocks = golden_blocks()
    assert len(blocks) >= 8
    assert {t & 0x7F for t, *_ in blocks} >= {wire.T_INFO, wire.T_READ, wire.T_PULSE, wire.T_PROGRAM, wire.T_ERROR}


def test_golden_frames_on_both_interpreters(tmp_path):
    blocks = golden_blocks()
    cases = [{"kind": "encode", "type": t, "seq": s, "payload": p.hex()} for t, s, p, _ in blocks]
    cases += [{"kind": "decode", "stream": f.hex()} for *_, f in blocks]
    cpy, mpy = run_both(cases, tmp_path)
    assert cpy == mpy
    n = len(blocks)
    for (t, s, p, f), enc, dec in zip(blocks, cpy[:n], cpy[n:], strict=True):
        assert bytes.fromhex(enc) == f
        assert dec == [[wire.F_OK, t, s, p.hex()]]


def test_frame_layout_matches_docs():
    frame = wire.encode_frame(wire.T_READ, 7, protocol.encode_read(1, 2))
    raw = bytearray(frame[:-1])
    n = wire.cobs_decode(raw, len(raw))
    assert n == wire.HDR_SIZE + 4 + wire.CRC_SIZE
    assert struct.unpack_from(wire.HDR_FMT, raw) == (wire.T_READ, 0, 7, 4)
    assert struct.unpack_from("<I", raw, n - 4)[0] == zlib.crc32(bytes(raw[: n - 4]))


def test_every_message_is_declared_once_alike_on_both_interpreters(tmp_path):
    """One declaration per message type; its sizes are calcsize of its formats, and
    MicroPython's struct reads every format to the same sizes as CPython's."""
    cpy, mpy = run_both([{"kind": "messages"}], tmp_path)
    assert cpy == mpy
    types = {v for k, v in vars(wire).items() if k.startswith("T_")}
    assert sorted(m.mtype for m in wire.MESSAGES) == sorted(types)
    assert len({m.name for m in wire.MESSAGES}) == len(wire.MESSAGES)
    for mtype, name, req, resp, req_item, resp_item, *sizes in cpy[0]:
        want = [struct.calcsize(f) if f else 0 for f in (req, resp, req_item, resp_item)]
        assert sizes == want, name
        assert getattr(wire, "T_" + name) == mtype


MESSAGE_ROW = re.compile(r"^\| 0x([0-9A-F]{2}) \| (\w+)[^|]* \|(?P<req>.*?[^\\])\|(?P<resp>.*?[^\\])\|$", re.M)


def test_protocol_doc_table_is_the_declarations():
    """docs/protocol.md's message table quotes exactly the formats wire.py declares, in order."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    rows = {m.group(2): m for m in MESSAGE_ROW.finditer(text)}
    assert set(rows) == {m.name for m in wire.MESSAGES}
    for m in wire.MESSAGES:
        row = rows[m.name]
        assert int(row.group(1), 16) == m.mtype, m.name
        for cell, fixed, item in ((row["req"], m.req, m.req_item), (row["resp"], m.resp, m.resp_item)):
            quoted = list(dict.fromkeys(re.findall(r"`(<[^`]*)`", cell)))  # in order, first mention
            want = list(dict.fromkeys(f for f in (fixed, item) if f and f != "<"))
            assert quoted == want, (m.name, cell)
    info = text[text.index("**INFO** response") :]
    assert all(f"`{f}`" in info for f in (wire.INFO.resp, wire.INFO_TAIL, wire.INFO_MODEL))


payloads = st.binary(max_size=wire.MAX_PAYLOAD)
frames = st.tuples(st.integers(0, 255), st.integers(0, 0xFFFF), payloads)


@settings(max_examples=200, deadline=None)
@given(frames)
def test_encode_decode_roundtrip_cpython(f):
    t, s, p = f
    enc = wire.encode_frame(t, s, p)
    assert 0 not in enc[:-1] and enc[-1] == 0
    assert len(enc) <= wire.MAX_ENCODED
    dec = wire.FrameDecoder()
    assert dec.feed(enc, 0, len(enc)) == len(enc)
    assert dec.status == wire.F_OK and (dec.mtype, dec.seq, bytes(dec.payload())) == (t, s, p)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_decoder_never_raises_on_garbage(data):
    dec = wire.FrameDecoder()
    i = 0
    while i < len(data):
        i = dec.feed(data, i, len(data))
        assert dec.status in (wire.F_NONE, wire.F_OK, wire.F_BAD)
        if dec.status == wire.F_BAD:
            assert dec.error in (wire.E_CRC, wire.E_FRAME, wire.E_TOO_LONG)


@settings(max_examples=5, deadline=None)
@given(
    st.lists(frames, min_size=1, max_size=30),
    st.lists(st.binary(max_size=400), min_size=1, max_size=20),
    st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=10),
)
def test_micropython_and_cpython_agree(tmp_path_factory, fs, garbage, flips):
    """Random frames encode identically; random and corrupted streams decode
    into identical event lists on both interpreters."""
    tmp = tmp_path_factory.mktemp("wire")
    cases = [{"kind": "encode", "type": t, "seq": s, "payload": p.hex()} for t, s, p in fs]
    stream = bytearray(b"".join(wire.encode_frame(*f) for f in fs))
    for pos, val in flips:  # corrupt some bytes of a valid stream
        if stream:
            stream[pos % len(stream)] = val
    cases += [{"kind": "decode", "stream": bytes(stream).hex()}]
    cases += [{"kind": "decode", "stream": g.hex()} for g in garbage]
    cpy, mpy = run_both(cases, tmp)
    assert cpy == mpy
    for (t, s, p), enc in zip(fs, cpy[: len(fs)], strict=True):
        assert bytes.fromhex(enc) == wire.encode_frame(t, s, p)


@pytest.mark.parametrize("plen", [0, 1, 253, 254, 255, 508, wire.MAX_PAYLOAD])
def test_cobs_block_boundaries(plen):
    p = bytes((i % 255) + 1 for i in range(plen))  # no zeros: longest COBS blocks
    enc = wire.encode_frame(wire.T_VMM, 1, p)
    dec = wire.FrameDecoder()
    dec.feed(enc, 0, len(enc))
    assert dec.status == wire.F_OK and bytes(dec.payload()) == p


def test_payload_over_limit_is_refused():
    with pytest.raises(ValueError):
        wire.encode_frame(wire.T_VMM, 1, bytes(wire.MAX_PAYLOAD + 1))


def _rv32_cases() -> list[dict]:
    """Frames, corrupted streams, CRCs and both blob codecs (good and damaged), seeded."""
    rng = np.random.default_rng(11)
    cases: list[dict] = [{"kind": "messages"}]
    blocks = golden_blocks()
    cases += [{"kind": "encode", "type": t, "seq": s, "payload": p.hex()} for t, s, p, _ in blocks]
    cases += [{"kind": "decode", "stream": f.hex()} for *_, f in blocks]
    fs = [
        (int(rng.integers(0, 128)), int(rng.integers(0, 65536)), rng.bytes(int(rng.integers(0, 200))))
        for _ in range(20)
    ]
    cases += [{"kind": "encode", "type": t, "seq": s, "payload": p.hex()} for t, s, p in fs]
    stream = bytearray(b"".join(wire.encode_frame(*f) for f in fs))
    for pos in rng.integers(0, len(stream), 25):
        stream[pos] = int(rng.integers(0, 256))
    cases += [{"kind": "decode", "stream": bytes(stream).hex()}]
    cases += [{"kind": "crc", "data": rng.bytes(n).hex()} for n in (0, 1, 7, 255, 1024, 2049)]
    f32 = predictor_blob.encode(
        [
            (rng.normal(size=(8, 7)).tolist(), rng.normal(size=8).tolist(), predictor_blob.ACT_RELU),
            (rng.normal(size=(1, 8)).tolist(), [0.1], predictor_blob.ACT_NONE),
        ],
        rng.normal(size=7).tolist(),
        rng.uniform(0.5, 2, 7).tolist(),
        1e-7,
        3e-5,
    )
    i8 = predictor_blob.encode_int8(
        [
            (
                [[int(v) for v in rng.integers(-128, 128, 7)] for _ in range(4)],
                [int(v) for v in rng.integers(-5000, 5000, 4)],
                [int(v) for v in rng.integers(1 << 30, (1 << 31) - 1, 4)],
                [int(v) for v in rng.integers(-12, 3, 4)],
                predictor_blob.ACT_RELU,
                0.05,
                -3,
            ),
            ([[int(v) for v in rng.integers(-128, 128, 4)]], [77], [1 << 30], [-2], predictor_blob.ACT_NONE, 0.1, 5),
        ],
        [0.0] * 7,
        [1.0] * 7,
        0.0,
        1e-5,
        0.02,
        4,
    )
    net = network_blob.encode(
        [(2, 1, network_blob.ACT_RELU, 0.2, [1.5], [0.01])], [(0, 0, 3, 0, 1, 1e4, [0, 1, 2], [0, 1])]
    )
    for blob in (f32, i8):
        bad = bytearray(blob)
        bad[10] ^= 0x40
        cases += [{"kind": "predictor_blob", "blob": b.hex()} for b in (blob, bytes(bad), blob[:-9])]
    bad_net = bytearray(net)
    bad_net[-1] ^= 1
    cases += [{"kind": "network_blob", "blob": b.hex(), "shape": [32, 32]} for b in (net, bytes(bad_net))]
    return cases


@pytest.mark.rv32(only=True)
def test_codecs_and_crcs_agree_byte_for_byte_on_rv32(tmp_path, rv32_flash):
    """On a 32-bit MicroPython (31-bit small ints, float32): frames, CRCs and blob decodes, good and damaged,
    exactly as CPython makes them."""
    from memctl_emulator.rv32 import run_script

    cases = _rv32_cases()
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    cpy = subprocess.run([sys.executable, str(RUNNER), str(staged()), str(path)], capture_output=True, text=True)
    assert cpy.returncode == 0, cpy.stderr
    elf, fresh = rv32_flash
    flash = fresh()
    (flash / "cases.jsonl").write_text("\n".join(json.dumps(c) for c in cases) + "\n")
    rv32 = run_script(elf, RUNNER, flash, ["", "cases.jsonl"])
    want, got = json.loads(cpy.stdout), [json.loads(line) for line in rv32 if line.strip()]
    assert len(got) == len(want) == len(cases)
    for case, a, b in zip(cases, want, got, strict=True):
        assert a == b, case["kind"]
    assert sum(1 for a in want if isinstance(a, list) and a[:1] == ["error"]) == 5  # the damaged blobs were refused
