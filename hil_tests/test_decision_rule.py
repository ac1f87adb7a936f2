"""The board's predictor-guided decision, checked against the rule it documents:
with an overshoot penalty lam > 0 an inverse model with a spread output aims at
the middle of the amplitudes that land inside the tolerance band and backs off
by spread^2 ln(1 + lam) / bracket (at most 0.15 ln(1 + lam) spreads), in at
most 3 inferences; with lam = 0 or without a spread output it aims at the
band's centre. The firmware's own Predicted runs under MicroPython."""

from __future__ import annotations

import copy
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

import memctl
from memctl.devices import load_device
from memctl.firmware_image import staged
from memctl.tuning import settings_for
from memctl_emulator import EmulatedBoard, micropython_executable

NAME = "pt_al2o3_tio2_passive"
CAP = 0.15


@pytest.fixture(scope="module")
def inverse(tmp_path_factory, hal):
    from memctl.characterize import characterize, write_hdf5
    from memctl.export.train import fit, load
    from memctl.tuning import characterization_pulses

    tmp = tmp_path_factory.mktemp("decision")
    d = load_device(NAME)
    with EmulatedBoard(rows=2, cols=2, seed=73, device=NAME, hal=hal) as emu, memctl.Board(emu.port) as b:
        settings_for(d).apply(b, min_width=1e-3)
        sweep = characterization_pulses(d, [(0, 0), (0, 1), (1, 0), (1, 1)], pulses=200)
        write_hdf5(tmp / "c.h5", characterize(b, sweep))
    data = load([tmp / "c.h5"])
    return fit(data), data, tmp


def _board_decisions(blob: bytes, params: list[float], v_read: float, tol: float, rows, tmp: Path) -> np.ndarray:
    root = Path(__file__).resolve().parents[1]
    (tmp / "m.mcpr").write_bytes(blob)
    lines = [" ".join(repr(float(v)) for v in [*params, v_read, tol])] + [f"{float(g)!r} {float(t)!r}" for g, t in rows]
    (tmp / "rows.txt").write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [
            micropython_executable(),
            "-X",
            "heapsize=256K",
            str(root / "hil_tests" / "mpy_decision_runner.py"),
            str(staged()),
            str(tmp / "m.mcpr"),
            str(tmp / "rows.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    return np.array([[float(v) for v in line.split()] for line in out.stdout.splitlines()])


def _expected(model, data, p, v_read: float, tol: float, g: float, target: float, lam: float) -> float:
    """The documented rule in float64 on the host's copy of the model."""
    err = target - g
    pol = 1.0 if err > 0 else -1.0
    lo, hi = (p.v_set_lo, p.v_set_hi) if pol > 0 else (-p.v_reset_lo, -p.v_reset_hi)
    span = data.i_max - data.i_min
    k = v_read / span
    f0 = (g * v_read - data.i_min) / span

    def ask(step: float, t: float) -> np.ndarray:
        return model.predict_all(np.array([[f0, step * k, math.log10(t), pol]]))[0]

    band = model.sizes[-1] > 1 and lam > 0
    near = ask(err - tol * pol if band else err, p.t_lo)
    v = near[0]
    if v > hi and p.t_hi > p.t_lo:
        v = ask(err, p.t_hi)[0]
    elif band:
        far = ask(err + tol * pol, p.t_lo)
        s, gap = 0.5 * (near[1] + far[1]), far[0] - near[0]
        v = 0.5 * (near[0] + far[0])
        if gap > 1e-6 and s > 0:
            w = math.log1p(lam)
            v -= min(s * s * w / gap, CAP * s * w)
    return pol * min(max(v, lo), hi)


def test_board_decision_follows_the_band_rule(inverse):
    result, data, tmp = inverse
    d = load_device(NAME)
    p = settings_for(d).predicted
    tol = (d.g_max - d.g_min) / 510
    rng = np.random.default_rng(5)
    g = d.g_min + (d.g_max - d.g_min) * rng.uniform(0.05, 0.95, 40)
    target = d.g_min + (d.g_max - d.g_min) * rng.uniform(0.05, 0.95, 40)
    keep = np.abs(target - g) > 2 * tol
    rows = list(zip(g[keep], target[keep], strict=True))
    assert result.model.sizes[-1] == 2
    got = {}
    for lam in (0.0, 3.0):
        p_lam = p.params(inverse=True)
        p_lam[6] = lam
        board = _board_decisions(result.blob, p_lam, d.v_read, tol, rows, tmp)
        assert board[:, 2].max() <= (3 if lam else 2), "more inferences for one pulse than the rule takes"
        want = [_expected(result.model, data, p, d.v_read, tol, gi, ti, lam) for gi, ti in rows]
        np.testing.assert_allclose(board[:, 0], want, atol=2e-3)
        got[lam] = board[:, 0]
    # The penalty backs off, never pushes: |V| smaller or equal, smaller wherever not at a bound.
    assert np.all(np.abs(got[3.0]) <= np.abs(got[0.0]) + 1e-6)
    assert np.mean(np.abs(got[3.0]) < np.abs(got[0.0]) - 1e-4) > 0.5

    # The same model without its spread output: the board aims at the band's centre.
    centre = copy.deepcopy(result.model)
    centre.weights[-1], centre.biases[-1] = centre.weights[-1][:1], centre.biases[-1][:1]
    centre.sizes = (*centre.sizes[:-1], 1)
    blob = centre.to_blob(data.i_min, data.i_max, data.feature_set)
    p_lam = p.params(inverse=True)
    p_lam[6] = 3.0
    board = _board_decisions(blob, p_lam, d.v_read, tol, rows, tmp)
    assert board[:, 2].max() <= 2
    want = [_expected(centre, data, p, d.v_read, tol, gi, ti, 3.0) for gi, ti in rows]
    np.testing.assert_allclose(board[:, 0], want, atol=2e-3)
    np.testing.assert_allclose(board[:, 0], got[0.0], atol=1e-4)  # the spread output's model, lam = 0
