"""ADG1414 daisy chain at its SPI level: SYNC frames 8 bits per chip, the
first byte shifted in lands in the last chip, switches change on SYNC's
rising edge."""

from __future__ import annotations

from memctl_emulator.chips.bus import FramedChip, Pin


class ADG1414Chain(FramedChip):
    SELECT = "SYNC"

    def __init__(self, name: str, sync: Pin, chips: int):
        self.FRAME_BYTES = chips
        super().__init__(name, sync)
        self.chips = chips
        self.closed = [False] * (8 * chips)  # switch 8 * chip + n (n = 0: S1)

    def output_frame(self) -> bytes:
        return bytes(self.chips)  # SDO carries the chain's old bits; not wired on the board

    def end_frame(self, frame: bytes) -> None:
        for k, byte in enumerate(frame):
            chip = self.chips - 1 - k
            for n in range(8):
                self.closed[8 * chip + n] = bool(byte >> n & 1)
