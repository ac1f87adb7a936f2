"""Program-error models: what a weight becomes once it is a conductance.

StudentTError is paper 001's sampler (eqs. 4-5): with y the target
conductance normalized to [0, 1],
    y_actual = Q(y_ideal) + T(loc(y), s(y), nu(y)),
Q the level quantization and T a Student-t variate whose location, scale and
degrees of freedom depend on the target level; they are fitted (maximum
likelihood, scipy.stats.t.fit) per target bin from the board's own
programming results. LogNormalDrift is paper 000's eq. 4, theta' = theta e^lambda.
perturb() pushes a network through either model via the differential
mapping the deployment uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from memctl.onnx_mlp import Layer
from memctl.placement import map_layer, quantize_levels


@dataclass
class StudentTError:
    """Per-bin Student-t error of normalized conductance (paper 001 eqs. 4-5)."""

    edges: np.ndarray  # bin edges over normalized target y in [0, 1]
    loc: np.ndarray
    scale: np.ndarray
    df: np.ndarray
    levels: int | None = None  # Q: quantize targets to this many levels first
    counts: list = field(default_factory=list)

    @classmethod
    def fit(
        cls, targets, achieved, g_range: tuple[float, float], *, bins: int = 6, levels: int | None = None
    ) -> StudentTError:
        """Fit from programmed devices: targets and achieved conductances (S).
        Bins with too few devices borrow the fit of all devices."""
        g_lo, g_hi = g_range
        t = (np.ravel(targets) - g_lo) / (g_hi - g_lo)
        a = (np.ravel(achieved) - g_lo) / (g_hi - g_lo)
        ok = np.isfinite(t) & np.isfinite(a)
        t, e = t[ok], (a - t)[ok]
        if len(e) < 8:
            raise ValueError(f"need at least 8 programmed devices to fit a program-error model, got {len(e)}")
        edges = np.linspace(0, 1, bins + 1)
        pooled = stats.t.fit(e)
        params, counts = [], []
        for k in range(bins):
            sel = (t >= edges[k]) & ((t < edges[k + 1]) | (k == bins - 1))
            counts.append(int(sel.sum()))
            params.append(stats.t.fit(e[sel]) if sel.sum() >= 20 else pooled)
        df, loc, scale = (np.array(v) for v in zip(*params, strict=True))
        return cls(edges, loc, scale, np.clip(df, 0.5, 1e3), levels, counts)

    def sample(self, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """y_actual for normalized targets y (any shape), clipped to [0, 1]."""
        y = np.asarray(y, float)
        q = quantize_levels(y, 0.0, 1.0, self.levels) if self.levels else y
        k = np.clip(np.searchsorted(self.edges, y, side="right") - 1, 0, len(self.loc) - 1)
        t = stats.t.rvs(self.df[k], size=y.shape, random_state=rng)
        return np.clip(q + t * self.scale[k] + self.loc[k], 0.0, 1.0)


@dataclass
class LogNormalDrift:
    """Paper 000 eq. 4: each conductance multiplied by e^lambda, lambda ~ N(0, sigma^2)."""

    sigma: float

    def sample(self, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        y = np.asarray(y, float)
        return np.clip(y * np.exp(rng.normal(0.0, self.sigma, y.shape)), 0.0, 1.0)


def perturb(
    layers: list[Layer], model, rng: np.random.Generator, g_range: tuple[float, float] = (10e-6, 100e-6)
) -> list[Layer]:
    """The network a deployment would hold: every weight and bias mapped to a
    differential pair, each conductance drawn from the error model, mapped back."""
    g_lo, g_hi = g_range
    out = []
    for layer in layers:
        t, scale = map_layer(layer, g_lo, g_hi)
        y = model.sample((t - g_lo) / (g_hi - g_lo), rng)
        g = g_lo + y * (g_hi - g_lo)
        w = (g[:, 0::2] - g[:, 1::2]) * scale  # (inputs + 1) x outputs
        out.append(Layer(w[:-1].T.copy(), w[-1].copy(), layer.activation))
    return out
