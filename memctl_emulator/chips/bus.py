"""machine.SPI and machine.Pin stand-ins that forward to chip models, so the
firmware's drivers run unchanged against them."""

from __future__ import annotations

from collections.abc import Callable


class ChipProtocolError(RuntimeError):
    """A driver broke a chip's interface rules (frame length, command, timing order)."""


class Pin:
    """An output pin; chips watch it through on_change(callback(level))."""

    def __init__(self, name: str, level: int = 1):
        self.name = name
        self.level = level
        self._watchers: list[Callable[[int], None]] = []

    def on_change(self, fn: Callable[[int], None]) -> None:
        self._watchers.append(fn)

    def __call__(self, level: int | None = None) -> int | None:
        if level is None:
            return self.level
        level = 1 if level else 0
        if level != self.level:
            self.level = level
            for fn in self._watchers:
                fn(level)
        return None

    value = __call__


class FramedChip:
    """An SPI chip whose select line frames one fixed-length command: the
    frame starts when the line falls, its output is fixed then, and it is
    checked and acted on when the line rises. Subclasses give FRAME_BYTES,
    output_frame() and end_frame(frame)."""

    FRAME_BYTES = 0
    SELECT = "CS"  # the datasheet's name for the select line, for messages

    def __init__(self, name: str, select: Pin):
        self.name = name
        self.frame = bytearray()
        self.selected = False
        self._out = b""
        select.on_change(self._select)

    def _select(self, level: int) -> None:
        if level == 0:
            self.selected = True
            self.frame = bytearray()
            return
        self.selected = False
        n, want = len(self.frame), self.FRAME_BYTES
        if n != want:
            raise ChipProtocolError(
                f"{self.name}: {self.SELECT} framed {8 * n} bits; a frame is {8 * want} bits ({want} bytes)"
            )
        self.end_frame(bytes(self.frame))

    def shift(self, data: bytes) -> bytes:
        start = len(self.frame)
        if start + len(data) > self.FRAME_BYTES:
            raise ChipProtocolError(
                f"{self.name}: more than {8 * self.FRAME_BYTES} bits inside one {self.SELECT} frame"
            )
        if start == 0:
            self._out = self.output_frame()
        self.frame += data
        return self._out[start : start + len(data)]

    def output_frame(self) -> bytes:
        raise NotImplementedError

    def end_frame(self, frame: bytes) -> None:
        raise NotImplementedError


class SPIBus:
    """One SPI bus; the chip whose chip-select is low gets the bytes."""

    def __init__(self) -> None:
        self.chips: list = []
        self.log: list[tuple[str, bytes]] = []  # (chip, bytes) in order: golden-vector tests read it

    def attach(self, chip) -> None:
        self.chips.append(chip)

    def _selected(self):
        on = [c for c in self.chips if c.selected]
        if len(on) != 1:
            names = ", ".join(c.name for c in on) or "no chip"
            raise ChipProtocolError(f"SPI transfer with {names} selected: exactly one chip-select must be low")
        return on[0]

    def write(self, buf) -> None:
        chip = self._selected()
        data = bytes(buf)
        self.log.append((chip.name, data))
        chip.shift(data)

    def write_readinto(self, tx, rx) -> None:
        chip = self._selected()
        data = bytes(tx)
        self.log.append((chip.name, data))
        out = chip.shift(data)
        rx[: len(out)] = out
