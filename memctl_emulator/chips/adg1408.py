"""ADG1408 model: 8:1 multiplexer on GPIO. The address may change only with
EN low (break-before-make); which source is connected is what the crossbar
model sees."""

from __future__ import annotations

from memctl_emulator.chips.bus import ChipProtocolError, Pin


class ADG1408Model:
    def __init__(self, name: str, a0: Pin, a1: Pin, a2: Pin, en: Pin):
        self.name = name
        self.pins = (a0, a1, a2)
        self.en = en
        for p in self.pins:
            p.on_change(self._address_changed)

    def _address_changed(self, level: int) -> None:
        if self.en.level:
            raise ChipProtocolError(f"{self.name}: address changed with EN high; open the switches first")

    @property
    def connected(self) -> int | None:
        """The source index connected to D (0 = S1), or None with EN low."""
        if not self.en.level:
            return None
        a0, a1, a2 = (p.level for p in self.pins)
        return a0 | a1 << 1 | a2 << 2
