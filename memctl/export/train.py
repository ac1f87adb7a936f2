"""Fit the on-board predictor from `memctl characterize` files, in numpy.

Pulse trains (paper 004, feature set 1): features per pulse period are N,
t_set, V_set, t_off, t_r, V_anti (paper 004 eq. 1) plus the present min-max
scaled read current; target: the increment of the scaled read current to the
next period (eq. 2).

Single pulses (feature set 2, the inverse model programming uses): features
are the scaled read current before a pulse, the increment of it the pulse
caused, log10 of its width and its polarity; target: the amplitude |V| that
caused it. Pulses that did not move the device beyond MOVED (in scaled
current) say nothing about the amplitude a step needs and are left out. A
second output, fitted after the first, gives the spread of that amplitude
(the board's decision rule weighs overshoot with it).

Curves (one device's sequence, or one train) are split 3:1:1 into train /
validation / test (by curve, never by row); Adam with early stopping on
validation; seeded. The result exports to the firmware blob
(memctl_shared.predictor_blob).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from memctl_shared import predictor_blob

FEATURES = ("N", "t_set", "V_set", "t_off", "t_r", "V_anti", "I_n")
INVERSE_FEATURES = ("I_n", "dI_n", "log10_t", "polarity")
MOVED = 0.002  # scaled current: about half an 8-bit level


@dataclass
class Dataset:
    x: np.ndarray  # rows x raw features
    y: np.ndarray  # rows: increment of the scaled read current (trains) or |V| (pulses)
    curve: np.ndarray  # rows: curve id (for splitting)
    i_min: float
    i_max: float
    feature_set: int = predictor_blob.FEATURES_P004_I
    device: str | None = None  # the family the files name (None: not recorded, or they differ)

    @property
    def features(self) -> tuple[str, ...]:
        return FEATURES if self.feature_set == predictor_blob.FEATURES_P004_I else INVERSE_FEATURES


def load(paths: list[str | Path]) -> Dataset:
    """Read one or more characterize files (all of one mode) into features and targets."""
    from memctl.characterize import read_hdf5

    if not paths:
        raise ValueError("give at least one characterization file")
    tables, modes, families = [], {}, set()
    offset = 0
    for p in paths:
        t, attrs = read_hdf5(p)
        modes.setdefault(attrs["mode"], []).append(str(p))
        families.add(attrs.get("device"))
        t = t.copy()
        t["curve"] += offset
        offset = int(t["curve"].max()) + 1
        tables.append(t)
    if len(modes) > 1:
        listed = "; ".join(f"{m}: {', '.join(f)}" for m, f in modes.items())
        raise ValueError(f"characterization files of different modes cannot train one predictor ({listed})")
    t = np.concatenate(tables)
    i_min, i_max = float(t["I_r"].min()), float(t["I_r"].max())
    if not i_max > i_min:
        raise ValueError(f"read current never changes in {', '.join(map(str, paths))}: nothing to learn")
    i_n = (t["I_r"] - i_min) / (i_max - i_min)
    family = families.pop() if len(families) == 1 else None
    if "pulses" in modes:
        return replace(_inverse_rows(t, i_n, i_min, i_max, paths), device=family)
    xs, ys, cs = [], [], []
    for c in np.unique(t["curve"]):
        idx = np.flatnonzero(t["curve"] == c)
        idx = idx[np.argsort(t["N"][idx])]
        if len(idx) < 2:
            continue
        rows = idx[:-1]
        feats = np.stack(
            [
                t["N"][rows],
                t["t_set"][rows],
                t["V_set"][rows],
                t["t_off"][rows],
                t["t_r"][rows],
                t["V_anti"][rows],
                i_n[rows],
            ],
            axis=1,
        )
        xs.append(feats)
        ys.append(np.diff(i_n[idx]))
        cs.append(np.full(len(rows), c))
    if not xs:
        raise ValueError(f"no curve with two periods or more in {', '.join(map(str, paths))}")
    return Dataset(np.concatenate(xs), np.concatenate(ys), np.concatenate(cs), i_min, i_max, device=family)


def _inverse_rows(t: np.ndarray, i_n: np.ndarray, i_min: float, i_max: float, paths: list) -> Dataset:
    """Consecutive reads of each device's single-pulse sequence: (state, step, width,
    polarity) -> the amplitude that made the step, for steps in the pulse's direction."""
    xs, ys, cs = [], [], []
    for c in np.unique(t["curve"]):
        idx = np.flatnonzero(t["curve"] == c)
        idx = idx[np.argsort(t["N"][idx])]
        before, after = idx[:-1], idx[1:]
        v, w = t["V_set"][after], t["t_set"][after]
        step = i_n[after] - i_n[before]
        pol = np.sign(v)
        keep = (v != 0) & (w > 0) & (step * pol > MOVED)
        xs.append(np.stack([i_n[before], step, np.log10(np.where(w > 0, w, 1.0)), pol], axis=1)[keep])
        ys.append(np.abs(v[keep]))
        cs.append(np.full(int(keep.sum()), c))
    x = np.concatenate(xs)
    if len(x) < 20:
        files = ", ".join(map(str, paths))
        raise ValueError(
            f"only {len(x)} pulses in {files} moved their device: too few to learn from; widen the "
            "amplitude or width ranges"
        )
    return Dataset(x, np.concatenate(ys), np.concatenate(cs), i_min, i_max, predictor_blob.FEATURES_INVERSE)


@dataclass
class MLP:
    sizes: tuple[int, ...]
    weights: list[np.ndarray] = field(default_factory=list)
    biases: list[np.ndarray] = field(default_factory=list)
    mean: np.ndarray = field(default_factory=lambda: np.zeros(7))
    std: np.ndarray = field(default_factory=lambda: np.ones(7))

    @property
    def n_params(self) -> int:
        return sum(w.size + b.size for w, b in zip(self.weights, self.biases, strict=True))

    def _forward(self, x: np.ndarray) -> list[np.ndarray]:
        a = [(x - self.mean) / self.std]
        for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = a[-1] @ w.T + b
            a.append(np.maximum(z, 0) if k < len(self.weights) - 1 else z)
        return a

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The first output (the increment, or the amplitude)."""
        return self._forward(x)[-1][:, 0]

    def predict_all(self, x: np.ndarray) -> np.ndarray:
        """Every output: rows x outputs."""
        return self._forward(x)[-1]

    def to_blob(self, i_min: float, i_max: float, feature_set: int = predictor_blob.FEATURES_P004_I) -> bytes:
        layers = [
            (w.tolist(), b.tolist(), predictor_blob.ACT_RELU if k < len(self.weights) - 1 else predictor_blob.ACT_NONE)
            for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=True))
        ]
        std = np.where(self.std > 0, self.std, 0.0)
        return predictor_blob.encode(layers, self.mean.tolist(), std.tolist(), i_min, i_max, feature_set)


@dataclass
class FitResult:
    model: MLP
    mse: dict[str, float]
    epochs: int
    blob: bytes  # float32 firmware blob
    int8_blob: bytes = b""  # int8 firmware blob (post-training quantization)
    int8_mse: dict[str, float] = field(default_factory=dict)
    qmodel: object = None  # the memctl.export.quantize.QModel behind int8_blob
    test_mask: np.ndarray | None = None  # rows of the held-out test curves


def _add_spread_head(m: MLP, data: Dataset, y: np.ndarray, rows: np.ndarray) -> None:
    """A second output for inverse models: the spread (one standard deviation) of the
    amplitude a step needs, around the first output. The board learns each device's
    own offset online, so the spread is measured after taking out each training
    device's mean residual per polarity. Least squares on the last hidden layer:
    the amplitude output stays exactly as fitted."""
    x = data.x[rows]
    res = y[rows] - m.predict(x)
    _, group = np.unique(data.curve[rows] * 2 + (x[:, 3] > 0), return_inverse=True)
    own = np.bincount(group, res) / np.bincount(group)
    target = np.abs(res - own[group]) * np.sqrt(np.pi / 2)  # E|r| = sigma sqrt(2 / pi) for a normal r
    h = np.hstack([m._forward(x)[-2], np.ones((len(x), 1))])
    coef = np.linalg.solve(h.T @ h + 1e-6 * len(x) * np.eye(h.shape[1]), h.T @ target)
    m.weights[-1] = np.vstack([m.weights[-1], coef[:-1]])
    m.biases[-1] = np.append(m.biases[-1], coef[-1])
    m.sizes = (*m.sizes[:-1], m.sizes[-1] + 1)


def split(curves: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks for train / validation / test, 3:1:1 by curve."""
    ids = np.unique(curves)
    np.random.default_rng(seed).shuffle(ids)
    n = len(ids)
    n_val, n_test = max(1, n // 5), max(1, n // 5)
    val, test = ids[:n_val], ids[n_val : n_val + n_test]
    is_val, is_test = np.isin(curves, val), np.isin(curves, test)
    return ~(is_val | is_test), is_val, is_test


def fit(
    data: Dataset,
    hidden: tuple[int, ...] = (16, 16),
    *,
    seed: int = 0,
    epochs: int | None = None,
    batch: int = 64,
    lr: float = 3e-3,
    patience: int | None = None,
) -> FitResult:
    # An inverse model's amplitude shape matters to every pulse it proposes; early stopping
    # on a few held-out devices needs more patience to settle on it (seed-to-seed spread
    # of the proposed amplitudes fell from ~0.2 V to ~0.05 V).
    inverse = data.feature_set == predictor_blob.FEATURES_INVERSE
    epochs = epochs or (1000 if inverse else 400)
    patience = patience or (100 if inverse else 30)
    rng = np.random.default_rng(seed)
    tr, va, te = split(data.curve, seed)
    if not tr.any() or not va.any():
        raise ValueError("need at least 3 curves to split train / validation / test")
    y_all = data.y.reshape(len(data.y), -1)
    sizes = (data.x.shape[1], *hidden, y_all.shape[1])
    m = MLP(sizes)
    m.mean = data.x[tr].mean(axis=0)
    m.std = data.x[tr].std(axis=0)
    m.std = np.where(m.std > 1e-12, m.std, 1.0)
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        m.weights.append(rng.normal(0, np.sqrt(2 / n_in), (n_out, n_in)))
        m.biases.append(np.zeros(n_out))
    params = [*m.weights, *m.biases]
    mom = [np.zeros_like(p) for p in params]
    vel = [np.zeros_like(p) for p in params]
    # Train on standardized targets; the scale folds into the last layer after.
    y_mean, y_std = y_all[tr].mean(axis=0), y_all[tr].std(axis=0)
    y_std = np.where(y_std > 0, y_std, 1.0)
    x, y = data.x[tr], (y_all[tr] - y_mean) / y_std
    best, best_params, since, step, ran = np.inf, None, 0, 0, 0
    while ran < epochs:
        ran += 1
        order = rng.permutation(len(x))
        for s in range(0, len(x), batch):
            bi = order[s : s + batch]
            acts = m._forward(x[bi])
            grad_out = 2 * (acts[-1] - y[bi]) / len(bi)
            grads_w, grads_b = [], []
            g = grad_out
            for k in range(len(m.weights) - 1, -1, -1):
                grads_w.insert(0, g.T @ acts[k])
                grads_b.insert(0, g.sum(axis=0))
                if k:
                    g = (g @ m.weights[k]) * (acts[k] > 0)
            step += 1
            for i, (p, gr) in enumerate(zip(params, [*grads_w, *grads_b], strict=True)):
                mom[i] = 0.9 * mom[i] + 0.1 * gr
                vel[i] = 0.999 * vel[i] + 0.001 * gr**2
                p -= lr * (mom[i] / (1 - 0.9**step)) / (np.sqrt(vel[i] / (1 - 0.999**step)) + 1e-8)
        val = float(np.mean(((m.predict_all(data.x[va]) * y_std + y_mean - y_all[va]) / y_std) ** 2))
        if val < best - 1e-12:
            best, best_params, since = val, [p.copy() for p in params], 0
        else:
            since += 1
            if since >= patience:
                break
    for p, b in zip(params, best_params, strict=True):
        p[...] = b
    m.weights[-1] *= y_std[:, None]
    m.biases[-1] = m.biases[-1] * y_std + y_mean
    if inverse:
        _add_spread_head(m, data, y_all[:, 0], tr)
    mse = {
        name: float(np.mean((m.predict(data.x[mask]) - y_all[mask, 0]) ** 2)) if mask.any() else float("nan")
        for name, mask in (("train", tr), ("validation", va), ("test", te))
    }
    from memctl.export.quantize import quantize

    # Calibration range: the percentile that quantizes best on validation data.
    def val_mse(qm: object) -> float:
        return float(np.mean((qm.predict(data.x[va]) - y_all[va, 0]) ** 2))

    q = min((quantize(m, data.x[tr], percentile=p) for p in (100.0, 99.99, 99.9)), key=val_mse)
    int8_mse = {
        name: float(np.mean((q.predict(data.x[mask]) - y_all[mask, 0]) ** 2)) if mask.any() else float("nan")
        for name, mask in (("train", tr), ("validation", va), ("test", te))
    }
    fs = data.feature_set
    blobs = m.to_blob(data.i_min, data.i_max, fs), q.to_blob(data.i_min, data.i_max, fs)
    return FitResult(m, mse, ran, *blobs, int8_mse, q, te)
