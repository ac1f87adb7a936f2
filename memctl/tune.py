"""Bayesian optimization of programming parameters on the board itself
(paper 000's GP Bayesian optimization with expected improvement, applied to
programming): a handful of sample devices are programmed to random targets
with each candidate setting; the score is the mean pulse count, the pulses a
lab pays whether the device got there or not (success is guarded in the
final comparison). The best setting goes to a
settings file that `memctl program --settings` and `memctl deploy
--settings` read. Adaptive write-verify is tuned over its start amplitudes,
step, width and gain thresholds; predictor-guided programming (with an
inverse predictor loaded) over its overshoot penalty, the one setting whose
best value differs between device families.

Tune on devices you will not program for real (or re-program them after):
tuning pulses them many times.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from memctl.algorithms import Adaptive, Predicted
from memctl.board import Board
from memctl.errors import MissingExtra
from memctl.progress import progress_bar

FORMAT = "memctl-settings"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class TunedSettings:
    """What a settings file holds: an algorithm's parameters and how they scored."""

    algorithm: str
    params: dict
    tolerance: float
    max_pulses: int
    device: str | None = None
    pulses: float = math.nan  # mean per device in the final comparison, reached or not
    success: float = math.nan
    start_pulses: float = math.nan  # the starting settings in the same comparison
    start_success: float = math.nan
    # (params, pulses, success) in the order tried: the optimization's trials, then the final comparison
    # of the starting settings (first) and the best three trials on the same targets
    trials: list = field(default_factory=list)
    # The board's safety limits {v_pulse, width, v_read} and read voltage the settings were tuned under:
    # `--settings` puts them on a board before programming (None in files from before they were recorded).
    limits: dict | None = None
    v_read: float | None = None
    # Pulses per device the best trial saved against the starting settings in the final round, and the
    # standard error of that saving; kept_start: nothing beat the start by more than twice it.
    gain: float = math.nan
    gain_se: float = math.nan
    kept_start: bool = False
    devices_used: int = 0  # sample devices programmed, each once

    def to_algorithm(self) -> Adaptive | Predicted:
        kind = TUNABLE.get(self.algorithm)
        if kind is None:
            raise ValueError(
                f"settings for algorithm {self.algorithm!r}: this memctl tunes {' and '.join(map(repr, TUNABLE))}"
            )
        return kind(**self.params)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}, indent=2) + "\n"
        )

    @classmethod
    def load(cls, path: str | Path) -> TunedSettings:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not a readable settings file: {e}") from e
        if data.get("format") != FORMAT:
            raise ValueError(f"{path} is not a memctl settings file (write one with `memctl tune`)")
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path} has settings format {data.get('format_version')}, this memctl reads 1")
        data.pop("format")
        data.pop("format_version")
        try:
            s = cls(**data)
            s.to_algorithm()
        except TypeError as e:
            raise ValueError(f"{path}: {e}") from e
        return s


TUNABLE = {"adaptive": Adaptive, "predicted": Predicted}


@dataclass(frozen=True)
class _Space:
    """What the optimizer searches: bounds, where it starts, and the algorithm a point stands for."""

    bounds: dict
    start: dict
    build: Callable[[dict], Adaptive | Predicted]


def _adaptive_space(base: Adaptive, v_lim: float, w_lim: float) -> _Space:
    w_lo, w_hi = math.log10(w_lim) - 3, math.log10(w_lim)
    bounds = {
        "set_start": (0.2, 1.0),
        "reset_start": (0.2, 1.0),
        "step": (0.002, 0.1),
        "log_width": (w_lo, w_hi),
        "gain_lo": (0.05, 0.9),
        "gain_hi": (1.1, 3.0),
    }
    start = {
        "set_start": base.v_set_start / v_lim,
        "reset_start": -base.v_reset_start / v_lim,
        "step": base.v_step / v_lim,
        "log_width": math.log10(base.width),
        "gain_lo": base.gain_lo,
        "gain_hi": base.gain_hi,
    }
    return _Space(bounds, start, lambda x: _adaptive(x, v_lim, w_lim))


def _predicted_space(base: Predicted) -> _Space:
    # The penalty acts through ln(1 + lam): search that, 0 (aim at the centre) to lam = 10.
    return _Space(
        {"log_overshoot": (0.0, math.log(11.0))},
        {"log_overshoot": math.log1p(base.overshoot)},
        lambda x: replace(base, overshoot=float(math.expm1(x["log_overshoot"]))),
    )


def _adaptive(x: dict, v_lim: float, w_lim: float) -> Adaptive:
    width = float(10 ** x["log_width"])
    return Adaptive(
        v_set_start=x["set_start"] * v_lim,
        v_reset_start=-x["reset_start"] * v_lim,
        v_step=min(1.0, x["step"] * v_lim),
        width=width,
        width_max=max(width, w_lim),
        gain_lo=x["gain_lo"],
        gain_hi=x["gain_hi"],
    )


def optimizer() -> tuple:
    """The optional parts tuning runs on, or one line that says how to install them."""
    try:
        from bayes_opt import BayesianOptimization, acquisition
        from sklearn.gaussian_process.kernels import Matern, WhiteKernel
    except ModuleNotFoundError as e:
        raise MissingExtra(f"memctl tune needs {e.name}, which is not installed: pip install 'memctl[train]'") from None
    return BayesianOptimization, acquisition, Matern, WhiteKernel


def evaluations(init_points: int, iterations: int) -> int:
    """How many sets of devices a tune run programs: the starting settings, the random
    and the GP-guided trials, then CONTENDERS settings each on two sets in the final round."""
    return 1 + init_points + iterations + 2 * CONTENDERS


CONTENDERS = 4  # the starting settings and the three best trials meet again in the final round


def tune(
    board: Board,
    base: Adaptive | Predicted,
    *,
    devices: list[tuple[int, int]],
    g_range: tuple[float, float],
    tolerance: float,
    max_pulses: int = 300,
    iterations: int = 16,
    init_points: int = 5,
    per_trial: int = 4,
    seed: int = 0,
    device: str | None = None,
    progress: bool | None = None,
) -> TunedSettings:
    """GP-BO (expected improvement) of adaptive write-verify, or of
    predictor-guided programming's overshoot penalty (an inverse predictor must
    be loaded); `base` is probed first.

    Every evaluation programs `per_trial` devices it alone uses (programming
    wears a device: a trial judged on devices an earlier one pulsed is judged
    on other devices), all to the same targets (common random numbers: two
    trials differ by their settings, not by their luck in targets). The GP
    fits the score's noise itself (a white-noise kernel term). The starting
    settings and the three best trials then meet again on two fresh sets each,
    at the same 2 x per_trial targets; the winner replaces the start only
    when it saves more pulses than twice the standard error of that saving
    (TunedSettings.gain, gain_se), and reaches as many targets."""
    BayesianOptimization, acquisition, Matern, WhiteKernel = optimizer()
    from memctl_shared.predictor_blob import FEATURES_INVERSE

    lim = board.limits()
    if isinstance(base, Predicted):
        if board.info().predictor_features != FEATURES_INVERSE:
            raise ValueError(
                "tuning predictor-guided programming needs an inverse predictor on the board: fit one from "
                "`memctl characterize --mode pulses` data and `memctl predictor load` it"
            )
        space, name = _predicted_space(base), "predicted"
    else:
        space, name = _adaptive_space(base, lim.v_pulse, lim.width), "adaptive"
    if per_trial < 1:
        raise ValueError("per_trial must be at least 1 device")
    need = evaluations(init_points, iterations) * per_trial
    if len(set(devices)) < need:
        raise ValueError(
            f"tuning with {init_points} random and {iterations} guided trials of {per_trial} devices needs {need} "
            f"fresh devices (each evaluation programs its own), got {len(set(devices))}: give more devices "
            "(--devices, or a larger board), or fewer trials (--iterations, --init-points)"
        )
    rng = np.random.default_rng(seed)
    lo, hi = g_range
    targets = lo + (hi - lo) * rng.integers(0, 256, 2 * per_trial) / 255
    fresh = iter(dict.fromkeys(devices))  # each device once, in the order given
    trials: list = []

    def evaluate(algo: Adaptive | Predicted, goal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pulses, reached) per device on the next fresh devices. Pulses spent, reached or not: counting a
        failure as max_pulses made one unreachable target (the device's own range) swing a trial's score by
        max_pulses / per_trial, more than any setting changes it."""
        pulses, reached = np.empty(len(goal)), np.zeros(len(goal), bool)
        for k, t in enumerate(goal):
            r, c = next(fresh)
            res = board.program(
                np.array([[t]]),
                origin=(r, c),
                tolerance=tolerance,
                max_pulses=max_pulses,
                algorithm=algo,
                progress=False,
            )
            pulses[k], reached[k] = res.pulses[0, 0], res.ok[0, 0]
        return pulses, reached

    def score(**x: float) -> float:
        algo = space.build(x)
        p, ok = evaluate(algo, targets[:per_trial])
        trials.append((asdict(algo), float(p.mean()), float(ok.mean())))
        advance(1)
        return -float(p.mean())

    start = {k: float(np.clip(v, *space.bounds[k])) for k, v in space.start.items()}
    kind = TUNABLE[name]
    with progress_bar("tune", 1 + init_points + iterations + CONTENDERS, board.show_progress(progress)) as advance:
        acq = acquisition.ExpectedImprovement(xi=0.01)
        opt = BayesianOptimization(score, space.bounds, acquisition_function=acq, random_state=seed, verbose=0)
        opt.set_gp_params(kernel=Matern(nu=2.5) + WhiteKernel(0.1, (1e-6, 10.0)))
        opt.probe(start)
        opt.maximize(init_points=init_points, n_iter=iterations)
        ranked = [trials[0][0]] + [t[0] for t in sorted(trials[1:], key=lambda t: t[1])[: CONTENDERS - 1]]
        final = []
        for params in ranked:
            final.append((params, *evaluate(kind(**params), targets)))
            advance(1)
    _, p0, ok0 = final[0]
    best, pb, okb = min(final[1:], key=lambda f: f[1].mean())
    saving = p0 - pb  # per target: the same targets, other devices
    gain, gain_se = float(saving.mean()), float(saving.std(ddof=1) / np.sqrt(len(saving)))
    if not (gain > 2 * gain_se and okb.mean() >= ok0.mean()):
        best, pb, okb = final[0]  # nothing beat the start by more than the noise: keep it
    limits = {"v_pulse": lim.v_pulse, "width": lim.width, "v_read": lim.v_read, "v_disturb": lim.v_disturb}
    v_read = board.info().v_read
    record = trials + [(params, float(p.mean()), float(ok.mean())) for params, p, ok in final]
    return TunedSettings(
        name,
        best,
        tolerance,
        max_pulses,
        device,
        float(pb.mean()),
        float(okb.mean()),
        float(p0.mean()),
        float(ok0.mean()),
        record,
        limits,
        v_read,
        gain,
        gain_se,
        best is final[0][0],
        len(trials) * per_trial + len(final) * 2 * per_trial,
    )
