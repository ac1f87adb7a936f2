"""Noise-aware training of small MLPs for crossbars (paper 000's BayesMulti).

During training every weight matrix is multiplied elementwise by multinomial
noise eta in {0, 0.5, 1} with probabilities p1, p2 and 1 - p1 - p2 (paper
000 eq. 1), resampled for each minibatch and divided by E[eta] so the clean
network keeps its scale (as inverted dropout does). Paper 000 injects after
each layer but the softmax output; here every layer's weights live on the
crossbar, so every layer gets noise. p1 and p2 are chosen by Gaussian-process
Bayesian optimization with expected improvement (the bayesian-optimization
package) against accuracy under the device's program-error model
(memctl.noise_model). ERM is the same trainer without noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from memctl.noise_model import perturb
from memctl.onnx_mlp import Layer, forward


@dataclass(frozen=True)
class BayesMulti:
    """Multinomial multiplicative weight noise: P(eta=0) = p1, P(eta=0.5) = p2."""

    p1: float
    p2: float

    def __post_init__(self) -> None:
        if not (0 <= self.p1 and 0 <= self.p2 and self.p1 + self.p2 < 1):
            raise ValueError(f"BayesMulti needs p1, p2 >= 0 and p1 + p2 < 1, got {self.p1}, {self.p2}")

    def mask(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        u = rng.random(shape)
        eta = np.where(u < self.p1, 0.0, np.where(u < self.p1 + self.p2, 0.5, 1.0))
        return eta / (0.5 * self.p2 + (1 - self.p1 - self.p2))


@dataclass(frozen=True)
class TrainConfig:
    hidden: tuple[int, ...] = (16,)
    activation: str = "Tanh"  # hidden layers: Tanh (paper 003's neuron) or Relu
    epochs: int = 200
    batch: int = 32
    lr: float = 0.01
    weight_decay: float = 1e-4
    seed: int = 0


def _act(name: str, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Activation and its derivative."""
    if name == "Relu":
        return np.maximum(z, 0), (z > 0).astype(float)
    a = np.tanh(z)
    return a, 1 - a * a


def train_mlp(
    x: np.ndarray, y: np.ndarray, config: TrainConfig | None = None, noise: BayesMulti | None = None
) -> list[Layer]:
    """Softmax classifier (labels 0..K-1) trained with Adam; returns layers
    whose last activation is Softmax, ready for to_onnx() and deploy()."""
    config = config or TrainConfig()
    x = np.asarray(x, float)
    y = np.asarray(y, int)
    rng = np.random.default_rng(config.seed)
    sizes = [x.shape[1], *config.hidden, int(y.max()) + 1]
    ws = [rng.normal(0, np.sqrt(1 / a), (b, a)) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    bs = [np.zeros(b) for b in sizes[1:]]
    params = ws + bs
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    onehot = np.eye(sizes[-1])[y]
    step = 0
    for _ in range(config.epochs):
        order = rng.permutation(len(x))
        for k in range(0, len(x), config.batch):
            idx = order[k : k + config.batch]
            masks = [noise.mask(w.shape, rng) if noise else None for w in ws]
            wn = [w * mk if mk is not None else w for w, mk in zip(ws, masks, strict=True)]
            acts, ders = [x[idx]], []
            for i in range(len(ws)):
                z = acts[-1] @ wn[i].T + bs[i]
                if i < len(ws) - 1:
                    a, d = _act(config.activation, z)
                    acts.append(a)
                    ders.append(d)
                else:
                    e = np.exp(z - z.max(1, keepdims=True))
                    acts.append(e / e.sum(1, keepdims=True))
            delta = (acts[-1] - onehot[idx]) / len(idx)
            grads_w, grads_b = [None] * len(ws), [None] * len(ws)
            for i in reversed(range(len(ws))):
                gw = delta.T @ acts[i]
                grads_w[i] = (gw * masks[i] if masks[i] is not None else gw) + config.weight_decay * ws[i]
                grads_b[i] = delta.sum(0)
                if i:
                    delta = (delta @ wn[i]) * ders[i - 1]
            step += 1
            for j, (p, g) in enumerate(zip(params, grads_w + grads_b, strict=True)):
                m[j] = 0.9 * m[j] + 0.1 * g
                v[j] = 0.999 * v[j] + 0.001 * g * g
                p -= config.lr * (m[j] / (1 - 0.9**step)) / (np.sqrt(v[j] / (1 - 0.999**step)) + 1e-8)
    acts_names = [config.activation] * len(config.hidden) + ["Softmax"]
    return [Layer(w.copy(), b.copy(), a) for w, b, a in zip(ws, bs, acts_names, strict=True)]


def accuracy(layers: list[Layer], x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(forward(layers, x), 1) == np.asarray(y)))


def accuracy_under(
    layers: list[Layer],
    x,
    y,
    error_model,
    *,
    draws: int = 8,
    seed: int = 0,
    g_range: tuple[float, float] = (10e-6, 100e-6),
) -> float:
    """Mean accuracy of the network after `draws` samples of the program error."""
    rng = np.random.default_rng(seed)
    return float(np.mean([accuracy(perturb(layers, error_model, rng, g_range), x, y) for _ in range(draws)]))


@dataclass
class SearchResult:
    noise: BayesMulti
    layers: list[Layer]
    score: float  # accuracy under the error model on the validation data
    trials: list = field(default_factory=list)  # (p1, p2, score) in the order tried


def bayes_multi(
    x_train,
    y_train,
    x_val,
    y_val,
    error_model,
    config: TrainConfig | None = None,
    *,
    init_points: int = 4,
    n_iter: int = 8,
    draws: int = 8,
    p_max: float = 0.5,
    g_range: tuple[float, float] = (10e-6, 100e-6),
    seed: int = 0,
) -> SearchResult:
    """BayesMulti: GP Bayesian optimization (expected improvement) of (p1,
    p2) maximizing validation accuracy under the program-error model."""
    from bayes_opt import BayesianOptimization, acquisition

    config = config or TrainConfig()
    trials: list = []
    models: dict = {}

    def objective(p1: float, p2: float) -> float:
        if p1 + p2 >= 0.95:  # outside the multinomial's domain: the worst score
            trials.append((p1, p2, 0.0))
            return 0.0
        layers = train_mlp(x_train, y_train, config, BayesMulti(p1, p2))
        score = accuracy_under(layers, x_val, y_val, error_model, draws=draws, seed=seed, g_range=g_range)
        trials.append((p1, p2, score))
        models[(p1, p2)] = layers
        return score

    opt = BayesianOptimization(
        objective,
        {"p1": (0.0, p_max), "p2": (0.0, p_max)},
        acquisition_function=acquisition.ExpectedImprovement(xi=0.01),
        random_state=seed,
        verbose=0,
    )
    opt.probe({"p1": 0.0, "p2": 0.0})  # ERM is a candidate too
    opt.maximize(init_points=init_points, n_iter=n_iter)
    best = opt.max["params"]
    key = (best["p1"], best["p2"])
    return SearchResult(BayesMulti(*key), models[key], float(opt.max["target"]), trials)
