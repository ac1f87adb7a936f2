"""The AFE process speaks the bus protocol and rejects malformed transactions."""

from __future__ import annotations

import struct

import pytest

from memctl_emulator.afe import AFEConfig, AnalogFrontEnd
from memctl_emulator.afe_server import execute
from memctl_emulator.hal_backends import afe_bus as bus
from memctl_shared import board_wiring as wiring


def afe() -> AnalogFrontEnd:
    return AnalogFrontEnd(AFEConfig(rows=4, cols=3), seed=0)


def test_transaction_runs_ops_in_order():
    a = afe()
    ops = (
        struct.pack("<B" + bus.OP_ARGS[bus.OP_FILL][1:], bus.OP_FILL, bus.BOTH, 100)
        + struct.pack("<BBHH", bus.OP_LINES, bus.ROWS, 0, 2)
        + struct.pack("<2h", 5, -5)
        + struct.pack("<BBI", bus.OP_SAMPLE, 0, 0)
        + bytes([bus.OP_CLOCK])
    )
    out = execute(a, ops)
    assert len(out) == 3 * 4 + 8
    assert list(a.codes[0]) == [5, -5, 100, 100] and list(a.codes[1]) == [100] * 3
    assert struct.unpack_from("<q", out, 12)[0] == round(a.config.sample_time * 1e9)  # integer ns


def test_info_blob_layout():
    a = afe()
    out = execute(a, bytes([bus.OP_INFO]))
    rows, cols, dac_bits, vfs, adc_bits, t_sample, one_t1r, nr = struct.unpack_from(wiring.INFO_FMT, out)
    assert one_t1r == 0
    assert (rows, cols, nr) == (4, 3, len(a.config.current_ranges))
    name_at = wiring.INFO_SIZE + 4 * nr
    assert out[name_at + 1 :].decode() == "memctl-emulated-afe"
    info = wiring.decode_info(out)
    assert info[:2] == (4, 3) and info[-1] == "memctl-emulated-afe" and len(info[7]) == nr
    assert (bus.INFO_FMT, bus.INFO_SIZE) == (wiring.INFO_FMT, wiring.INFO_SIZE)  # the bus's decoder, the same layout


@pytest.mark.parametrize(
    "ops, match",
    [
        (bytes([99]), "unknown op"),
        (bytes([bus.OP_SET, 0]), "truncated"),
        (struct.pack("<BBHH", bus.OP_LINES, 0, 0, 4) + b"\x00\x00", "truncated"),
    ],
)
def test_malformed_transactions_raise(ops, match):
    with pytest.raises(ValueError, match=match):
        execute(afe(), ops)
