"""The reference board at chip level (docs/hardware.md): the chip models on
one SPI bus and GPIO, wired to the analog front end's physics. DAC codes
become line voltages, ADG1414 switches decide which lines are driven, the
ADG1408 range mux decides whether the pulse gate writes or converts, and the
ADS131M08s return the conversion of the last gate window."""

from __future__ import annotations

import numpy as np

from memctl_emulator.afe import AnalogFrontEnd
from memctl_emulator.chips.ad5676 import AD5676Model
from memctl_emulator.chips.adg1408 import ADG1408Model
from memctl_emulator.chips.adg1414 import ADG1414Chain
from memctl_emulator.chips.ads131m08 import ADS131M08Model
from memctl_emulator.chips.bus import ChipProtocolError, Pin, SPIBus
from memctl_shared import board_wiring as wiring


class ChipFrontEndModel:
    def __init__(self, afe: AnalogFrontEnd):
        c = afe.config
        self.afe = afe
        self.rows, self.cols = c.rows, c.cols
        dac, adc, chips, self.col_sw, self.wl_sw = wiring.wiring(c.rows, c.cols, c.cell == "1T1R")
        self.pins: dict[int, Pin] = {}
        self.spi = SPIBus()
        self.spi.log = _FrameCount()  # a long run would keep every frame: count them instead
        self.dacs = [AD5676Model(f"DAC{k} (AD5676R)", self._pin(p)) for k, p in enumerate(dac)]
        self.adcs = [ADS131M08Model(f"ADC{k} (ADS131M08)", self._pin(p), self._source(k)) for k, p in enumerate(adc)]
        self.switches = ADG1414Chain("line switches (ADG1414 chain)", self._pin(wiring.PIN_SWITCH_SYNC), chips)
        for chip in self.dacs + self.adcs + [self.switches]:
            self.spi.attach(chip)
        a0, a1, a2 = (self._pin(p) for p in wiring.PIN_MUX_A)
        self.mux = ADG1408Model("TIA range mux (ADG1408)", a0, a1, a2, self._pin(wiring.PIN_MUX_EN))
        self.converted = np.zeros(8 * len(self.adcs), np.int64)
        self.windows = 0  # pulse gate windows (writes and conversions)

    @property
    def frames(self) -> int:
        """SPI transfers the chips have seen."""
        return self.spi.log.count

    def _pin(self, number: int) -> Pin:
        self.pins[number] = Pin(f"GPIO{number}")
        return self.pins[number]

    def _source(self, k: int):
        return lambda: [int(x) for x in self.converted[8 * k : 8 * k + 8]]

    def stick_adc_miso(self, k: int, level: int) -> None:
        """ADC k's data-out line stuck at a byte value (an unpowered chip, a broken trace); -1 mends it."""
        if not 0 <= k < len(self.adcs):
            raise ValueError(f"no ADC {k} on this board ({len(self.adcs)} ADCs)")
        self.adcs[k].stuck_miso = None if level < 0 else level & 0xFF

    def set_pin(self, number: int, level: int) -> None:
        pin = self.pins.get(number)
        if pin is None:
            raise ChipProtocolError(f"GPIO{number} is not wired to anything on this board")
        pin(level)

    def _apply_lines(self) -> None:
        """DAC outputs and switch states onto the front end's lines."""
        afe, rows = self.afe, self.rows
        codes = np.array([d.dac[ch] for d in self.dacs for ch in range(8)][: rows + self.cols]) - 32768
        powered = np.array([d.power_mode[ch] == 0 for d in self.dacs for ch in range(8)][: rows + self.cols])
        closed = np.array(self.switches.closed)
        afe.codes[0][:] = codes[:rows]
        afe.codes[1][:] = codes[rows:]
        afe.driven[0][:] = closed[:rows] & powered[:rows]
        afe.driven[1][:] = closed[self.col_sw : self.col_sw + self.cols] & powered[rows:]
        if afe.gate is not None:
            afe.gate[:] = closed[self.wl_sw : self.wl_sw + rows]

    def strobe(self, ns: int) -> None:
        """The pulse gate: lines on the array for ns; a write or a conversion."""
        self._apply_lines()
        self.windows += 1
        source = self.mux.connected
        if source == wiring.WRITE_MODE:
            self.afe.pulse(ns)
        elif source is not None and source < len(self.afe.config.current_ranges):
            self.converted[: self.cols] = self.afe.sample(source, ns)
        else:
            raise ChipProtocolError(
                f"pulse gate opened with the TIA feedback open (range mux disabled or on an unused source {source})"
            )


class _FrameCount(list):
    count = 0

    def append(self, item) -> None:
        self.count += 1
