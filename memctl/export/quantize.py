"""Int8 post-training quantization of the predictor MLP, TFLite style:
per-channel symmetric int8 weights, int32 bias, asymmetric int8 activations
calibrated on training data, fixed-point requantization (gemmlowp). The
integer reference here is the fixedpoint module the firmware's kernel is
checked against, so host and board compute the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memctl.export.fixedpoint import mbqm, quantize_multiplier
from memctl.export.train import MLP
from memctl_shared import predictor_blob


def _f32(v):
    """Scales live as float32 in every format (blob, ONNX, TFLite)."""
    return np.asarray(v, np.float32).astype(np.float64)


def _asym(lo: float, hi: float) -> tuple[float, int]:
    """Scale and zero point covering [lo, hi] (always including 0) in int8."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = float(_f32((hi - lo) / 255.0 or 1e-8))
    zp = int(round(-128 - lo / scale))
    return scale, max(-128, min(127, zp))


def fixed_features(x32: np.ndarray, e: int) -> np.ndarray:
    """round_half_away(x * 2^e) of float32 values, saturated to +-FIXED_MAX, from their bits as the
    board's kernel takes them (memctl_firmware/predictor.py, fixed)."""
    u = np.asarray(x32, np.float32).view(np.uint32).astype(np.int64)
    ex = (u >> 23) & 0xFF
    mant = (u & 0x7FFFFF) | np.where(ex > 0, 0x800000, 0)
    s = np.where(ex > 0, ex - 150, -149) + e
    up = mant << np.clip(s, 0, 6)
    down = (mant + (np.int64(1) << np.clip(-s - 1, 0, 62))) >> np.clip(-s, 0, 63)
    f = np.where(s >= 0, up, np.where(s > -26, down, 0))
    f = np.where(s >= 7, np.where(mant > 0, predictor_blob.FIXED_MAX, 0), f)
    return np.where(u >> 31 == 1, -f, f)


@dataclass
class QLayer:
    w: np.ndarray  # int8, out x in
    b: np.ndarray  # int32, out
    m0: np.ndarray  # int32 multipliers, out
    shift: np.ndarray  # shifts, out
    s_w: np.ndarray  # float per-channel weight scales
    s_out: float
    zp_out: int
    relu: bool


@dataclass
class QModel:
    mean: np.ndarray
    std: np.ndarray
    s_in: float
    zp_in: int
    layers: list[QLayer]

    @property
    def s_out(self) -> float:
        return self.layers[-1].s_out

    @property
    def zp_out(self) -> int:
        return self.layers[-1].zp_out

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """The firmware's arithmetic: features as float32, then fixed point
        (memctl_shared.predictor_blob.input_fixed_point) and the requantization
        the layers use, in integers."""
        x32 = np.asarray(x, np.float32).reshape(len(x), -1)
        fixed = predictor_blob.input_fixed_point(
            [float(v) for v in _f32(self.mean)], [float(v) for v in _f32(self.std)], float(self.s_in)
        )
        q = np.empty(x32.shape, np.int64)
        for i, (e, m, m0, shift) in enumerate(fixed):
            acc = fixed_features(x32[:, i], e) - m
            q[:, i] = [mbqm(int(a), m0, shift) for a in acc]
        return np.clip(q + self.zp_in, -128, 127)

    def run_int(self, xq: np.ndarray) -> np.ndarray:
        """Integer inference: int8 inputs (rows x features) -> int8 outputs."""
        a, zp = xq.astype(np.int64), self.zp_in
        for layer in self.layers:
            acc = (a - zp) @ layer.w.T.astype(np.int64) + layer.b
            out = np.empty_like(acc)
            for j in range(acc.shape[1]):
                m0, sh = int(layer.m0[j]), int(layer.shift[j])
                out[:, j] = [mbqm(int(v), m0, sh) for v in acc[:, j]]
            out += layer.zp_out
            lo = layer.zp_out if layer.relu else -128
            a, zp = np.clip(out, lo, 127), layer.zp_out
        return a

    def predict(self, x: np.ndarray) -> np.ndarray:
        return (self.run_int(self.quantize_input(x))[:, 0] - self.zp_out) * self.s_out

    def to_blob(self, i_min: float, i_max: float, feature_set: int = predictor_blob.FEATURES_P004_I) -> bytes:
        layers = [
            (
                q.w.tolist(),
                q.b.tolist(),
                q.m0.tolist(),
                q.shift.tolist(),
                predictor_blob.ACT_RELU if q.relu else predictor_blob.ACT_NONE,
                q.s_out,
                q.zp_out,
            )
            for q in self.layers
        ]
        return predictor_blob.encode_int8(
            layers, self.mean.tolist(), self.std.tolist(), i_min, i_max, self.s_in, self.zp_in, feature_set
        )


def _range(a: np.ndarray, percentile: float) -> tuple[float, float]:
    """Calibration range; below 100 % it clips rare outliers for resolution."""
    if percentile >= 100:
        return float(a.min()), float(a.max())
    return float(np.percentile(a, 100 - percentile)), float(np.percentile(a, percentile))


def quantize(m: MLP, calibration: np.ndarray, percentile: float = 100.0) -> QModel:
    """Post-training quantization of a float MLP with calibration inputs."""
    acts = m._forward(calibration)
    s_in, zp_in = _asym(*_range(acts[0], percentile))
    layers, s_prev = [], s_in
    for k, (w, b) in enumerate(zip(m.weights, m.biases, strict=True)):
        s_w = _f32(np.maximum(np.abs(w).max(axis=1), 1e-12) / 127.0)
        wq = np.clip(np.rint(w / s_w[:, None]), -127, 127).astype(np.int8)
        bq = np.rint(b / (s_prev * s_w)).astype(np.int64)
        s_out, zp_out = _asym(*_range(acts[k + 1], percentile))
        # The multiplier from the float32 scales, in double, as TFLite computes it.
        mult = [quantize_multiplier(float(s_prev * sw) / s_out) for sw in s_w]
        layers.append(
            QLayer(
                w=wq,
                b=bq,
                m0=np.array([p[0] for p in mult]),
                shift=np.array([p[1] for p in mult]),
                s_w=s_w,
                s_out=s_out,
                zp_out=zp_out,
                relu=k < len(m.weights) - 1,
            )
        )
        s_prev = s_out
    return QModel(_f32(m.mean), _f32(m.std), s_in, zp_in, layers)
