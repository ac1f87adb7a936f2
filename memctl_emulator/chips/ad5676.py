"""AD5676R model at its SPI level: 24-bit frames framed by SYNC, commands
and channel addressing as in the datasheet's command table, input and DAC
registers, power-down modes, readback over SDO."""

from __future__ import annotations

from memctl_emulator.chips.bus import ChipProtocolError, FramedChip, Pin

_COMMANDS = {
    0x0: "nop",
    0x1: "write input",
    0x2: "update",
    0x3: "write and update",
    0x4: "power",
    0x5: "ldac mask",
    0x6: "reset",
    0x7: "reference",
    0x8: "daisy chain",
    0x9: "readback",
}


class AD5676Model(FramedChip):
    CHANNELS = 8
    FRAME_BYTES = 3
    SELECT = "SYNC"

    def __init__(self, name: str, sync: Pin, vref: float = 2.5, gain: int = 2):
        super().__init__(name, sync)
        self.vref, self.gain = vref, gain
        self.input = [0] * self.CHANNELS
        self.dac = [0] * self.CHANNELS
        self.power_mode = [0] * self.CHANNELS
        self._readback: int | None = None

    def output_frame(self) -> bytes:
        """SDO: the register a readback command asked for, else zeros."""
        r = self._readback
        return bytes(3) if r is None else bytes([0, r >> 8, r & 0xFF])

    def end_frame(self, frame: bytes) -> None:
        self._execute(frame[0] >> 4, frame[0] & 0xF, frame[1] << 8 | frame[2])

    def _channel(self, cmd: int, a: int) -> int:
        if a >= self.CHANNELS:
            raise ChipProtocolError(f"{self.name}: {_COMMANDS[cmd]} addressed channel {a}; the AD5676R has 0-7")
        return a

    def _execute(self, cmd: int, a: int, d: int) -> None:
        self._readback = None
        if cmd not in _COMMANDS:
            raise ChipProtocolError(f"{self.name}: command 0x{cmd:x} is reserved")
        if cmd == 0x1:
            self.input[self._channel(cmd, a)] = d
        elif cmd == 0x2:
            ch = self._channel(cmd, a)
            self.dac[ch] = self.input[ch]
        elif cmd == 0x3:
            ch = self._channel(cmd, a)
            self.input[ch] = self.dac[ch] = d
        elif cmd == 0x4:
            self.power_mode = [(d >> (2 * ch)) & 3 for ch in range(self.CHANNELS)]
        elif cmd == 0x6:
            self.input = [0] * self.CHANNELS
            self.dac = [0] * self.CHANNELS
            self.power_mode = [0] * self.CHANNELS
        elif cmd == 0x9:
            self._readback = self.input[self._channel(cmd, a)]

    def volts(self, channel: int) -> float | None:
        """The channel's output voltage (None: powered down)."""
        if self.power_mode[channel]:
            return None
        return self.dac[channel] / 65536 * self.vref * self.gain
