"""What programming costs a lab, per algorithm: success, pulses, the array's
board time, pulse energy and wall time, against the oracle, on the device
presets and on generated families nobody tuned for, and on the path a user
takes.

    python benchmarks/programming.py [--devices 64] [--families NAME ...] [--seeds 11 12] [--quick]

For each family (a preset, or generated:SEED from memctl.devices.random_device;
the defaults generated:2000..2007 are kept apart from generated:1000..1007 and
board seed 7, on which predictor-guided programming was designed): the same
random 8-bit targets across the nominal range (tolerance half a level) are
programmed on fresh emulated boards of each seed in SEEDS by ISPP, adaptive
write-verify with the family's starting settings and with settings `memctl
tune` found on another board (seed 207), predictor-guided programming with an
int8 inverse predictor fitted on single-pulse characterization of yet another
board (seed 107), and, on isolated copies of the same devices, by the oracle
(memctl_emulator/oracle.py): the bound on pulses. Each board run is made twice:
row-parallel (the default; its board time is the array's, rows overlapping)
and one device at a time (the serial board time). Success, pulses and energy
are the row-parallel run's. Ratios are of figures measured in the same run;
per-seed ratios give the run-to-run spread. The predictor's decisions are
timed under MicroPython. Then the user path (user_path): characterize 4
devices of a fresh 16x16 1T1R board with the CLI's defaults, fit int8, program
256 targets on a board of another seed. Prints markdown tables and writes
benchmarks/results/programming.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from report import programming, programming_goals, programming_user_path

import memctl
from memctl.characterize import characterize, coverage, write_hdf5
from memctl.devices import PRESETS, DeviceModel, load_device, random_device
from memctl.export.train import FitResult, fit, load
from memctl.firmware_image import staged
from memctl.tune import evaluations, tune
from memctl.tuning import characterization_pulses, form, settings_for
from memctl_emulator import EmulatedBoard, micropython_executable
from memctl_emulator import oracle as oracle_mod
from memctl_emulator.afe import AFEConfig, AnalogFrontEnd
from memctl_emulator.array_circuit import LineDrive

OUT = Path(__file__).with_name("results") / "programming.json"
LEVELS = 256
SEEDS = (11, 12)  # the boards programmed
TARGET_SEED = 7  # the targets
TRAIN_SEED = 107  # boards the predictor is characterized on
TUNE_SEED = 207  # boards adaptive is tuned on
GENERATED = [f"generated:{s}" for s in range(2000, 2008)]
BASELINES = ("ispp", "adaptive", "adaptive_tuned")
MAX_PULSES = 300  # paper 003: at most 300 write/read pulses per device


def family(name: str) -> tuple[DeviceModel, str]:
    """The device model and the cell its boards use."""
    if name.startswith("generated:"):
        return random_device(int(name.split(":")[1]))
    return load_device(name), "1T1R" if name == "tio2_4terminal" else "0T1R"


def shape_for(name: str, n: int) -> tuple[int, int, int]:
    """(rows, cols, repeats): the four-terminal device is one device programmed n times."""
    if name == "tio2_4terminal":
        return 1, 1, n
    cols = int(np.sqrt(n))
    return n // cols, cols, 1


def targets_for(d: DeviceModel, shape: tuple[int, ...], levels: int = LEVELS, seed: int = TARGET_SEED):
    level = (d.g_max - d.g_min) / (levels - 1)
    return d.g_min + np.random.default_rng(seed).integers(0, levels, shape) * level, level


def prepared(name: str, b: memctl.Board, d: DeviceModel) -> None:
    settings_for(d).apply(b, min_width=1e-3)
    if d.v_form:
        form(b, 0.9 * d.v_form)


def characterized_predictor(
    name: str, seed: int, devices: list[tuple[int, int]], pulses: int, shape: tuple[int, int], cell: str
) -> tuple[FitResult, dict]:
    """Single-pulse characterization of a board of the family, then the inverse predictor's fit."""
    d = family(name)[0]
    with tempfile.TemporaryDirectory() as tmp:
        with EmulatedBoard(rows=shape[0], cols=shape[1], seed=seed, device=name, cell=cell) as emu:
            with memctl.Board(emu.port, progress=False) as b:
                prepared(name, b, d)
                ch = characterize(b, characterization_pulses(d, devices, pulses))
        write_hdf5(Path(tmp) / "c.h5", ch)
        data = load([Path(tmp) / "c.h5"])
    r = fit(data)
    cov = coverage(data.i_min, data.i_max, name)
    info = {
        "params": r.model.n_params,
        "rows": len(data.y),
        "mse_float": r.mse["test"],
        "mse_int8": r.int8_mse["test"],
        "covered_uA": [cov.lo * 1e6, cov.hi * 1e6],
        "family_uA": [cov.family_lo * 1e6, cov.family_hi * 1e6],
        "covered_share": cov.share,
    }
    return r, info


def train_predictor(name: str, quick: bool) -> tuple[bytes, dict]:
    """16 devices (4 quick) of another board: the board under test never saw its own devices."""
    side = 2 if quick else 4
    devices = [(r, c) for r in range(side) for c in range(side)]
    r, info = characterized_predictor(name, TRAIN_SEED, devices, 150 if quick else 300, (4, 4), family(name)[1])
    return r.int8_blob, info


def tune_on_board(name: str, base, quick: bool) -> tuple:
    """memctl tune with its defaults (quick: fewer trials) on another board of the family."""
    d, cell = family(name)
    init, iters, per = (2, 2, 2) if quick else (5, 16, 4)
    side = int(np.ceil(np.sqrt(evaluations(init, iters) * per)))
    with EmulatedBoard(rows=side, cols=side, seed=TUNE_SEED, device=name, cell=cell) as emu:
        with memctl.Board(emu.port, progress=False) as b:
            prepared(name, b, d)
            t = tune(
                b,
                base,
                devices=[(r, c) for r in range(side) for c in range(side)],
                g_range=(d.g_min, d.g_max),
                tolerance=(d.g_max - d.g_min) / 510,
                per_trial=per,
                iterations=iters,
                init_points=init,
                device=name,
            )
    info = {
        "start_pulses": t.start_pulses,
        "tuned_pulses": t.pulses,
        "gain": t.gain,
        "gain_se": t.gain_se,
        "kept_start": t.kept_start,
        "trials": len(t.trials),
    }
    return t.to_algorithm(), info


def run_board(
    name: str,
    algorithm,
    targets: np.ndarray,
    tol: float,
    seed: int,
    blob: bytes | None = None,
    parallel: bool = True,
    cell: str | None = None,
) -> dict:
    """targets: repeats x rows x cols, programmed in turn on one fresh board (cell: the family's by default)."""
    d, family_cell = family(name)
    cell = cell or family_cell
    repeats, rows, cols = targets.shape
    start = time.monotonic()
    results = []
    with EmulatedBoard(rows=rows, cols=cols, seed=seed, device=name, cell=cell) as emu:
        with memctl.Board(emu.port, progress=False) as b:
            prepared(name, b, d)
            if blob is not None:
                b.load_predictor(blob)
            for t in targets:
                results.append(
                    b.program(t, tolerance=tol, max_pulses=MAX_PULSES, algorithm=algorithm, parallel=parallel)
                )
    out = {k: np.stack([getattr(r, k) for r in results]) for k in ("final", "pulses", "ok", "energy")}
    out["board_time"] = sum(r.board_time for r in results)
    out["wall"] = time.monotonic() - start
    return out


def run_oracle(name: str, targets: np.ndarray, tol: float, seed: int) -> dict:
    d, _ = family(name)
    repeats, rows, cols = targets.shape
    s = settings_for(d)
    afe = AnalogFrontEnd(AFEConfig(rows=rows, cols=cols, device=d), seed=seed)  # the board's devices
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
    out["board_time"] = float(out["time"].sum())  # one device at a time, no reads counted
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


def decision_cost(blob: bytes, d: DeviceModel, overshoot: float = 0.0) -> dict:
    """The firmware's predictor-guided decisions under MicroPython (this machine's unix port)."""
    p = settings_for(d).predicted
    args = [
        p.v_set_lo,
        p.v_set_hi,
        p.v_reset_lo,
        p.v_reset_hi,
        p.t_lo,
        p.t_hi,
        d.v_read,
        (d.g_max - d.g_min) / 510,
        d.g_min,
        d.g_max,
        overshoot,
    ]
    with tempfile.NamedTemporaryFile(suffix=".mcpr") as f:
        f.write(blob)
        f.flush()
        out = subprocess.run(
            [
                micropython_executable(),
                "-X",
                "heapsize=256K",
                str(Path(__file__).with_name("mpy_decision.py")),
                str(staged()),
                f.name,
                *map(repr, args),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
    inferences, us = (float(x) for x in out.stdout.split())
    return {"inferences_per_pulse": inferences, "decision_us": us}


def summarize(runs: list[dict], serial: list[dict] | None, commons: list[np.ndarray]) -> dict:
    """One algorithm over the seeds: means, and each seed's figures (the run-to-run spread).
    commons: per seed, the devices every method reached (pulse ratios over the same devices)."""
    per_seed = []
    for k, run in enumerate(runs):
        ok = run["ok"]
        per_seed.append(
            {
                "success": float(ok.mean()),
                "pulses_mean": float(run["pulses"].mean()),
                "pulses_mean_ok": float(run["pulses"][ok].mean()) if ok.any() else float("nan"),
                "pulses_mean_common": float(run["pulses"][commons[k]].mean()) if commons[k].any() else float("nan"),
                "board_time_s": float(run["board_time"]),
                "board_time_serial_s": float(serial[k]["board_time"]) if serial else float("nan"),
                "energy_J": float(run["energy"].sum()),
                "wall_s": float(run["wall"]),
            }
        )
    out = {key: float(np.mean([p[key] for p in per_seed])) for key in per_seed[0]}
    out["per_seed"] = per_seed
    return out


def ratios(rows: dict, name: str, against: tuple[str, ...], key: str) -> list[float]:
    """Per seed: algorithm `name`'s figure over the lowest of `against`'s on the same board."""
    seeds = len(rows[name]["per_seed"])
    return [rows[name]["per_seed"][k][key] / min(rows[a]["per_seed"][k][key] for a in against) for k in range(seeds)]


def bench_family(name: str, n: int, seeds: tuple[int, ...], quick: bool) -> dict:
    d, cell = family(name)
    s = settings_for(d)
    rows, cols, repeats = shape_for(name, n)
    targets, level = targets_for(d, (repeats, rows, cols))
    tol = level / 2
    blob, predictor = train_predictor(name, quick)
    predictor.update(decision_cost(blob, d))
    tuned, tuning = tune_on_board(name, s.adaptive, quick)
    algos = {"ispp": s.ispp, "adaptive": s.adaptive, "adaptive_tuned": tuned, "predicted": s.predicted}
    board_runs: dict[str, list] = {k: [] for k in [*algos, "oracle"]}
    serial_runs: dict[str, list] = {k: [] for k in algos}
    for seed in seeds:
        for k, algo in algos.items():
            b = blob if k == "predicted" else None
            board_runs[k].append(run_board(name, algo, targets, tol, seed, b))
            serial_runs[k].append(run_board(name, algo, targets, tol, seed, b, parallel=False))
        board_runs["oracle"].append(run_oracle(name, targets, tol, seed))
    commons = [np.logical_and.reduce([r[k]["ok"] for r in board_runs.values()]) for k in range(len(seeds))]
    table = {k: summarize(v, serial_runs.get(k), commons) for k, v in board_runs.items()}
    for k, v in table.items():
        v["pulses_vs_oracle"] = ratios(table, k, ("oracle",), "pulses_mean_common")
        v["pulses_vs_best_adaptive"] = ratios(table, k, ("adaptive", "adaptive_tuned"), "pulses_mean_common")
        if k != "oracle":
            for key in ("board_time_s", "board_time_serial_s", "energy_J", "wall_s"):
                v[f"{key}_vs_best_baseline"] = ratios(table, k, BASELINES, key)
    report = {
        "cell": cell,
        "devices": int(targets.size),
        "common": [int(c.sum()) for c in commons],
        "predictor": predictor,
        "tuning": tuning,
        "algorithms": table,
    }
    print(f"\n### {name} ({cell}): {targets.size} targets per board, seeds {', '.join(map(str, seeds))}\n")
    print(programming({"families": {name: report}}))
    return report


def goals(families: dict) -> dict:
    """The issue's goals per family, met or by how much missed (the worst seed where a goal is per seed)."""
    out = {}
    for name, f in families.items():
        a = f["algorithms"]
        p = a["predicted"]
        best_success = max(a[b]["success"] for b in BASELINES)
        tuned_vs = [
            t["pulses_mean_common"] / u["pulses_mean_common"]
            for t, u in zip(a["adaptive_tuned"]["per_seed"], a["adaptive"]["per_seed"], strict=True)
        ]
        out[name] = {
            "success_gap_pt": 100 * (p["success"] - best_success),
            "success_ok": p["success"] >= best_success - 0.005,
            "board_time_vs_best": max(p["board_time_s_vs_best_baseline"]),
            "board_time_serial_vs_best": max(p["board_time_serial_s_vs_best_baseline"]),
            "energy_vs_best": max(p["energy_J_vs_best_baseline"]),
            "time_energy_ok": max(p["board_time_s_vs_best_baseline"]) <= 1 and max(p["energy_J_vs_best_baseline"]) <= 1,
            "pulses_vs_best_adaptive": max(p["pulses_vs_best_adaptive"]),
            "le_0.5x_best_adaptive": max(p["pulses_vs_best_adaptive"]) <= 0.5,
            "pulses_vs_oracle": max(p["pulses_vs_oracle"]),
            "le_2x_oracle": max(p["pulses_vs_oracle"]) <= 2,
            "tuned_vs_untuned": tuned_vs,
            "tuned_le_0.85": max(tuned_vs) <= 0.85,
            "int8_vs_float_mse": f["predictor"]["mse_int8"] / f["predictor"]["mse_float"],
            "inferences_per_pulse": f["predictor"]["inferences_per_pulse"],
        }
    return out


USER_PATH = (("hfo2_tio2_bilayer", 256), ("pt_al2o3_tio2_passive", 256), ("generated:2001", 64))


def user_path(name: str, levels: int, quick: bool) -> dict:
    """The documented path on a fresh 16x16 1T1R board: `memctl predictor characterize --device NAME` with its
    defaults (4 devices of row 0, 300 pulses each), `predictor fit --int8`, then 256 random targets
    (half-level tolerance) on a board of another seed, by each algorithm."""
    d = family(name)[0]
    s = settings_for(d)
    side = 8 if quick else 16
    devices = [(0, c) for c in range(4)]
    r, info = characterized_predictor(name, 301, devices, 300, (side, side), "1T1R")
    blob = r.int8_blob
    targets, level = targets_for(d, (side, side), levels)
    out = {"levels": levels, "devices": int(targets.size), "predictor": info, "algorithms": {}}
    for k, algo in {"ispp": s.ispp, "adaptive": s.adaptive, "predicted": s.predicted}.items():
        r = run_board(name, algo, targets[None], level / 2, 302, blob if k == "predicted" else None, cell="1T1R")
        ok = r["ok"]
        out["algorithms"][k] = {
            "success": float(ok.mean()),
            "pulses_mean_ok": float(r["pulses"][ok].mean()),
            "board_time_s": float(r["board_time"]),
            "energy_J": float(r["energy"].sum()),
            "wall_s": float(r["wall"]),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=64, help="targets per family and board (64)")
    ap.add_argument(
        "--families",
        nargs="+",
        default=sorted(PRESETS) + GENERATED,
        help="presets and/or generated:SEED (default: the four presets and generated:2000..2007)",
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="board seeds (11 12)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--quick", action="store_true", help="less characterization and tuning (the test suite's run)")
    ap.add_argument("--no-user-path", action="store_true", help="skip the user path")
    a = ap.parse_args()
    report = {
        "machine": platform.platform(),
        "levels": LEVELS,
        "max_pulses": MAX_PULSES,
        "seeds": a.seeds,
        "quick": a.quick,
        "families": {},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every family: a run cut short keeps what it measured
        a.out.write_text(json.dumps(report, indent=2, default=float) + "\n")

    for name in a.families:
        report["families"][name] = bench_family(name, a.devices, tuple(a.seeds), a.quick)
        report["goals"] = goals(report["families"])
        save()
    print("\n### goals\n")
    print(programming_goals(report))
    if not a.no_user_path:
        report["user_path"] = {}
        for name, levels in USER_PATH:
            report["user_path"][name] = user_path(name, levels, a.quick)
            save()
        print("\n### the user path\n")
        print(programming_user_path(report))
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
