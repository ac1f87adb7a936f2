"""Programming algorithms against the oracle, on every device preset.

    python benchmarks/programming.py [--devices 256] [--presets NAME ...]

For each preset: the same random 8-bit targets across the nominal range
(tolerance = half a level) are programmed on a fresh emulated board (same
seed, so the same devices) by each firmware algorithm, and on isolated copies
of the same devices by the oracle (emulation/oracle.py), the lower bound on
pulses; then paper 001's levels study on tio2_4terminal (FFP segmentation
into 32/128/512 levels, nu of eqs. 2-3, skipped levels at CPD 80 %). Prints
markdown tables and writes benchmarks/results/programming.json.
Ratios compare algorithms measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import memctl
from memctl.characterize import characterize, write_hdf5
from memctl.ffp import calibrate, levels_study, print_levels
from memctl.tuning import characterization_sweeps, form, settings_for
from memctl_emulation import EmulatedBoard
from memctl_emulation import oracle as oracle_mod
from memctl_emulation.afe import AFEConfig, AnalogFrontEnd
from memctl_emulation.array_network import LineDrive
from memctl_emulation.devices import PRESETS
from memctl_export.train import fit, load

OUT = Path(__file__).with_name("results") / "programming.json"
LEVELS = 256
SEED = 7
MAX_PULSES = 300  # paper 003: at most 300 write/read pulses per device


def shape_for(name: str, n: int) -> tuple[int, int, int]:
    """(rows, cols, repeats): the four-terminal device is one device programmed n times."""
    if name == "tio2_4terminal":
        return 1, 1, n
    cols = int(np.sqrt(n))
    return n // cols, cols, 1


def targets_for(name: str, rows: int, cols: int, repeats: int) -> tuple[np.ndarray, float]:
    d = PRESETS[name]
    level = (d.g_max - d.g_min) / (LEVELS - 1)
    k = np.random.default_rng(SEED).integers(0, LEVELS, (repeats, rows, cols))
    return d.g_min + k * level, level


def ffp_for(name: str, tol: float) -> memctl.FFP:
    """FFP with a step window of 0.5-1.5 tolerances (paper 001: 0.1-0.3 ohm)."""
    s = settings_for(name)
    i = s.ispp
    return memctl.FFP(tol * 0.5, tol * 1.5, i.v_set_start, i.v_reset_start, 0.01 * PRESETS[name].v_max, i.width)


def train_predictor(name: str, rows: int, cols: int) -> bytes:
    """Fit a predictor on other devices of the family (another seed): the
    board under test never saw its own devices in training."""
    s = settings_for(name)
    devices = [(r, c) for r in range(min(rows, 4)) for c in range(min(cols, 4))]
    with tempfile.TemporaryDirectory() as tmp:
        with EmulatedBoard(rows=rows, cols=cols, seed=SEED + 100, device=name) as emu, memctl.Board(emu.port) as b:
            s.apply(b, min_width=1e-3)
            if PRESETS[name].v_form:
                form(b, 0.9 * PRESETS[name].v_form)
            files = []
            for k, sweep in enumerate(characterization_sweeps(name, devices)):
                files.append(Path(tmp) / f"{k}.h5")
                write_hdf5(files[-1], characterize(b, sweep))
        result = fit(load(files))
    print(f"  predictor for {name}: {result.model.n_params} params, test MSE {result.mse['test']:.3g}")
    return result.blob


def run_board(name: str, algo: str, targets: np.ndarray, tol: float, blob: bytes | None = None) -> dict:
    repeats, rows, cols = targets.shape
    s = settings_for(name)
    start = time.monotonic()
    results = []
    with EmulatedBoard(rows=rows, cols=cols, seed=SEED, device=name) as emu, memctl.Board(emu.port) as b:
        s.apply(b, min_width=1e-3)
        if PRESETS[name].v_form:
            form(b, 0.9 * PRESETS[name].v_form)
        if algo == "ffp":
            # Calibration pass (paper 001) on the first device: FFP sweeps up and
            # down the range fill V_w(G); programming goes on refining it.
            d = PRESETS[name]
            algorithm = ffp_for(name, tol)
            calibrate(b, 0, 0, algorithm, 0.5 * d.g_min, 1.5 * d.g_max, sweeps=2)
        else:
            algorithm = getattr(s, algo)
        if blob is not None:
            b.load_predictor(blob)
        for t in targets:
            results.append(b.program(t, tolerance=tol, max_pulses=MAX_PULSES, algorithm=algorithm))
    wall = time.monotonic() - start
    return {
        "final": np.stack([r.final for r in results]),
        "pulses": np.stack([r.pulses for r in results]),
        "ok": np.stack([r.ok for r in results]),
        "time": np.stack([r.time for r in results]),
        "energy": np.stack([r.energy for r in results]),
        "wall": wall,
    }


def run_oracle(name: str, targets: np.ndarray, tol: float) -> dict:
    repeats, rows, cols = targets.shape
    s = settings_for(name)
    d = PRESETS[name]
    afe = AnalogFrontEnd(AFEConfig(rows=rows, cols=cols, device=d), seed=SEED)  # the board's devices
    xb = afe.xbar
    vmax, wmax = s.limits.v_pulse, s.limits.width
    volts = np.concatenate([np.linspace(-vmax, d.v_reset, 60), np.linspace(d.v_set, vmax, 60)])
    widths = np.array([w for w in (d.pulse_width / 10, d.pulse_width, d.pulse_width * 10) if w <= wmax])
    out = {k: np.zeros(targets.shape) for k in ("final", "pulses", "time", "energy")}
    out["ok"] = np.zeros(targets.shape, bool)
    start = time.monotonic()
    for r in range(rows):
        for c in range(cols):
            if d.v_form and not xb.formed[r, c]:  # form it, as the board run does
                for v in np.arange(d.v_form * 0.9, vmax, 0.05):
                    xb.apply(_only(rows, cols, r, c, v), 1e-3)
                    if xb.formed[r, c]:
                        break
            for k in range(repeats):
                res = oracle_mod.program(xb, r, c, targets[k, r, c], tol, MAX_PULSES, volts, widths)
                if repeats > 1:  # one physical device: carry its state on
                    _write_back(xb, r, c, res)
                for key in ("pulses", "time", "energy"):
                    out[key][k, r, c] = getattr(res, key)
                out["final"][k, r, c], out["ok"][k, r, c] = res.g, res.ok
    out["wall"] = time.monotonic() - start
    return out


def _only(rows: int, cols: int, r: int, c: int, v: float) -> LineDrive:
    vr, vc = np.full(rows, v / 2), np.full(cols, v / 2)
    vr[r], vc[c] = v, 0.0
    return LineDrive.driven(vr, vc)


def _write_back(xb, r, c, res) -> None:
    dev = res.device
    for name, value in vars(xb).items():
        if isinstance(value, np.ndarray) and value.shape == (xb.rows, xb.cols):
            value[r, c] = getattr(dev, name)[0, 0]


def summarize(run: dict, targets: np.ndarray, level: float, common: np.ndarray) -> dict:
    """common: devices every method programmed successfully (fair pulse ratios)."""
    ok = run["ok"]
    err_levels = (run["final"] - targets) / level
    return {
        "devices": int(targets.size),
        "success": float(ok.mean()),
        "pulses_mean": float(run["pulses"].mean()),
        "pulses_p95": float(np.percentile(run["pulses"], 95)),
        "pulses_mean_common": float(run["pulses"][common].mean()) if common.any() else float("nan"),
        "rms_error_levels": float(np.sqrt(np.mean(err_levels**2))),
        "rms_error_levels_ok": float(np.sqrt(np.mean(err_levels[ok] ** 2))) if ok.any() else float("nan"),
        "board_time_s": float(run["time"].sum()),
        "energy_J": float(run["energy"].sum()),
        "wall_s": float(run["wall"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--devices", type=int, default=256)
    ap.add_argument("--presets", nargs="+", default=sorted(PRESETS))
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--level-reps", type=int, default=20, help="replays per plan in the levels study")
    a = ap.parse_args()
    report = {"machine": platform.platform(), "levels": LEVELS, "max_pulses": MAX_PULSES, "presets": {}}
    for name in a.presets:
        rows, cols, repeats = shape_for(name, a.devices)
        targets, level = targets_for(name, rows, cols, repeats)
        tol = level / 2
        blob = train_predictor(name, rows, cols)
        runs = {
            "ispp": run_board(name, "ispp", targets, tol),
            "adaptive": run_board(name, "adaptive", targets, tol),
            "ffp": run_board(name, "ffp", targets, tol),
            "predicted": run_board(name, "predicted", targets, tol, blob),
            "oracle": run_oracle(name, targets, tol),
        }
        common = np.logical_and.reduce([r["ok"] for r in runs.values()])
        rows_out = {k: summarize(v, targets, level, common) for k, v in runs.items()}
        o = rows_out["oracle"]["pulses_mean_common"] or 1.0
        f = rows_out["ispp"]["pulses_mean_common"] or 1.0
        for v in rows_out.values():
            v["pulses_vs_oracle"] = v["pulses_mean_common"] / o
            v["pulses_vs_ispp"] = v["pulses_mean_common"] / f
        report["presets"][name] = rows_out
        print(f"\n### {name}: {targets.size} targets, 8-bit levels, tolerance half a level ({tol * 1e6:.3g} uS)\n")
        print(f"pulse ratios over the {int(common.sum())} devices every method programmed\n")
        print("| algorithm | success | pulses mean (all) | p95 | pulses mean (common) | RMS err levels (all / ok) "
              "| board time s | energy J | wall s | ÷ oracle | ÷ ISPP |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for k, v in rows_out.items():
            print(
                f"| {k} | {v['success']:.1%} | {v['pulses_mean']:.1f} | {v['pulses_p95']:.0f} "
                f"| {v['pulses_mean_common']:.1f} | {v['rms_error_levels']:.2f} / {v['rms_error_levels_ok']:.2f} "
                f"| {v['board_time_s']:.3g} | {v['energy_J']:.3g} | {v['wall_s']:.1f} "
                f"| {v['pulses_vs_oracle']:.2f} | {v['pulses_vs_ispp']:.2f} |"
            )
    if "tio2_4terminal" in a.presets:  # paper 001's levels study on its device
        print()
        report["levels_study"] = levels_study(reps=a.level_reps)
        print_levels(report["levels_study"])
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
