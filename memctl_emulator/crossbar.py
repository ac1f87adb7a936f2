"""Crossbar physics: device states and the resistive network around them.

Device dynamics are described in devices.py (DeviceModel). This module keeps
the per-device state as numpy arrays and applies pulses, reads and waits to
the whole array at once; array_circuit.py turns line voltages into the
voltage every device sees, so half-select disturb, sneak paths and IR drop
follow from the circuit rather than from rules.
"""

from __future__ import annotations

import numpy as np

from memctl.devices import DeviceModel
from memctl_emulator.array_circuit import LineDrive, WireCache, solve

HARDEN_CAP = 0.05


class Crossbar:
    """State and physics of one rows x cols array (0T1R passive by default)."""

    def __init__(
        self,
        rows: int,
        cols: int,
        device: DeviceModel | None = None,
        seed: int = 0,
        line_resistance: float = 0.0,
    ):
        if rows < 1 or cols < 1:
            raise ValueError("array needs at least one row and one column")
        if not (np.isfinite(line_resistance) and line_resistance >= 0):
            raise ValueError("line_resistance must be >= 0 ohm per segment")
        self.rows, self.cols = rows, cols
        self.device = d = (device or DeviceModel()).validate()
        self.line_resistance = float(line_resistance)
        self.wires = WireCache()  # factorizations of the wire network, updated pulse by pulse
        self.rng = rng = np.random.default_rng(seed)
        shape = (rows, cols)
        self.v_set = d.v_set * (1 + d.threshold_spread * rng.standard_normal(shape))
        self.v_reset = d.v_reset * (1 + d.threshold_spread * rng.standard_normal(shape))
        self.k_set = d.rate_set * np.exp(d.rate_spread * rng.standard_normal(shape))
        self.k_reset = d.rate_reset * np.exp(d.rate_spread * rng.standard_normal(shape))
        self.g_scale = np.exp(d.g_spread * rng.standard_normal(shape))
        self.w = rng.uniform(0.0, 0.3, shape)
        self.s_p = np.ones(shape)  # susceptibility to set pulses
        self.s_d = np.ones(shape)  # susceptibility to reset pulses
        # Last increment of each kind (inc) and how much of it is still fresh.
        self.fresh_p, self.fresh_d = np.zeros(shape), np.zeros(shape)
        self.inc_p, self.inc_d = np.zeros(shape), np.zeros(shape)
        # The strongest nominal drive each direction has seen since it was softened.
        self.xc_p, self.xc_d = np.zeros(shape), np.zeros(shape)
        self.stuck = rng.random(shape) < d.stuck_fraction
        self.g_stuck = rng.uniform(d.g_min, d.g_max, shape)
        self.formed = np.full(shape, d.v_form == 0)
        if d.v_form:
            self.v_form = d.v_form * (1 + d.threshold_spread * rng.standard_normal(shape))

    # -- state -------------------------------------------------------------
    @property
    def conductance(self) -> np.ndarray:
        """Conductance at the reference voltage, S (what a read reports)."""
        d = self.device
        g = (d.g_min + self.w * (d.g_max - d.g_min)) * self.g_scale
        g = np.where(self.formed, g, d.g_pristine)
        return np.where(self.stuck, self.g_stuck, g)

    def ranges(self) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest conductance each device can reach (stuck and
        pristine devices: where they are)."""
        d = self.device
        lo, hi = d.g_min * self.g_scale, d.g_max * self.g_scale
        fixed = self.stuck | ~self.formed
        g = self.conductance
        return np.where(fixed, g, lo), np.where(fixed, g, hi)

    def device_current(self, v: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
        """Current through each device at voltage v (sinh I-V when iv_b > 0)."""
        g = self.conductance if g is None else g
        b = self.device.iv_b
        if b == 0:
            return g * v
        vref = self.device.iv_vref
        return g * vref * np.sinh(b * v) / np.sinh(b * vref)

    # -- operations ----------------------------------------------------------
    def device_voltages(self, drive: LineDrive) -> np.ndarray:
        return solve(self.conductance, drive, self.line_resistance, self.wires).v_device

    def apply(self, drive: LineDrive, width: float) -> int:
        """Hold the line drive for `width` seconds; returns devices that switched."""
        v = self.device_voltages(drive)
        d = self.device
        if d.v_form:
            newly = ~self.formed & (v >= self.v_form)
            if newly.any():
                self.formed |= newly
                self.w[newly] = 0.0
        active = self.formed & ~self.stuck
        up = active & (v > self.v_set)
        down = active & (v < self.v_reset)
        moved = up | down
        n = int(moved.sum())
        if n:
            self._switch(v, width, up, down, moved, n)
        self.advance(width)
        return n

    # What a pulse can change; the thresholds and rates it reads.
    _STATE = ("w", "s_p", "s_d", "fresh_p", "fresh_d", "inc_p", "inc_d", "xc_p", "xc_d")
    _READ = ("v_set", "v_reset", "k_set", "k_reset")

    def _switch(self, v, width, up, down, moved, n) -> None:
        """The switching update on the moved devices only: every array gathered to them, updated, put back.
        Elementwise and drawing the same random numbers in the same order, it is the whole-array update
        (which touches nothing but the moved devices) at the cost of the few devices a pulse moves."""
        idx = np.flatnonzero(moved)
        whole = {k: getattr(self, k) for k in self._STATE + self._READ}
        try:
            for k, a in whole.items():
                setattr(self, k, a.ravel()[idx])
            self._switch_all(v.ravel()[idx], width, up.ravel()[idx], down.ravel()[idx], np.ones(n, bool), n)
            part = {k: getattr(self, k) for k in self._STATE}
        finally:
            for k, a in whole.items():
                setattr(self, k, a)
        for k, a in part.items():
            whole[k].ravel()[idx] = a

    def _switch_all(self, v, width, up, down, moved, n) -> None:
        d = self.device
        over = np.where(up, (v - self.v_set) / d.v0_set, (self.v_reset - v) / d.v0_reset)
        rate = np.where(up, self.k_set, self.k_reset)
        x_nom = np.zeros_like(self.w)  # the drive this pulse is meant to give
        x_nom[moved] = rate[moved] * np.expm1(over[moved]) * width
        x = x_nom.copy()
        x[moved] *= np.exp(d.c2c_sigma * self.rng.standard_normal(n))
        w = self.w
        if d.hardening or d.hardening_drive or d.fresh_mobility:
            w = self._fresh_and_hardening(w, x, x_nom, up, down)
        new = np.where(up, 1.0 - (1.0 - w) * np.exp(-x * self.s_p), np.where(down, w * np.exp(-x * self.s_d), w))
        # What this pulse moved is "fresh" until the next pulse of its kind.
        self.fresh_p = np.where(up, new - w, self.fresh_p)
        self.fresh_d = np.where(down, w - new, self.fresh_d)
        self.inc_p = np.where(up, self.fresh_p, self.inc_p)
        self.inc_d = np.where(down, self.fresh_d, self.inc_d)
        if d.c2c_additive:
            new[moved] += d.c2c_additive * self.rng.standard_normal(n)
        self.w = np.clip(new, 0.0, 1.0)

    def _fresh_and_hardening(self, w, x, x_nom, up, down) -> np.ndarray:
        """An opposite pulse first pulls back part of the last, still fresh
        increment; a pulse of the same kind consolidates it, hardening the
        device in proportion to how much of it survived. A drive stronger
        than the one the device is conditioned to undoes part of the
        hardening (s <- s^(x_cond / x)), so raising V or t beats saturation."""
        d = self.device
        with np.errstate(divide="ignore", invalid="ignore"):
            self.s_p = self.s_p ** np.where(up & (x_nom > self.xc_p), self.xc_p / x_nom, 1.0)
            self.s_d = self.s_d ** np.where(down & (x_nom > self.xc_d), self.xc_d / x_nom, 1.0)
        pull = -np.expm1(-d.fresh_mobility * x)
        back_p = np.where(down, pull * self.fresh_p, 0.0)
        back_d = np.where(up, pull * self.fresh_d, 0.0)
        self.fresh_p = self.fresh_p - back_p
        self.fresh_d = self.fresh_d - back_d
        with np.errstate(divide="ignore", invalid="ignore"):
            kept_p = np.where(self.inc_p > 0, self.fresh_p / self.inc_p, 0.0)
            kept_d = np.where(self.inc_d > 0, self.fresh_d / self.inc_d, 0.0)
        # Opposite pulses also soften: the susceptibility recovers with drive.
        soften = -np.expm1(-np.where(down, d.recovery_p, d.recovery_d) * x)
        # In proportion to the drive, but at most e^(-HARDEN_CAP h) per pulse, so
        # large initialization pulses still reach the bounds (paper 001: +-6 V).
        harden = np.exp(-d.hardening_drive * x / (1 + x / HARDEN_CAP))
        hard_p = self.s_p * (1 - d.hardening * kept_p) * harden
        hard_d = self.s_d * (1 - d.hardening * kept_d) * harden
        self.s_p = np.where(up, hard_p, self.s_p + (1 - self.s_p) * soften * down)
        self.s_d = np.where(down, hard_d, self.s_d + (1 - self.s_d) * soften * up)
        # Conditioning follows the strongest drive; softening forgets it.
        self.xc_p = np.where(up, np.maximum(self.xc_p, x_nom), self.xc_p * (1 - soften * down))
        self.xc_d = np.where(down, np.maximum(self.xc_d, x_nom), self.xc_d * (1 - soften * up))
        return np.clip(w - back_p + back_d, 0.0, 1.0)

    def advance(self, dt: float) -> None:
        """Let simulated time pass: relaxation toward w_rest."""
        tau = self.device.relax_tau
        if tau and dt > 0:
            self.w = self.device.w_rest + (self.w - self.device.w_rest) * np.exp(-dt / tau)

    def column_currents(self, drive: LineDrive, noise_scale: float = 1.0) -> np.ndarray:
        """Current into each column's sense amplifier (A), with read noise."""
        g = self.conductance
        net = solve(g, drive, self.line_resistance, self.wires)
        i_dev = self.device_current(net.v_device, g)
        d = self.device
        # The network solve is linear in G; add each device's I-V nonlinearity
        # at the node voltages it found (exact when the lines are ideal).
        base = net.i_columns + (i_dev - g * net.v_device).sum(axis=0)
        noise = d.read_noise_rel * noise_scale * (np.abs(i_dev) * self.rng.standard_normal(i_dev.shape)).sum(axis=0)
        return base + noise + d.read_noise_abs * noise_scale * self.rng.standard_normal(self.cols)
