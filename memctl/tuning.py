"""Starting settings for programming a device family: limits, tolerance and
algorithm parameters derived from a DeviceModel (a preset or device file).

On real hardware the same numbers come from the user's own device file; the
algorithms then adapt (adaptive) or step (ISPP) from these starting points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memctl.algorithms import ISPP, Adaptive, Predicted
from memctl.board import Board, Limits
from memctl.devices import DeviceModel, load_device


@dataclass(frozen=True)
class Settings:
    limits: Limits
    tolerance: float  # S
    ispp: ISPP
    adaptive: Adaptive
    predicted: Predicted  # for inverse predictors (single-pulse characterization), the default workflow
    predicted_trains: Predicted  # for paper 004's forward predictors (pulse-train characterization)
    v_read: float = 0.2  # the family's read voltage, V

    def apply(self, board: Board, *, min_width: float = 0.0) -> None:
        apply_limits(board, self.limits, self.v_read, min_width=min_width)


def apply_limits(board: Board, limits: Limits, v_read: float, *, min_width: float = 0.0) -> None:
    """Set the board's read voltage and safety limits, in an order the firmware
    accepts (its read limit may never fall below V_read)."""
    if board.info().v_read > limits.v_read:
        board.configure(v_read=v_read)
    board.set_limits(limits.v_pulse, max(limits.width, min_width), limits.v_read, limits.v_disturb)
    board.configure(v_read=v_read)


def disturb_limit(d: DeviceModel) -> float:
    """The largest |V| a device of the family tolerates without switching: its
    lower mean threshold less four device-to-device sigmas (below it for all but
    3e-5 of devices), so a passive array may share pulses that keep half-selected
    devices within it."""
    return min(d.v_set, -d.v_reset) * (1 - 4 * d.threshold_spread)


def settings_for(device: DeviceModel | str, tolerance_fraction: float = 0.01) -> Settings:
    """Start just above the typical switching thresholds, step by 1 % of the
    device's voltage range, pulse at its typical width, and tolerate
    `tolerance_fraction` of its conductance range."""
    d = load_device(device)
    v_lim = d.v_max
    width = d.pulse_width
    set0 = min(d.v_set * (1 + d.threshold_spread), v_lim)
    reset0 = max(d.v_reset * (1 + d.threshold_spread), -v_lim)
    step = max(0.01, 0.01 * v_lim)
    return Settings(
        limits=Limits(v_pulse=v_lim, width=10 * width, v_read=min(1.5 * d.v_read, v_lim), v_disturb=disturb_limit(d)),
        tolerance=tolerance_fraction * (d.g_max - d.g_min),
        v_read=d.v_read,
        ispp=ISPP(v_set_start=set0, v_set_step=step, v_reset_start=reset0, v_reset_step=step, width=width),
        adaptive=Adaptive(v_set_start=set0, v_reset_start=reset0, v_step=5 * step, width=width, width_max=10 * width),
        # From below the switching thresholds (each device's own differ) to the limit, widths
        # 0.1-10x typical: the range inverse predictors are characterized and used over.
        predicted=Predicted(
            v_set_lo=0.6 * d.v_set,
            v_set_hi=v_lim,
            v_reset_lo=0.6 * d.v_reset,
            v_reset_hi=-v_lim,
            t_lo=0.1 * width,
            t_hi=10 * width,
            amplitudes=7,
            widths=3,
        ),
        # A forward model bisects amplitudes across its range: start it just above the thresholds.
        predicted_trains=Predicted(
            v_set_lo=set0,
            v_set_hi=v_lim,
            v_reset_lo=reset0,
            v_reset_hi=-v_lim,
            t_lo=0.2 * width,
            t_hi=5 * width,
            amplitudes=7,
            widths=3,
        ),
    )


def characterization_sweeps(device: DeviceModel | str, devices: list[tuple[int, int]], periods: int = 30) -> tuple:
    """Set and reset pulse-train sweeps (memctl characterize) that span a
    device family's settings: the data a predictor for it is trained on."""
    from memctl.characterize import Sweep

    d = load_device(device)
    s = settings_for(d)
    widths = [0.2 * d.pulse_width, d.pulse_width, 5 * d.pulse_width]
    up = [float(v) for v in np.linspace(s.ispp.v_set_start, d.v_max, 5)]
    down = [float(v) for v in np.linspace(s.ispp.v_reset_start, -d.v_max, 5)]
    common = {"devices": devices, "periods": periods, "t_set": widths, "v_read": [d.v_read], "t_read": [1e-4]}
    return (
        Sweep(v_set=up, reset=(-0.9 * d.v_max, 5 * d.pulse_width, 20), **common),
        Sweep(v_set=down, reset=(0.9 * d.v_max, 5 * d.pulse_width, 20), **common),
    )


def characterization_pulses(
    device: DeviceModel | str, devices: list[tuple[int, int]], pulses: int = 300, seed: int = 0
):
    """Single pulses over the family's predicted-programming ranges (memctl
    characterize --mode pulses): the data an inverse predictor is trained on."""
    from memctl.characterize import PulseSweep

    d = load_device(device)
    p = settings_for(d).predicted
    return PulseSweep(
        devices=devices,
        pulses=pulses,
        v_set=(p.v_set_lo, p.v_set_hi),
        v_reset=(p.v_reset_lo, p.v_reset_hi),
        width=(p.t_lo, p.t_hi),
        v_read=d.v_read,
        seed=seed,
        g_range=(d.g_min, d.g_max),
    )


def form(
    board: Board, v_start: float, *, threshold: float = 5e-6, step: float = 0.05, width: float = 1e-3
) -> np.ndarray:
    """Automated forming (paper 003) of the whole array up to the pulse limit: the mask of devices
    that conduct afterwards (memctl.instruments.form_array keeps each device's forming voltage)."""
    from memctl.instruments import form_array

    f = form_array(board, v_start=v_start, threshold=threshold, step=step, width=width, progress=False)
    return f.conductance > threshold
