"""ADS131M08 model at its SPI level: full 10-word frames of 24-bit words,
the command table (NULL, RESET, STANDBY, WAKEUP, LOCK, UNLOCK, RREG, WREG)
with each response in the frame after its command, and conversion words
taken from a source (the TIAs' outputs)."""

from __future__ import annotations

from collections.abc import Callable

from memctl_emulator.chips.bus import ChipProtocolError, FramedChip, Pin

FRAME = 30
ID = 0x2800  # upper byte: ADS131M08 (8 channels)


class ADS131M08Model(FramedChip):
    FRAME_BYTES = FRAME

    def __init__(self, name: str, cs: Pin, source: Callable[[], list[int]] | None = None):
        super().__init__(name, cs)
        self.source = source or (lambda: [0] * 8)
        self.stuck_miso: int | None = None  # a fault: the data-out line held at this byte
        self._power_on()

    def _power_on(self) -> None:
        self.registers = {0x00: ID}
        self.locked = False
        self.standby = False
        self.reset_flag = True
        self.response = self._status()

    def _status(self) -> int:
        # LOCK (bit 15), RESET (bit 10), WLENGTH = 01 (24-bit words, bits 9:8), DRDY7..0.
        return self.locked << 15 | self.reset_flag << 10 | 1 << 8 | (0 if self.standby else 0xFF)

    def end_frame(self, frame: bytes) -> None:
        if frame[2]:
            raise ChipProtocolError(f"{self.name}: the command word's low byte pads a 16-bit command and must be 0")
        self.response = self._execute(frame[0] << 8 | frame[1], frame[3] << 8 | frame[4])

    def output_frame(self) -> bytes:
        """The previous command's response, eight conversion words, a (zero) CRC word."""
        if self.stuck_miso is not None:
            return bytes([self.stuck_miso]) * FRAME
        codes = [0] * 8 if self.standby else self.source()
        out = bytearray([self.response >> 8, self.response & 0xFF, 0])
        for c in codes:
            out += (c & 0xFFFFFF).to_bytes(3, "big")
        return bytes(out + bytes(3))

    def _execute(self, cmd: int, data: int) -> int:
        if self.locked and cmd not in (0x0000, 0x0655) and cmd >> 13 != 0b101:
            return self._status()  # a locked interface ignores it (NULL response)
        if cmd == 0x0011:
            self._power_on()
            return 0xFF28
        if cmd in (0x0022, 0x0033):
            self.standby = cmd == 0x0022
            return cmd
        if cmd in (0x0555, 0x0655):
            self.locked = cmd == 0x0555
            return cmd
        top = cmd >> 13
        if top in (0b101, 0b011):
            addr, n = cmd >> 7 & 0x3F, cmd & 0x7F
            if n:
                raise ChipProtocolError(f"{self.name}: multi-register access (n = {n}) is not modelled")
            if top == 0b101:
                if addr == 0x01:
                    value = self._status()
                    self.reset_flag = False
                    return value
                return self.registers.get(addr, 0)
            if addr in (0x00, 0x01):
                raise ChipProtocolError(f"{self.name}: register 0x{addr:02x} is read-only")
            self.registers[addr] = data
            return 0x4000 | addr << 7
        return self._status()  # NULL, and (per the datasheet) any invalid command
