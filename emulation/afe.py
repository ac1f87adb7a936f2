"""Analog front end of the emulated board: DACs on every line, TIA + ADC on
every column, a pulse switch, and a simulated clock.

The firmware sees only codes: DAC codes in, ADC codes out, as on a real board.
Voltages and currents exist only here and in the crossbar model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from memctl_emulation.crossbar import Crossbar, DeviceParams


@dataclass(frozen=True)
class AFEConfig:
    """Converter resolutions and ranges of the emulated board."""

    rows: int = 32
    cols: int = 32
    dac_bits: int = 16
    dac_full_scale: float = 2.5  # V, signed: codes span +-full scale
    adc_bits: int = 16
    # TIA current ranges (A full scale, signed). Range 0 suits single-device
    # reads at 0.2 V (paper 003); range 1 suits whole-column VMM sums.
    current_ranges: tuple[float, ...] = (50e-6, 1e-3)
    sample_time: float = 100e-6  # paper 003 Supp.: 100 us read pulses
    name: str = "memctl-emulated-afe"
    device: DeviceParams = field(default_factory=DeviceParams)

    def validate(self) -> None:
        if not (1 <= self.rows <= 1024 and 1 <= self.cols <= 1024):
            raise ValueError(f"array size {self.rows}x{self.cols} outside 1..1024")
        if not 4 <= self.dac_bits <= 16 or not 4 <= self.adc_bits <= 16:
            raise ValueError("DAC and ADC resolutions must be 4..16 bits")
        if self.dac_full_scale <= 0 or not self.current_ranges or min(self.current_ranges) <= 0:
            raise ValueError("full-scale ranges must be positive")
        self.device.validate()


class AnalogFrontEnd:
    """Executes bus operations against a crossbar and keeps simulated time."""

    def __init__(self, config: AFEConfig, seed: int = 0):
        config.validate()
        self.config = config
        self.xbar = Crossbar(config.rows, config.cols, config.device, seed=seed)
        self.dac_max = (1 << (config.dac_bits - 1)) - 1
        self.adc_max = (1 << (config.adc_bits - 1)) - 1
        self.codes = [np.zeros(config.rows, np.int32), np.zeros(config.cols, np.int32)]
        self.clock = 0.0
        self.pulses = 0

    def volts(self, group: int) -> np.ndarray:
        return self.codes[group] * (self.config.dac_full_scale / self.dac_max)

    def _check_code(self, code: int) -> None:
        if not -self.dac_max - 1 <= code <= self.dac_max:
            raise ValueError(f"DAC code {code} outside {self.config.dac_bits}-bit range")

    def fill(self, group: int, code: int) -> None:
        self._check_code(code)
        for g in self.codes if group == 2 else [self._line_group(group)]:
            g[:] = code

    def _line_group(self, group: int) -> np.ndarray:
        if group not in (0, 1):
            raise ValueError(f"line group {group} must be rows (0) or cols (1)")
        return self.codes[group]

    def set_line(self, group: int, line: int, code: int) -> None:
        self._check_code(code)
        g = self._line_group(group)
        if not 0 <= line < len(g):
            raise ValueError(f"line {line} outside 0..{len(g) - 1}")
        g[line] = code

    def set_lines(self, group: int, first: int, codes: np.ndarray) -> None:
        g = self._line_group(group)
        if first < 0 or first + len(codes) > len(g):
            raise ValueError(f"lines {first}..{first + len(codes) - 1} outside 0..{len(g) - 1}")
        for c in (int(codes.min()), int(codes.max())) if len(codes) else ():
            self._check_code(c)
        g[first : first + len(codes)] = codes

    def pulse(self, width_ns: int) -> None:
        width = width_ns * 1e-9
        self.xbar.apply(self.volts(0), self.volts(1), width)
        self.clock += width
        self.pulses += 1

    def sample(self, current_range: int) -> np.ndarray:
        ranges = self.config.current_ranges
        if not 0 <= current_range < len(ranges):
            raise ValueError(f"current range {current_range} outside 0..{len(ranges) - 1}")
        amps = self.xbar.column_currents(self.volts(0), self.volts(1))
        self.clock += self.config.sample_time
        codes = np.rint(amps / ranges[current_range] * self.adc_max)
        return np.clip(codes, -self.adc_max - 1, self.adc_max).astype("<i2")
