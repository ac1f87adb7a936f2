"""Retries through a damaged serial line: the host resends, the firmware
answers from its cache, nothing is applied twice."""

from __future__ import annotations

import numpy as np
import pytest

import memctl


class DamageReplies:
    """Flip one byte in each of the next `count` chunks going one way."""

    def __init__(self, count: int, direction: str = "to_host"):
        self.count, self.direction, self.hits = count, direction, 0

    def __call__(self, direction: str, data: bytes) -> bytes:
        if direction != self.direction or self.count == 0 or len(data) < 4:
            return data
        self.count -= 1
        self.hits += 1
        b = bytearray(data)
        b[len(b) // 2] ^= 0x20
        return bytes(b)


@pytest.fixture
def link(emu):
    yield emu
    emu.set_link_filter(None)


def test_damaged_reply_is_retried_and_program_applied_once(board, afe, link):
    n0, _ = afe.truth()
    bad0 = board.link.stats["bad_frames"]
    damage = DamageReplies(1)
    link.set_link_filter(damage)
    # One device, one chunk: the reply (and maybe a progress frame) is damaged once.
    res = board.program(np.array([[60e-6]]), tolerance=1e-6, origin=(12, 3))
    link.set_link_filter(None)
    assert damage.hits == 1
    assert res.ok.all()
    n1, g = afe.truth()
    # Every pulse the firmware reported was applied exactly once.
    assert n1 - n0 == res.pulses.sum()
    assert abs(g[12, 3] - 60e-6) < 1.1e-6
    # The host saw the damage: a damaged reply is resent and answered from the
    # cache; a damaged progress frame is waited out (the reply follows it).
    assert board.link.stats["bad_frames"] >= bad0 + 1


def test_damaged_request_gets_crc_error_and_is_resent(board, afe, link):
    retries0 = board.link.stats["retries"]
    damage = DamageReplies(1, direction="to_board")
    link.set_link_filter(damage)
    n0, _ = afe.truth()
    applied = board.pulse(13, 4, 1.2, 100e-6)
    link.set_link_filter(None)
    assert damage.hits == 1
    assert abs(applied - 1.2) < 1e-3
    assert board.link.stats["retries"] == retries0 + 1
    assert afe.truth()[0] == n0 + 1  # applied once, after the clean resend


def test_silent_board_times_out_with_clear_error(board, link):
    link.set_link_filter(lambda d, data: b"" if d == "to_host" else data)
    try:
        board.link.timeout = 0.2
        with pytest.raises(memctl.BoardTimeout, match="no valid answer"):
            board.read(0, 0)
    finally:
        board.link.timeout = 2.0
        link.set_link_filter(None)
    assert board.read(0, 0) > 0  # the board kept serving
