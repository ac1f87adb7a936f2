"""`memctl` commands for characterization and the on-board predictor: fit, export, check, load."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from memctl.cli.common import _board, _pair, apply_device, console, err_console, with_port

if TYPE_CHECKING:
    from memctl.characterize import Coverage
    from memctl.export.train import Dataset


def cmd_characterize(a: argparse.Namespace) -> int:
    from memctl.characterize import PulseSweep, Sweep, characterize, plot, write_hdf5

    devices = [_pair(d) for d in a.devices]
    if a.mode == "pulses":
        if a.device:
            from memctl.tuning import characterization_pulses

            sweep = characterization_pulses(a.device, devices, a.pulses, a.seed)
        else:
            sweep = PulseSweep(
                devices=devices,
                pulses=a.pulses,
                v_set=tuple(a.v_set_range),
                v_reset=tuple(a.v_reset_range),
                width=tuple(a.width_range),
                v_read=a.v_read[0],
                seed=a.seed,
            )
    else:
        sweep = Sweep(
            devices=devices,
            periods=a.periods,
            v_set=a.v_set,
            t_set=a.t_set,
            v_anti=a.v_anti,
            t_anti=a.t_anti,
            t_off=a.t_off,
            v_read=a.v_read,
            t_read=a.t_read,
            reset=(a.reset[0], a.reset[1], int(a.reset[2])) if a.reset else None,
        )
    with _board(a) as b:
        if a.limits:
            b.set_limits(*a.limits)
        elif a.device:
            apply_device(b, a.device)
        ch = characterize(b, sweep)
    write_hdf5(a.out, ch, device=a.device)
    msg = f"{len(ch.params)} curves x {ch.currents.shape[1]} reads ({ch.mode}) -> {a.out}"
    if a.plot:
        plot(a.plot, ch)
        msg += f", plot {a.plot}"
    console.print(msg + f" ({ch.wall_time:.1f} s)")
    return 0


def cmd_predictor_characterize(a: argparse.Namespace) -> int:
    """The recommended characterization of a family, both directions, as the files `predictor fit` takes."""
    import numpy as np

    from memctl.characterize import characterize, coverage, plot, write_hdf5
    from memctl.tuning import characterization_pulses, characterization_sweeps

    devices = [_pair(d) for d in a.devices]
    out = Path(a.out)
    if a.kind == "inverse":
        runs = {"pulses": characterization_pulses(a.device, devices, a.pulses, a.seed)}
    else:
        up, down = characterization_sweeps(a.device, devices, a.periods)
        runs = {"up": up, "down": down}
    with _board(a) as b:
        for sweep in runs.values():  # checked against this board before anything is pulsed
            sweep.validate(*b.shape)
        apply_device(b, a.device)
        out.mkdir(parents=True, exist_ok=True)
        files = []
        currents = []
        for name, sweep in runs.items():
            ch = characterize(b, sweep)
            write_hdf5(out / f"{name}.h5", ch, device=a.device)
            plot(out / f"{name}.png", ch)
            files.append(str(out / f"{name}.h5"))
            currents.append(ch.currents)
            console.print(
                f"{name}: {len(ch.params)} curves x {ch.currents.shape[1]} reads -> {files[-1]}", highlight=False
            )
    seen = np.concatenate([c.ravel() for c in currents])
    report_coverage(coverage(float(seen.min()), float(seen.max()), a.device), "characterize more devices or pulses")
    console.print(
        "next: memctl predictor fit "
        + " ".join(files)
        + f" --int8 --out {out / 'model.mcpr'} && memctl predictor load {out / 'model.mcpr'} --port {a.port}",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def report_coverage(cov: Coverage, fix: str) -> None:
    """One line on what a characterization covered; a warning naming the uncovered currents."""
    console.print(str(cov), highlight=False)
    gaps = cov.gaps()
    if gaps:
        err_console.print(
            f"[yellow]warning:[/] targets read at {' and '.join(gaps)} lie outside the characterization: a model "
            f"fitted on it extrapolates there (more pulses, or failures); {fix}",
            highlight=False,
            soft_wrap=True,
        )


def _training_data(paths: list[str]) -> Dataset:
    """The characterization files as training data, with what they cover of the family they name."""
    from memctl.characterize import coverage
    from memctl.export.train import load

    data = load(paths)
    if data.device:
        report_coverage(
            coverage(data.i_min, data.i_max, data.device),
            f"characterize wider first (memctl predictor characterize --device {data.device})",
        )
    return data


def cmd_predictor_fit(a: argparse.Namespace) -> int:
    from memctl.export.train import fit

    data = _training_data(a.data)
    r = fit(data, hidden=tuple(a.hidden), seed=a.seed)
    blob = r.int8_blob if a.int8 else r.blob
    Path(a.out).write_bytes(blob)
    t = Table(title=f"predictor: {r.model.n_params} parameters, {len(data.y)} pulse periods, {r.epochs} epochs")
    t.add_column("split")
    t.add_column("MSE float32", justify="right")
    t.add_column("MSE int8", justify="right")
    for k, v in r.mse.items():
        t.add_row(k, f"{v:.3g}", f"{r.int8_mse[k]:.3g}")
    console.print(t)
    kind = "int8" if a.int8 else "float32"
    console.print(f"target variance {data.y.var():.3g}; wrote {a.out} ({kind}, {len(blob)} bytes)")
    return 0


# What `predictor export` imports to write and check the TFLite files: the [export] extra.
EXPORT_MODULES = {"tflite": "tflite", "flatbuffers": "flatbuffers"}


def missing_export_modules() -> list[str]:
    import importlib.util

    return [pkg for mod, pkg in EXPORT_MODULES.items() if importlib.util.find_spec(mod) is None]


def cmd_predictor_export(a: argparse.Namespace) -> int:
    missing = missing_export_modules()
    if missing:
        raise SystemExit(
            f"predictor export writes TFLite files, which needs the export extra "
            f"(missing: {', '.join(missing)}): pip install 'memctl[export]'. Nothing was written; "
            "`memctl predictor fit` writes the firmware blob without it."
        )
    from memctl.export.check import export
    from memctl.export.train import fit

    data = _training_data(a.data)
    r = fit(data, hidden=tuple(a.hidden), seed=a.seed)
    d = export(r, data, a.out_dir)
    console.print(
        f"{r.model.n_params}-parameter predictor: test MSE {r.mse['test']:.3g} (float32), {r.int8_mse['test']:.3g} "
        f"(int8); wrote {', '.join(sorted(p.name for p in d.iterdir()))} to {d}"
    )
    return 0


def cmd_predictor_check(a: argparse.Namespace) -> int:
    from memctl.export.check import cross_check

    rows = cross_check(a.model_dir)
    t = Table(title=f"predictor cross-check: {a.model_dir}")
    for col in ("runtime", "compared with", "max deviation", "verdict"):
        t.add_column(col)
    for r in rows:
        t.add_row(r.runtime, r.compared_with, f"{r.max_deviation:.3g} {r.unit}", r.verdict)
    console.print(t)
    return 1 if any(r.verdict == "MISMATCH" for r in rows) else 0


def cmd_predictor_load(a: argparse.Namespace) -> int:
    blob = Path(a.model).read_bytes()
    with _board(a) as b:
        n = b.load_predictor(blob)
    print(f"loaded a {n}-parameter predictor")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    ch = with_port(sub.add_parser("characterize", help="pulse trains (paper 004) or single pulses to HDF5 + PNG"))
    ch.add_argument(
        "--mode",
        choices=["trains", "pulses"],
        default="trains",
        help="trains: paper 004's sweeps; pulses: single pulses like programming's, the data an "
        "inverse predictor (predicted programming) learns from",
    )
    ch.add_argument(
        "--device",
        help="the family (preset, generated:SEED, file): its limits and read voltage go on the board (unless "
        "--limits), and in pulses mode the ranges come from it",
    )
    ch.add_argument("--pulses", type=int, default=300, help="pulses mode: pulses per device (300)")
    ch.add_argument(
        "--v-set-range", type=float, nargs=2, default=[0.6, 2.0], metavar=("LO", "HI"), help="pulses: set amplitudes, V"
    )
    ch.add_argument(
        "--v-reset-range",
        type=float,
        nargs=2,
        default=[-0.6, -2.0],
        metavar=("LO", "HI"),
        help="pulses: reset amplitudes, V",
    )
    ch.add_argument(
        "--width-range", type=float, nargs=2, default=[1e-5, 1e-3], metavar=("LO", "HI"), help="pulses: widths, s"
    )
    ch.add_argument("--seed", type=int, default=0, help="pulses: the random pulse sequence")
    ch.add_argument("--out", required=True, help="HDF5 file to write")
    ch.add_argument("--plot", help="PNG file to write")
    ch.add_argument("--devices", nargs="+", default=["0,0"], metavar="ROW,COL", help="devices characterized")
    ch.add_argument("--periods", type=int, default=100, help="trains: pulse periods per curve")
    for name, default in (
        ("v-set", 2.0),
        ("t-set", 0.1),
        ("v-anti", 0.0),
        ("t-anti", 0.0),
        ("t-off", 0.0),
        ("v-read", 0.5),
        ("t-read", 0.5e-3),
    ):
        ch.add_argument(f"--{name}", type=float, nargs="+", default=[default], help=f"one or more values ({default})")
    ch.add_argument("--reset", type=float, nargs=3, metavar=("V", "WIDTH", "COUNT"), help="reset before each curve")
    ch.add_argument("--limits", type=float, nargs=3, metavar=("V_PULSE", "WIDTH", "V_READ"), help="set limits first")
    ch.set_defaults(fn=cmd_characterize)

    pr = sub.add_parser("predictor", help="fit and load the pulse-increment predictor (paper 004)")
    prs = pr.add_subparsers(dest="predictor_cmd", required=True)
    pk = with_port(
        prs.add_parser(
            "characterize",
            help="run the recommended characterization of a device family (both directions) into DIR: the files "
            "`predictor fit` takes",
        )
    )
    pk.add_argument("--device", required=True, help="preset, generated:SEED or device file: the family")
    pk.add_argument("--out", required=True, metavar="DIR", help="folder for the HDF5 files and plots")
    pk.add_argument(
        "--kind",
        choices=["inverse", "trains"],
        default="inverse",
        help="inverse (default): single set and reset pulses over the family's programming ranges, for the "
        "inverse predictor predicted programming uses (pulses.h5); trains: paper 004's set and reset pulse "
        "trains (up.h5, down.h5)",
    )
    pk.add_argument(
        "--devices",
        nargs="+",
        default=[f"0,{c}" for c in range(4)],
        metavar="ROW,COL",
        help="devices to characterize (default: the first four of row 0; they are pulsed many times)",
    )
    pk.add_argument("--pulses", type=int, default=300, help="inverse: pulses per device (default: %(default)s)")
    pk.add_argument("--periods", type=int, default=30, help="trains: periods per curve (default: %(default)s)")
    pk.add_argument("--seed", type=int, default=0, help="inverse: the random pulse sequence (default: %(default)s)")
    pk.set_defaults(fn=cmd_predictor_characterize)
    pf = prs.add_parser("fit", help="train from memctl characterize files and write the firmware blob")
    pf.add_argument("data", nargs="+", help="HDF5 files from memctl characterize")
    pf.add_argument("--out", required=True, help="firmware blob to write (.mcpr)")
    pf.add_argument("--hidden", type=int, nargs="+", default=[16, 16], help="hidden layer widths")
    pf.add_argument("--seed", type=int, default=0, help="seed of the split and the training")
    pf.add_argument("--int8", action="store_true", help="write the int8 (quantized) blob")
    pf.set_defaults(fn=cmd_predictor_fit)
    pe = prs.add_parser("export", help="fit, then write firmware blobs and ONNX models to a directory")
    pe.add_argument("data", nargs="+", help="HDF5 files from memctl characterize")
    pe.add_argument("--out-dir", required=True, help="folder for the blobs, ONNX and TFLite models")
    pe.add_argument("--hidden", type=int, nargs="+", default=[16, 16], help="hidden layer widths")
    pe.add_argument("--seed", type=int, default=0, help="seed of the split and the training")
    pe.set_defaults(fn=cmd_predictor_export)
    pc = prs.add_parser("check", help="run every export through its runtime and compare (max deviation)")
    pc.add_argument("model_dir", help="a folder from memctl predictor export")
    pc.set_defaults(fn=cmd_predictor_check)
    pl = with_port(prs.add_parser("load", help="stream a predictor blob to the board"))
    pl.add_argument("model", help="a predictor blob (.mcpr) from memctl predictor fit")
    pl.set_defaults(fn=cmd_predictor_load)
