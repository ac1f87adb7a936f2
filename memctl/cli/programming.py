"""`memctl` commands for programming conductances: write-verify maps, tuning, FFP calibration."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from memctl.algorithms import FFP, ISPP, Adaptive, Algorithm, Predicted
from memctl.board import ProgramResult
from memctl.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_NOT_ALL_OK,
    _board,
    _load_array,
    _pair,
    apply_device,
    apply_settings,
    console,
    err_console,
    resume_command,
    with_port,
)
from memctl.errors import Interrupted


def _algorithm(a: argparse.Namespace) -> Algorithm:
    """The algorithm's settings: a tuned settings file (--settings), else from
    --device (preset or file) when given, else the defaults."""
    if getattr(a, "settings", None):
        from memctl.tune import TunedSettings

        return TunedSettings.load(a.settings).to_algorithm()
    if a.device:
        from memctl.tuning import settings_for

        s = settings_for(a.device)
        base = {"ispp": s.ispp, "adaptive": s.adaptive, "predicted": s.predicted}.get(a.algorithm)
    else:
        base = {"ispp": ISPP(), "adaptive": Adaptive(), "predicted": Predicted()}.get(a.algorithm)
    if a.algorithm == "ffp":
        if not a.window:
            raise SystemExit("--algorithm ffp needs --window LO HI (siemens per step)")
        return FFP(a.window[0], a.window[1], **({"width": a.width} if a.width else {}))
    if a.width and hasattr(base, "width"):
        base = dataclasses.replace(base, width=a.width)
    if getattr(a, "overshoot", None) is not None:
        if a.algorithm != "predicted":
            raise SystemExit("--overshoot applies to --algorithm predicted only")
        if not 0 <= a.overshoot <= 100:
            raise SystemExit(f"--overshoot must be 0..100, got {a.overshoot:g}")
        base = dataclasses.replace(base, overshoot=a.overshoot)
    return base


def _save_program(path: str, r: ProgramResult) -> None:
    """Per-device results; statuses by name ("not-programmed" for devices an interrupt left)."""
    np.savez(
        path, targets=r.targets, final=r.final, pulses=r.pulses, status=r.status_names(), time=r.time, energy=r.energy
    )


def _resume_mask(path: str, shape: tuple[int, ...]) -> np.ndarray:
    """The devices a previous --out file does not list as ok: what is left to program."""
    try:
        with np.load(path, allow_pickle=False) as f:
            status = f["status"]
    except (OSError, ValueError, KeyError) as e:
        raise SystemExit(f"--resume {path}: not a results file from `memctl program --out` ({e})") from None
    if status.shape != shape:
        raise SystemExit(f"--resume {path} holds results for a {status.shape} map, this map is {shape}")
    return status != "ok"


def cmd_program(a: argparse.Namespace) -> int:
    targets = _load_array(a.map, ndim=2)
    if getattr(a, "device", None):
        from memctl.devices import load_device

        d = load_device(a.device)
        outside = int(((targets < d.g_min) | (targets > d.g_max)).sum())
        if outside:
            raise ValueError(
                f"{outside} target(s) outside the {d.name} range {d.g_min:.4g}..{d.g_max:.4g} S; nothing was programmed"
            )
    mask = _resume_mask(a.resume, targets.shape) if a.resume else None
    algorithm = _algorithm(a)
    tolerance = a.tolerance
    if tolerance is None:
        from memctl.tuning import settings_for

        tolerance = settings_for(a.device).tolerance if getattr(a, "device", None) else 1e-6
    out = a.out or a.resume or str(Path(a.map).with_suffix("")) + ".program.npz"
    with _board(a) as b:
        if a.settings:
            apply_settings(b, a.settings)
        elif getattr(a, "device", None):
            apply_device(b, a.device)
        lim = b.limits()
        try:
            r = b.program(
                targets,
                tolerance=tolerance,
                max_pulses=a.max_pulses,
                origin=(a.origin[0], a.origin[1]),
                algorithm=algorithm,
                mask=mask,
                chunk=a.chunk,
            )
        except Interrupted as e:
            part = e.partial
            if mask is not None:
                _merge_previous(part, a.resume, mask)
            _save_program(out, part)
            err_console.print(
                f"interrupted: {e.done} of {e.total} devices programmed, saved to {out}; "
                f"to program the rest: {resume_command(a, '--resume', out)}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            return EXIT_INTERRUPTED
    if mask is not None:
        _merge_previous(r, a.resume, mask)
    names = r.status_names()
    bad = int((names != "ok").sum())
    counts = ", ".join(f"{n} {k}" for k, n in zip(*np.unique(names[names != "ok"], return_counts=True), strict=True))
    console.print(
        f"programmed {r.targets.size} devices: {r.targets.size - bad} within {tolerance:g} S"
        + (f" ({counts})" if counts else "")
        + f", max |error| {np.nanmax(np.abs(r.error)):.3g} S, pulses mean {r.pulses.mean():.1f} max {r.pulses.max()}, "
        f"board time {r.board_time:.3f} s, wall {r.wall_time:.2f} s",
        highlight=False,
    )
    if (names == "at-safety-limit").any():
        console.print(
            f"at-safety-limit: those devices did not reach their targets at the board's limits (pulses up to "
            f"+-{lim.v_pulse:g} V, {lim.width:g} s wide). If the device family allows more, raise them: "
            "memctl set-limits V_PULSE WIDTH V_READ, or --device NAME for a known family.",
            markup=False,
            highlight=False,
        )
    if a.out or a.resume:
        _save_program(out, r)
        console.print(f"results (status by name per device) saved to {out}", highlight=False)
    return 0 if bad == 0 else EXIT_NOT_ALL_OK


def _merge_previous(r: ProgramResult, path: str, mask: np.ndarray) -> None:
    """Resumed: the devices the previous run finished keep its results."""
    with np.load(path, allow_pickle=False) as f:
        keep = ~mask
        for k in ("final", "pulses", "time", "energy"):
            getattr(r, k)[keep] = f[k][keep]
        r.status[keep] = 0


def cmd_tune(a: argparse.Namespace) -> int:
    from memctl.devices import load_device
    from memctl.tune import optimizer, tune
    from memctl.tuning import settings_for

    optimizer()  # before anything reaches the board
    d = load_device(a.device)
    s = settings_for(d)
    with _board(a) as b:
        s.apply(b, min_width=a.min_width)
        if a.devices:
            devices = [_pair(x) for x in a.devices]
        else:  # from the array's far end, away from maps placed at the origin
            rows, cols = b.shape
            devices = [(r, c) for r in reversed(range(rows)) for c in reversed(range(cols))]
        tol = a.tolerance or (d.g_max - d.g_min) / 510
        t = tune(
            b,
            s.adaptive if a.algorithm == "adaptive" else s.predicted,
            devices=devices,
            g_range=(d.g_min, d.g_max),
            tolerance=tol,
            max_pulses=a.max_pulses,
            iterations=a.iterations,
            init_points=a.init_points,
            per_trial=a.per_trial,
            seed=a.seed,
            device=a.device,
        )
    t.save(a.out)
    verdict = (
        "nothing beat the starting settings by more than twice that: kept them"
        if t.kept_start
        else "the best trial's settings"
    )
    console.print(
        f"tuned {t.algorithm} on devices of {d.name}, {a.per_trial} fresh ones per trial: the best trial saved "
        f"{t.gain:.1f} +- {t.gain_se:.1f} pulses per device against the starting settings on the same targets "
        f"({t.start_pulses:.1f} pulses, {t.start_success:.0%} reached); {verdict}: {t.pulses:.1f} pulses, "
        f"{t.success:.0%} reached; wrote {a.out}. It pulsed {t.devices_used} devices, from {devices[0]} on in the "
        "order given: program others."
    )
    return 0


def cmd_ffp_calibrate(a: argparse.Namespace) -> int:
    from memctl.ffp import calibrate

    with _board(a) as b:
        table = calibrate(b, a.row, a.col, FFP(a.window[0], a.window[1], width=a.width), *a.g_range, sweeps=a.sweeps)
    learned = int((table.v_set > 0).sum() + (table.v_reset > 0).sum())
    print(f"V_w table: {learned} of {2 * len(table.v_set)} bins learned over {table.g_lo:.4g}..{table.g_hi:.4g} S")
    if a.out:
        np.savez(a.out, g_lo=table.g_lo, g_hi=table.g_hi, v_set=table.v_set, v_reset=table.v_reset)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    g = with_port(sub.add_parser("program", help="write-verify a conductance map (.npy, siemens)"))
    g.add_argument("map", help="target conductances (.npy, siemens, 2-D)")
    g.add_argument("--tolerance", type=float, help="S (default: 1 %% of the --device's range, else 1e-6)")
    g.add_argument("--max-pulses", type=int, default=100, help="per device")
    g.add_argument("--width", type=float, help="(initial) pulse width, s")
    g.add_argument(
        "--algorithm",
        choices=["ispp", "adaptive", "ffp", "predicted"],
        default="ispp",
        help="write-verify algorithm (docs/programming.md)",
    )
    g.add_argument(
        "--device",
        help="preset or device file: its safety limits and read voltage are put on the board, its starting "
        "settings used",
    )
    g.add_argument(
        "--settings",
        help="a settings file from `memctl tune`: its algorithm, and the limits and read voltage it was tuned "
        "under, go on the board (overrides --algorithm and --device)",
    )
    g.add_argument("--window", type=float, nargs=2, metavar=("LO", "HI"), help="FFP step window, S")
    g.add_argument(
        "--overshoot",
        type=float,
        help="predicted with an inverse model: how much worse landing beyond the tolerance band counts "
        "(0 aims at the band's centre; more backs off by the model's spread; default 0)",
    )
    g.add_argument(
        "--origin", type=int, nargs=2, default=(0, 0), metavar=("ROW", "COL"), help="where the map's first device sits"
    )
    g.add_argument(
        "--out",
        help="save per-device results (targets, final, pulses, status by name, time, energy) to this .npz "
        "(default: MAP.program.npz, written whenever the run is interrupted)",
    )
    g.add_argument(
        "--chunk",
        type=int,
        default=16,
        help="devices per request (default: %(default)s): an interrupt keeps every finished request's results",
    )
    g.add_argument(
        "--resume",
        metavar="RESULTS",
        help="a results .npz of an earlier run of the same map: program only the devices it does not list as ok",
    )
    g.set_defaults(fn=cmd_program)

    tu = with_port(sub.add_parser("tune", help="Bayesian optimization of programming settings on sample devices"))
    tu.add_argument("--device", required=True, help="preset, generated:SEED or device file: the family to tune for")
    tu.add_argument(
        "--algorithm",
        choices=["adaptive", "predicted"],
        default="adaptive",
        help="adaptive write-verify (default), or predictor-guided's overshoot penalty (load an inverse "
        "predictor first)",
    )
    tu.add_argument(
        "--devices",
        nargs="+",
        metavar="ROW,COL",
        help="devices to tune on, each programmed in one evaluation only (default: as many as it needs from the "
        "array's last row backwards; not the ones you will program for real)",
    )
    tu.add_argument("--per-trial", type=int, default=4, help="devices per evaluation")
    tu.add_argument("--out", required=True, help="settings file to write (JSON)")
    tu.add_argument("--tolerance", type=float, help="S (default: half an 8-bit level of the family's range)")
    tu.add_argument("--max-pulses", type=int, default=300, help="per device and trial")
    tu.add_argument("--iterations", type=int, default=16, help="GP-guided trials after the random ones")
    tu.add_argument("--init-points", type=int, default=5, help="random trials")
    tu.add_argument("--min-width", type=float, default=0.0, help="raise the width limit to at least this, s")
    tu.add_argument("--seed", type=int, default=0, help="seed of the targets and the optimizer")
    tu.set_defaults(fn=cmd_tune)

    fc = with_port(sub.add_parser("ffp-calibrate", help="learn the board's FFP V_w(G) table on one device"))
    fc.add_argument("--row", type=int, default=0, help="the device calibrated on: row")
    fc.add_argument("--col", type=int, default=0, help="the device calibrated on: column")
    fc.add_argument("--window", type=float, nargs=2, required=True, metavar=("LO", "HI"), help="step window, S")
    fc.add_argument("--g-range", type=float, nargs=2, required=True, metavar=("LO", "HI"), help="table span, S")
    fc.add_argument("--width", type=float, default=0.8, help="FFP pulse width, s")
    fc.add_argument("--sweeps", type=int, default=3, help="up-and-down sweeps over the range")
    fc.add_argument("--out", help="save the table to this .npz")
    fc.set_defaults(fn=cmd_ffp_calibrate)
