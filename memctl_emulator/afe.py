"""Analog front end of the emulated board: DACs on every line (each may also
float), a pulse switch, TIA + ADC on every column with selectable current
ranges, and a simulated clock.

The firmware sees only codes: DAC codes in, ADC codes out, as on a real board.
Voltages and currents exist only here and in the crossbar model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from memctl.devices import DeviceModel
from memctl_emulator.array_circuit import LineDrive
from memctl_emulator.crossbar import Crossbar


@dataclass(frozen=True)
class AFEConfig:
    """The emulated board: converters, ranges, array size and device."""

    rows: int = 32
    cols: int = 32
    dac_bits: int = 16
    dac_full_scale: float = 0.0  # V, signed; 0 = cover the device's v_max (at least 2.5 V)
    adc_bits: int = 24
    # TIA full-scale currents (A, signed). The firmware auto-ranges among them.
    current_ranges: tuple[float, ...] = (10e-6, 100e-6, 1e-3, 10e-3)
    sample_time: float = 100e-6  # paper 003 Supp.: 100 us read pulses
    line_resistance: float = 0.0  # ohm per wire segment between crosspoints
    cell: str = "0T1R"  # "0T1R" passive, or "1T1R" with per-row access transistors
    name: str = "memctl-emulated-afe"
    device: DeviceModel = field(default_factory=DeviceModel)

    def validate(self) -> None:
        if not (1 <= self.rows <= 1024 and 1 <= self.cols <= 1024):
            raise ValueError(f"array size {self.rows}x{self.cols} outside 1..1024")
        if not 4 <= self.dac_bits <= 16 or not 4 <= self.adc_bits <= 31:
            raise ValueError("DAC resolution must be 4..16 bits and ADC 4..31 bits")
        if self.dac_full_scale < 0 or not self.current_ranges or min(self.current_ranges) <= 0:
            raise ValueError("full-scale ranges must be positive")
        if self.cell not in ("0T1R", "1T1R"):
            raise ValueError(f"cell must be 0T1R or 1T1R, got {self.cell!r}")
        if list(self.current_ranges) != sorted(self.current_ranges):
            raise ValueError("current ranges must be in increasing order")
        self.device.validate()

    def resolved(self) -> AFEConfig:
        """This config with its DAC full scale settled (0: cover the device's v_max, at least 2.5 V)."""
        if self.dac_full_scale:
            return self
        return dataclasses.replace(self, dac_full_scale=max(2.5, 1.25 * self.device.v_max))


class AnalogFrontEnd:
    """Executes bus operations against a crossbar and keeps simulated time."""

    def __init__(self, config: AFEConfig, seed: int = 0):
        config = config.resolved()
        config.validate()
        self.config = config
        self.xbar = Crossbar(config.rows, config.cols, config.device, seed=seed, line_resistance=config.line_resistance)
        self.dac_max = (1 << (config.dac_bits - 1)) - 1
        self.adc_max = (1 << (config.adc_bits - 1)) - 1
        self.codes = [np.zeros(config.rows, np.int32), np.zeros(config.cols, np.int32)]
        self.driven = [np.ones(config.rows, bool), np.ones(config.cols, bool)]
        self.gate = np.ones(config.rows, bool) if config.cell == "1T1R" else None
        self.clock = 0.0
        self.pulses = 0
        self.conversions = 0
        # Peaks since the last clear_peaks(): what the safety tests hold the firmware to.
        self.max_pulse_v = 0.0  # largest |V_row - V_col| any device could see in a pulse
        self.max_pulse_width = 0.0
        self.max_read_v = 0.0  # the same during a conversion (reads, VMMs)
        # Per device, the largest |V_row - V_col| a pulse put across it (gated-off 1T1R rows: none):
        # the truth half-select tests hold shared pulses to.
        self.device_peaks = np.zeros((config.rows, config.cols))
        # Injected faults: pinned ADC columns and a pending brown-out.
        self.saturated = np.zeros(config.cols, bool)
        self.brownout: float | None = None  # share of the next pulse's width applied before power is lost
        self.brownout_after = 0  # pulses that pass untouched before that one
        self.brownouts = 0
        self.powered = True

    def volts(self, group: int) -> np.ndarray:
        return self.codes[group] * (self.config.dac_full_scale / self.dac_max)

    def drive(self) -> LineDrive:
        return LineDrive(self.volts(0), self.volts(1), self.driven[0], self.driven[1], self.gate)

    def _check_code(self, code: int) -> None:
        if not -self.dac_max - 1 <= code <= self.dac_max:
            raise ValueError(f"DAC code {code} outside {self.config.dac_bits}-bit range")

    def _line_group(self, group: int) -> int:
        if group not in (0, 1):
            raise ValueError(f"line group {group} must be rows (0) or cols (1)")
        return group

    def _line(self, group: int, line: int) -> int:
        n = len(self.codes[self._line_group(group)])
        if not 0 <= line < n:
            raise ValueError(f"line {line} outside 0..{n - 1}")
        return line

    def fill(self, group: int, code: int) -> None:
        self._check_code(code)
        for g in (0, 1) if group == 2 else (self._line_group(group),):
            self.codes[g][:] = code
            self.driven[g][:] = True

    def set_line(self, group: int, line: int, code: int) -> None:
        self._check_code(code)
        line = self._line(group, line)
        self.codes[group][line] = code
        self.driven[group][line] = True

    def set_lines(self, group: int, first: int, codes: np.ndarray) -> None:
        g = self._line_group(group)
        if first < 0 or first + len(codes) > len(self.codes[g]):
            raise ValueError(f"lines {first}..{first + len(codes) - 1} outside 0..{len(self.codes[g]) - 1}")
        for c in (int(codes.min()), int(codes.max())) if len(codes) else ():
            self._check_code(c)
        self.codes[g][first : first + len(codes)] = codes
        self.driven[g][first : first + len(codes)] = True

    def float_line(self, group: int, line: int) -> None:
        for g in (0, 1) if group == 2 else (self._line_group(group),):
            if line == 0xFFFF:
                self.driven[g][:] = False
            else:
                self.driven[g][self._line(g, line)] = False

    def set_gate(self, on: int, row: int) -> None:
        """1T1R word line: turn a row's access transistors on or off (row 0xFFFF: all)."""
        if self.gate is None:
            raise ValueError("this array has no access transistors (0T1R)")
        if row == 0xFFFF:
            self.gate[:] = bool(on)
        else:
            self.gate[self._line(0, row)] = bool(on)

    @staticmethod
    def _largest_across(drive: LineDrive) -> float:
        """Largest |V_row - V_col| between any driven row and driven column."""
        vr, vc = drive.v_rows[drive.row_driven], drive.v_cols[drive.col_driven]
        if not (len(vr) and len(vc)):
            return 0.0
        return max(float(vr.max() - vc.min()), float(vc.max() - vr.min()))

    def clear_peaks(self) -> None:
        self.max_pulse_v = self.max_pulse_width = self.max_read_v = 0.0
        self.device_peaks[:] = 0.0

    def _track_devices(self, drive: LineDrive) -> None:
        across = np.abs(drive.v_rows[:, None] - drive.v_cols[None, :])
        across[~drive.row_driven] = 0.0
        across[:, ~drive.col_driven] = 0.0
        if drive.gate is not None:
            across[~drive.gate] = 0.0
        np.maximum(self.device_peaks, across, out=self.device_peaks)

    def pulse(self, width_ns: int) -> None:
        width = width_ns * 1e-9
        if self.brownout is not None and self.brownout_after:
            self.brownout_after -= 1
        elif self.brownout is not None:  # power fails part-way through this pulse
            width *= self.brownout
            self.brownout = None
            self.brownouts += 1
            self.powered = False
        drive = self.drive()
        self.max_pulse_v = max(self.max_pulse_v, self._largest_across(drive))
        self.max_pulse_width = max(self.max_pulse_width, width)
        self._track_devices(drive)
        self.xbar.apply(drive, width)
        self.clock += width
        self.pulses += 1

    def wait(self, us: int) -> None:
        dt = us * 1e-6
        self.xbar.advance(dt)
        self.clock += dt

    def sample(self, current_range: int, integration_ns: int = 0) -> np.ndarray:
        ranges = self.config.current_ranges
        if not 0 <= current_range < len(ranges):
            raise ValueError(f"current range {current_range} outside 0..{len(ranges) - 1}")
        t = integration_ns * 1e-9 or self.config.sample_time
        drive = self.drive()
        self.max_read_v = max(self.max_read_v, self._largest_across(drive))
        self.conversions += 1
        # Longer integration averages more samples: noise falls as 1/sqrt(t).
        amps = self.xbar.column_currents(drive, noise_scale=float(np.sqrt(self.config.sample_time / t)))
        self.xbar.advance(t)
        self.clock += t
        codes = np.rint(amps / ranges[current_range] * self.adc_max)
        codes[self.saturated] = np.where(codes[self.saturated] < 0, -self.adc_max - 1, self.adc_max)
        return np.clip(codes, -self.adc_max - 1, self.adc_max).astype("<i4")

    def fault(self, kind: int, row: int, col: int, value: float) -> int:
        """Inject a fault (afe_bus FAULT_*); returns the brown-outs so far."""
        from memctl_emulator.hal_backends import afe_bus as bus

        if kind == bus.FAULT_STUCK:
            xb = self.xbar
            r, c = self._line(0, row), self._line(1, col)
            xb.g_stuck[r, c] = xb.conductance[r, c]
            xb.stuck[r, c] = True
        elif kind == bus.FAULT_SATURATE:
            cols = slice(None) if col == 0xFFFF else self._line(1, col)
            self.saturated[cols] = bool(value)
        elif kind == bus.FAULT_BROWNOUT:
            if not 0 <= value <= 1:
                raise ValueError("brown-out share of the pulse must be in [0, 1]")
            self.brownout = float(value)
            self.brownout_after = row
        elif kind != bus.FAULT_QUERY:
            raise ValueError(f"unknown fault kind {kind}")
        return self.brownouts
