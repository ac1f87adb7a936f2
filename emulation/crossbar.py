"""Crossbar physics: a rows x cols array of memristive devices, vectorized in numpy.

Each device holds an internal state w in [0, 1]; its conductance is
G = g_min + w (g_max - g_min). A voltage V across a device for a time t moves w
only beyond a switching threshold, at a rate that grows exponentially with the
overdrive, and saturates towards the bound it is driven to:

    potentiation (V > v_set):    w <- 1 - (1 - w) exp(-k_set(V) t)
    depression   (V < v_reset):  w <- w exp(-k_reset(V) t)
    k(V) = rate * (exp(|V - v_th| / v0) - 1)

The closed form makes one pulse of any width exact and keeps the update
state-dependent and nonlinear (large steps far from the bound, small near it).
Cycle-to-cycle noise multiplies k by a log-normal factor e^lambda,
lambda ~ N(0, sigma^2) (paper 000, eq. 4). Device-to-device spread draws each
device's thresholds and rate once. Default numbers follow paper 003
(Pt/Al2O3/TiO2 passive crossbar): 10-100 uS range, set thresholds around
0.7-1.3 V, reset around -1 to -1.9 V, 0.2 V reads. Issue "device physics"
deepens this model; the interface (apply / column_currents) stays.

Every device sees V_row[i] - V_col[j], so half-select disturb under V/2
biasing is a consequence of the line voltages, not a rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DeviceParams:
    """One device family. Units: siemens, volts, seconds."""

    g_min: float = 10e-6  # paper 003: 10-100 uS working range
    g_max: float = 100e-6
    v_set: float = 0.85  # mean set threshold (paper 003: 0.7-1.3 V)
    v_reset: float = -1.1  # mean reset threshold (paper 003: -1 to -1.9 V)
    v0: float = 0.1  # voltage scale of the exponential switching rate
    rate_set: float = 25.0  # 1/s at (e - 1) overdrive factor
    rate_reset: float = 25.0
    threshold_spread: float = 0.04  # d2d relative sigma of thresholds
    rate_spread: float = 0.3  # d2d log-normal sigma of rates (paper 004: ~2.5x)
    c2c_sigma: float = 0.2  # c2c log-normal sigma (paper 000 eq. 4)
    read_noise_rel: float = 5e-5  # relative sigma of a read (paper 003 averages 10,000 samples)
    read_noise_abs: float = 0.5e-9  # sigma of each column's TIA input noise, A

    def validate(self) -> None:
        if not 0 < self.g_min < self.g_max:
            raise ValueError(f"need 0 < g_min < g_max, got {self.g_min}, {self.g_max}")
        if self.v_set <= 0 or self.v_reset >= 0:
            raise ValueError("v_set must be > 0 and v_reset < 0")
        for name in ("v0", "rate_set", "rate_reset"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("threshold_spread", "rate_spread", "c2c_sigma", "read_noise_rel", "read_noise_abs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


class Crossbar:
    """State and physics of one array. Every operation is one numpy pass."""

    def __init__(self, rows: int, cols: int, device: DeviceParams | None = None, seed: int = 0):
        if rows < 1 or cols < 1:
            raise ValueError("array needs at least one row and one column")
        self.rows, self.cols = rows, cols
        self.device = device or DeviceParams()
        self.device.validate()
        self.rng = np.random.default_rng(seed)
        d, shape = self.device, (rows, cols)
        self.v_set = d.v_set * (1 + d.threshold_spread * self.rng.standard_normal(shape))
        self.v_reset = d.v_reset * (1 + d.threshold_spread * self.rng.standard_normal(shape))
        self.k_set = d.rate_set * np.exp(d.rate_spread * self.rng.standard_normal(shape))
        self.k_reset = d.rate_reset * np.exp(d.rate_spread * self.rng.standard_normal(shape))
        self.w = self.rng.uniform(0.0, 0.3, shape)

    @property
    def conductance(self) -> np.ndarray:
        d = self.device
        return d.g_min + self.w * (d.g_max - d.g_min)

    def apply(self, v_rows: np.ndarray, v_cols: np.ndarray, width: float) -> int:
        """Hold the line voltages for `width` seconds; returns devices that moved."""
        v = v_rows[:, None] - v_cols[None, :]
        d = self.device
        up = v > self.v_set
        down = v < self.v_reset
        moved = up | down
        n = int(moved.sum())
        if n == 0:
            return 0
        noise = np.exp(d.c2c_sigma * self.rng.standard_normal(n))
        ks = np.zeros_like(self.w)
        over = np.where(up, v - self.v_set, self.v_reset - v)
        rate = np.where(up, self.k_set, self.k_reset)
        ks[moved] = rate[moved] * np.expm1(over[moved] / d.v0) * noise
        decay = np.exp(-ks * width)
        self.w = np.where(up, 1.0 - (1.0 - self.w) * decay, np.where(down, self.w * decay, self.w))
        return n

    def column_currents(self, v_rows: np.ndarray, v_cols: np.ndarray) -> np.ndarray:
        """Current into each column's virtual ground (A), with read noise."""
        i_dev = self.conductance * (v_rows[:, None] - v_cols[None, :])
        d = self.device
        noisy = i_dev * (1 + d.read_noise_rel * self.rng.standard_normal(i_dev.shape))
        return noisy.sum(axis=0) + d.read_noise_abs * self.rng.standard_normal(self.cols)
