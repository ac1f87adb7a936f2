"""The host protocol layer: pure functions over the wire declarations."""

from __future__ import annotations

import numpy as np
import pytest

from memctl import protocol
from memctl.errors import ProtocolError
from memctl_shared import wire


def test_program_frames_fill_the_budget_both_ways():
    m = wire.PROGRAM
    for budget in (64, 200, wire.MAX_PAYLOAD):
        n = protocol.program_fit(budget)
        req = protocol.encode_program(1e-6, 100, wire.A_ISPP, 8, [0.0] * 8, [(0, 0, 1e-5)] * n)
        assert len(req) == m.req_size + n * m.req_item_size <= budget
        assert m.resp_size + n * m.resp_item_size <= budget
        assert m.req_size + (n + 1) * m.req_item_size > budget or m.resp_size + (n + 1) * m.resp_item_size > budget


def test_replies_that_do_not_match_the_declaration_name_the_message():
    with pytest.raises(ProtocolError, match="READ reply has 4 bytes, expected 8"):
        protocol.decode_read(b"\x00" * 4)
    with pytest.raises(ProtocolError, match="PROGRAM reply for 2 devices"):
        protocol.decode_program(protocol_reply(wire.PROGRAM, (0.1, 2)), 1)
    with pytest.raises(ProtocolError, match="VMM reply has 12 bytes, expected 20"):
        protocol.decode_vmm(b"\x00" * 12, 4)
    with pytest.raises(ProtocolError, match="shorter than its 3-byte header"):
        protocol.decode_ffp_trace(b"\x01")


def protocol_reply(msg: wire.Message, head: tuple, items: list[tuple] = ()) -> bytes:
    import struct

    return struct.pack(msg.resp, *head) + b"".join(struct.pack(msg.resp_item, *it) for it in items)


def test_decoded_replies_are_named_records():
    p = protocol_reply(wire.PROGRAM, (0.5, 2), [(1e-5, 3, 0, 0.1, 1e-9), (2e-5, 7, 1, 0.2, 2e-9)])
    board_time, results = protocol.decode_program(p, 2)
    assert board_time == pytest.approx(0.5) and [r.pulses for r in results] == [3, 7]
    assert results[1].status == wire.S_MAX_PULSES and results[1].energy == pytest.approx(2e-9)
    ended, events = protocol.decode_ffp_trace(protocol_reply(wire.FFP_TRACE, (2, 1), [(1e-5, 1.0), (2e-5, 1.1)]))
    assert ended and events.shape == (2, 2) and events[1, 1] == pytest.approx(1.1)
    lsb, currents = protocol.decode_vmm(protocol_reply(wire.VMM, (1e-9,), [(1e-6,), (2e-6,)]), 2)
    np.testing.assert_allclose(currents, [1e-6, 2e-6])


def test_modes_are_enums_that_still_read_as_the_words_users_type():
    assert protocol.BiasScheme.parse("V/3") is protocol.BiasScheme.V3 == wire.SCHEME_V3
    assert str(protocol.BiasScheme.V2) == "V/2" and str(protocol.ReadMode.FLOATING) == "floating"
    assert protocol.ReadMode.parse("Grounded") is protocol.ReadMode.GROUNDED
    assert protocol.Cell.ONE_T1R == "1T1R" and protocol.Cell("0T1R") is protocol.Cell.PASSIVE
    with pytest.raises(ValueError, match="bias must be one of V/2, V/3, got 'V/4'"):
        protocol.BiasScheme.parse("V/4")
    with pytest.raises(ValueError, match="read_mode must be one of grounded, floating"):
        protocol.ReadMode.parse("sneaky")
