"""Noise-aware training (paper 000's BayesMulti) and program-error models (paper 001 eqs. 4-5)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import make_moons

from memctl.noise_model import LogNormalDrift, StudentTError, perturb
from memctl.onnx_mlp import forward, read_onnx, to_onnx
from memctl.robust_training import BayesMulti, TrainConfig, accuracy, accuracy_under, bayes_multi, train_mlp

G = (10e-6, 100e-6)


@pytest.fixture(scope="module")
def moons():
    x, y = make_moons(300, noise=0.1, random_state=0)
    xt, yt = make_moons(300, noise=0.1, random_state=1)
    return x, y, xt, yt


def test_multinomial_noise_has_the_asked_probabilities_and_unit_mean():
    eta = BayesMulti(0.2, 0.3).mask((200_000,), np.random.default_rng(0))
    scale = 0.5 * 0.3 + 0.5
    assert abs(np.mean(eta == 0) - 0.2) < 0.005
    assert abs(np.mean(np.isclose(eta, 0.5 / scale)) - 0.3) < 0.005
    assert abs(eta.mean() - 1) < 0.01
    with pytest.raises(ValueError, match="p1 \\+ p2 < 1"):
        BayesMulti(0.6, 0.5)


def test_train_mlp_learns_and_round_trips_through_onnx(moons):
    x, y, xt, yt = moons
    layers = train_mlp(x, y, TrainConfig(hidden=(8,), epochs=80))
    assert accuracy(layers, xt, yt) > 0.95
    back = read_onnx(to_onnx(layers))
    assert np.allclose(forward(back, xt), forward(layers, xt), atol=1e-5)


def test_student_t_fit_recovers_its_parameters_per_level():
    rng = np.random.default_rng(1)
    t = rng.uniform(*G, 6000)
    y = (t - G[0]) / (G[1] - G[0])
    err = np.where(y < 0.5, 0.01, 0.03) * stats.t.rvs(4, size=t.shape, random_state=rng)
    model = StudentTError.fit(t, t + err * (G[1] - G[0]), G, bins=2)
    assert np.allclose(model.scale, [0.01, 0.03], rtol=0.15)
    assert np.all((model.df > 2) & (model.df < 9))
    draws = model.sample(np.full(20000, 0.8), rng) - 0.8
    assert abs(np.median(np.abs(draws)) / (0.03 * stats.t.ppf(0.75, 4)) - 1) < 0.1
    q = StudentTError(model.edges, np.zeros(2), np.full(2, 1e-12), np.full(2, 5.0), levels=5)
    assert np.allclose(q.sample(np.array([0.1, 0.3, 0.6]), rng), [0.0, 0.25, 0.5])
    with pytest.raises(ValueError, match="at least 8"):
        StudentTError.fit(t[:3], t[:3], G)


def test_perturb_maps_through_the_differential_pairs(moons):
    x, y, xt, yt = moons
    layers = train_mlp(x, y, TrainConfig(hidden=(8,), epochs=40))
    exact = perturb(layers, LogNormalDrift(0.0), np.random.default_rng(0), G)
    assert all(
        np.allclose(a.weight, b.weight) and np.allclose(a.bias, b.bias) for a, b in zip(exact, layers, strict=True)
    )
    noisy = perturb(layers, LogNormalDrift(0.3), np.random.default_rng(0), G)
    assert not np.allclose(noisy[0].weight, layers[0].weight)


def test_bayes_multi_searches_p1_p2_with_a_gaussian_process(moons):
    x, y, xt, yt = moons
    model = LogNormalDrift(0.6)
    cfg = TrainConfig(hidden=(6,), epochs=30)
    r = bayes_multi(x, y, xt, yt, model, cfg, init_points=2, n_iter=3, draws=4)
    assert len(r.trials) == 6 and r.trials[0][:2] == (0.0, 0.0)  # ERM probed first
    assert r.score == max(s for _, _, s in r.trials)
    assert r.score == pytest.approx(accuracy_under(r.layers, xt, yt, model, draws=4))


def test_noise_aware_training_beats_erm_on_held_out_data_under_a_large_program_error(moons):
    """Paper 000's claim at a program error that matters (Student-t, 8 % of the
    conductance range, heavy tails): p1, p2 chosen on validation data, both
    networks judged on data neither training nor the search saw."""
    x, y, xv, yv = moons
    xh, yh = make_moons(1000, noise=0.1, random_state=2)
    model = StudentTError(np.array([0.0, 1.0]), np.zeros(1), np.full(1, 0.08), np.full(1, 3.0))
    cfg = TrainConfig(hidden=(16,), epochs=150)
    erm = train_mlp(x, y, cfg)
    r = bayes_multi(x, y, xv, yv, model, cfg, init_points=3, n_iter=3, draws=8)
    assert accuracy(erm, xh, yh) > 0.95  # a fair baseline: ERM learned the task
    assert r.noise.p1 + r.noise.p2 > 0.1  # the search chose real noise, not ERM
    erm_noisy = accuracy_under(erm, xh, yh, model, draws=20, seed=7)
    aware_noisy = accuracy_under(r.layers, xh, yh, model, draws=20, seed=7)
    assert aware_noisy > erm_noisy + 0.03, (aware_noisy, erm_noisy)
