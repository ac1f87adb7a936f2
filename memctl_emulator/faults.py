"""Fault injection for the emulated board's serial line.

LinkFaults is a link filter for EmulatedBoard: every byte on its way may be
corrupted (one bit flipped), dropped or duplicated, and a burst may garble a
run of bytes, each at its own rate, from a seeded generator so a failing run
repeats. Counters say what was done, so tests can check faults really happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class LinkFaults:
    corrupt: float = 0.0  # per byte: flip one random bit
    drop: float = 0.0  # per byte: lose it
    duplicate: float = 0.0  # per byte: deliver it twice
    burst: float = 0.0  # per byte: start a burst of burst_len random bytes in its place
    burst_len: int = 8
    directions: tuple[str, ...] = ("to_board", "to_host")
    seed: int = 0
    counts: dict = field(
        default_factory=lambda: {"bytes": 0, "corrupted": 0, "dropped": 0, "duplicated": 0, "bursts": 0}
    )

    def __post_init__(self) -> None:
        for name in ("corrupt", "drop", "duplicate", "burst"):
            rate = getattr(self, name)
            if not 0 <= rate < 1:
                raise ValueError(f"{name} rate must be in [0, 1), got {rate}")
        self._rng = np.random.default_rng(self.seed)

    def __call__(self, direction: str, data: bytes) -> bytes:
        if direction not in self.directions or not data:
            return data
        n = len(data)
        self.counts["bytes"] += n
        rng = self._rng
        u = rng.random((4, n))
        out = bytearray()
        skip = 0
        for i, b in enumerate(data):
            if skip:
                skip -= 1
                continue
            if u[3, i] < self.burst:
                out += rng.integers(0, 256, self.burst_len, dtype=np.uint8).tobytes()
                self.counts["bursts"] += 1
                skip = self.burst_len - 1
                continue
            if u[1, i] < self.drop:
                self.counts["dropped"] += 1
                continue
            if u[0, i] < self.corrupt:
                b ^= 1 << int(rng.integers(0, 8))
                self.counts["corrupted"] += 1
            out.append(b)
            if u[2, i] < self.duplicate:
                out.append(b)
                self.counts["duplicated"] += 1
        return bytes(out)
