"""The programming oracle: knows a device's true state and parameters and,
before each pulse, picks from a candidate grid the pulse whose noise-free
outcome lands nearest the target. It then applies that pulse with the real
(noisy) physics and verifies, like any write-verify loop. Its pulse count is
the benchmark's lower bound.

It works on an isolated copy of each device, so it never disturbs neighbours
and needs no firmware: a bound, not an algorithm a board could run.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np

from memctl_emulator.array_circuit import LineDrive
from memctl_emulator.crossbar import Crossbar


def isolate(xb: Crossbar, r: int, c: int, copies: int = 1, noise: bool = True) -> Crossbar:
    """A copies x 1 crossbar, every row a copy of device (r, c) in its current state."""
    out = copy.copy(xb)
    out.rows, out.cols, out.line_resistance = copies, 1, 0.0
    for name, value in vars(xb).items():
        if isinstance(value, np.ndarray) and value.shape == (xb.rows, xb.cols):
            setattr(out, name, np.repeat(value[r : r + 1, c : c + 1], copies, axis=0).copy())
    if not noise:
        out.device = dataclasses.replace(xb.device, c2c_sigma=0.0, c2c_additive=0.0)
    out.rng = np.random.default_rng(xb.rng.integers(1 << 63))
    return out


@dataclass
class OracleResult:
    g: float
    pulses: int
    ok: bool
    energy: float
    time: float
    device: Crossbar  # the isolated device in its final state


def program(
    xb: Crossbar, r: int, c: int, target: float, tol: float, max_pulses: int, volts: np.ndarray, widths: np.ndarray
) -> OracleResult:
    dev = isolate(xb, r, c)
    grid_v, grid_w = (a.ravel() for a in np.meshgrid(volts, widths))
    zeros = np.zeros(1)
    pulses, energy, t = 0, 0.0, 0.0
    g = float(dev.conductance[0, 0])
    while abs(g - target) > tol and pulses < max_pulses:
        best, best_err = 0, np.inf
        for wdt in np.unique(grid_w):  # one vectorized prediction per width
            sel = np.flatnonzero(grid_w == wdt)
            trial = isolate(dev, 0, 0, copies=len(sel), noise=False)
            trial.apply(LineDrive.driven(grid_v[sel], zeros), float(wdt))
            err = np.abs(trial.conductance[:, 0] - target)
            k = int(np.argmin(err))
            if err[k] < best_err:
                best, best_err = sel[k], err[k]
        v, w = float(grid_v[best]), float(grid_w[best])
        dev.apply(LineDrive.driven(np.array([v]), zeros), w)
        energy += v * v * g * w
        t += w
        pulses += 1
        g = float(dev.conductance[0, 0])
    return OracleResult(g, pulses, abs(g - target) <= tol, energy, t, dev)
