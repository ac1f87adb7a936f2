"""`memctl` commands for deployed networks: map an ONNX MLP onto crossbars, run it."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rich.table import Table

from memctl.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_NOT_ALL_OK,
    _board,
    _boards,
    _load_array,
    apply_device,
    apply_settings,
    console,
    err_console,
    resume_command,
    with_port,
)


def _input_scaling(path: str | None) -> dict | None:
    """A scaler's numbers from .npz (arrays mean and std, or min and max) or .json (the same keys)."""
    if not path:
        return None
    import json

    try:
        if path.endswith(".json"):
            data = json.loads(Path(path).read_text())
        else:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as e:
        raise SystemExit(f"--input-scaling {path}: not a readable .npz or .json ({type(e).__name__})") from None
    if not isinstance(data, dict):
        raise SystemExit(f"--input-scaling {path}: expected keys mean and std, or min and max")
    return data


def cmd_deploy(a: argparse.Namespace) -> int:
    from memctl.deployment import deploy
    from memctl.onnx_graph import partition

    model = partition(a.model)  # a file that is not a model, or cannot map, is refused before any board is opened
    scaling = _input_scaling(a.input_scaling)
    g_range, tolerance, algorithm = (10e-6, 100e-6), a.tolerance, None
    if a.device:
        from memctl.devices import load_device
        from memctl.tuning import settings_for

        d = load_device(a.device)
        span = d.g_max - d.g_min
        g_range = (d.g_min + 0.05 * span, d.g_max - 0.05 * span)  # margins: device-to-device spread
        algorithm = settings_for(d).adaptive
        if tolerance is None:
            tolerance = 0.01 * (g_range[1] - g_range[0])
    if a.settings:
        from memctl.tune import TunedSettings

        algorithm = TunedSettings.load(a.settings).to_algorithm()
    sample = None if a.sample is None else _load_array(a.sample, ndim=None)
    boards = _boards(a)
    try:
        resuming = Path(a.manifest).exists()
        if resuming:
            console.print(f"{a.manifest} exists: checking that the board(s) hold its finished tiles", highlight=False)
        for b in boards:
            if a.settings:
                apply_settings(b, a.settings)
            elif a.device:
                apply_device(b, a.device)
        try:
            dep = deploy(
                model,
                boards,
                algorithm=algorithm,
                tolerance=tolerance if tolerance is not None else 0.5e-6,
                max_pulses=a.max_pulses,
                v_in=a.v_in,
                g_range=g_range,
                aware=a.aware,
                levels=a.levels,
                manifest=a.manifest,
                repair=a.repair,
                input_range=a.input_range,
                input_scaling=scaling,
                sample=sample,
            )
        except KeyboardInterrupt:
            err_console.print(
                f"interrupted: the finished tiles (and pre-scan blocks) are journaled in {a.manifest}; "
                f"to carry on: {resume_command(a, '--manifest', a.manifest)}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            return EXIT_INTERRUPTED
        if resuming:
            console.print(f"resumed the deployment journaled in {a.manifest}", highlight=False)
        if a.calibrate:
            # On the sample's own layer inputs when there is one (random inputs over the encoded range do not
            # look like a trained model's activations).
            dep.calibrate(boards, samples=16 if sample is None else 128, x=sample)
            dep.save(a.manifest)
    finally:
        for b in boards:
            b.close()
    for p in dep.placements:
        console.print(
            f"layer {p.layer} inputs {p.inputs} outputs {p.outputs}: board {p.board} columns "
            f"{min(p.cols)}..{max(p.cols)}, weight RMS error {p.weight_rms_error:.3g}, {p.pulses} pulses"
            + (f", {len(p.failed)} device(s) missed their target" if p.failed else ""),
            highlight=False,
        )
    cost = dep.cost()
    console.print(f"{cost['pulses']} pulses, board time {cost['board_time_s']:.2f} s, energy {cost['energy_J']:.3g} J")
    if dep.scans:
        found = sum(int(np.sum(s["defect"])) for s in dep.scans if s)
        console.print(f"pre-scan: {found} defective device(s) placed around")
    console.print(f"manifest: {a.manifest}")
    return 0


def cmd_infer(a: argparse.Namespace) -> int:
    x = _load_array(a.inputs, ndim=None)
    batch = np.atleast_2d(x)
    if a.manifest:
        from memctl.deployment import Deployment

        dep = Deployment.load(a.manifest)
        dep.model_inputs(batch, clip=a.clip)  # out-of-range inputs refused before a board is opened
        boards = _boards(a)
        try:
            dep.verify(boards, sample=4, manifest=a.manifest)  # fingerprints and 4 devices per tile read back
            out = dep.run(boards, batch, clip=a.clip)
        finally:
            for b in boards:
                b.close()
        # A model with several outputs (a classifier's labels and probabilities) gives them by name.
        named = dict(zip(dep.graph.outputs, out, strict=True)) if isinstance(out, list) else None
        if a.out and named:
            np.savez(a.out, **named)
            err_console.print(f"saved {', '.join(named)} to {a.out}")
        elif a.out:
            np.save(a.out, out)
        else:
            with np.printoptions(precision=4, linewidth=200):
                for name, value in (named or {"": out}).items():
                    print(f"{name}:\n{value}" if name else value)
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


def cmd_verify(a: argparse.Namespace) -> int:
    from memctl.deployment import Deployment

    dep = Deployment.load(a.manifest)
    boards = _boards(a)
    try:
        checks = dep.check(boards, sample=a.sample, seed=a.seed)
    finally:
        for b in boards:
            b.close()
    bad = [c for c in checks if not c.ok]
    if a.json:
        import dataclasses
        import json

        print(json.dumps({"ok": not bad, "tiles": [dataclasses.asdict(c) for c in checks]}, indent=1))
        return EXIT_NOT_ALL_OK if bad else 0
    t = Table(title=f"{a.manifest}: {len(checks)} tiles")
    for col in ("tile", "layer", "board", "state", "max |G - recorded| (S)", "why"):
        t.add_column(col)
    for c in checks:
        t.add_row(str(c.tile + 1), str(c.layer), str(c.board), c.state, f"{c.max_deviation:.3g}", c.detail)
    console.print(t)
    if bad:
        err_console.print(
            f"{len(bad)} tile(s) not as deployed; nothing was pulsed. Re-program them with: memctl deploy MODEL "
            f"--port {a.port} --manifest {a.manifest} --repair",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return EXIT_NOT_ALL_OK
    console.print(f"every tile holds its fingerprint; {a.sample} device(s) per tile read within twice the tolerance")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    dp = with_port(sub.add_parser("deploy", help="map an ONNX MLP onto the crossbar and program it"))
    dp.add_argument(
        "model",
        help="ONNX file as exporters write it: MatMul/Gemm/Conv layers go on the crossbar, the rest runs on "
        "the host (docs/deploy.md)",
    )
    dp.add_argument(
        "--manifest",
        required=True,
        help="deployment manifest (JSON), also the journal an interrupted deploy resumes from",
    )
    dp.add_argument(
        "--tolerance", type=float, help="S (default: 1 %% of the --device's conductance window, else 0.5e-6)"
    )
    dp.add_argument("--max-pulses", type=int, default=300, help="per device (default: %(default)s)")
    dp.add_argument(
        "--device",
        help="preset or device file: its limits go on the board(s), its conductance window and adaptive "
        "write-verify settings are used",
    )
    dp.add_argument(
        "--repair",
        action="store_true",
        help="resuming: re-program the tiles the boards no longer hold as recorded (see memctl verify)",
    )
    dp.add_argument(
        "--input-scaling",
        metavar="FILE",
        help=".npz or .json with mean and std (standardized inputs) or min and max (scaled to 0..1): infer "
        "then takes raw inputs and applies it",
    )
    dp.add_argument(
        "--input-range",
        type=float,
        help="largest |model input| to encode (default: 1, or 4 with mean/std scaling)",
    )
    dp.add_argument(
        "--sample",
        help="representative raw inputs (.npy, e.g. a few hundred training samples): the input range and each "
        "layer's read voltages follow the activations they produce (--input-range still wins for the range), "
        "and calibration fits 128 of each layer's inputs from them",
    )
    dp.add_argument("--v-in", type=float, help="read volts per unit input (default: scaled to the current range)")
    dp.add_argument("--no-calibrate", dest="calibrate", action="store_false", help="skip gain/offset calibration")
    dp.add_argument("--aware", action="store_true", help="pre-scan for stuck devices and place around them")
    dp.add_argument(
        "--settings",
        help="a settings file from `memctl tune`: its write-verify for every tile, its limits on the board(s)",
    )
    dp.add_argument("--levels", type=int, help="quantize conductances to this many levels")
    dp.add_argument("--more-ports", nargs="+", default=[], help="further boards to tile the model across")
    dp.set_defaults(fn=cmd_deploy)

    i = with_port(sub.add_parser("infer", help="run a deployed model (--manifest) or a raw VMM (volts)"))
    i.add_argument("inputs", help="inputs (.npy, samples x features; with --manifest raw inputs, else row volts)")
    i.add_argument("--manifest", help="a deployment manifest from memctl deploy")
    i.add_argument("--more-ports", nargs="+", default=[], help="the deployment's further boards, in order")
    i.add_argument(
        "--out",
        help="save the outputs (with --manifest; a model with several outputs: an .npz by output name) or "
        "column currents (A) to this .npy",
    )
    i.add_argument(
        "--clip",
        action="store_true",
        help="clip inputs outside the deployment's input range (default: refuse them, naming the feature)",
    )
    i.set_defaults(fn=cmd_infer)

    v = with_port(
        sub.add_parser("verify", help="check that the boards still hold a deployment (fingerprints, spot check)")
    )
    v.add_argument("--manifest", required=True, help="the deployment manifest from memctl deploy")
    v.add_argument("--more-ports", nargs="+", default=[], help="the deployment's further boards, in order")
    v.add_argument("--sample", type=int, default=8, help="devices read back per tile (default: %(default)s)")
    v.add_argument("--seed", type=int, default=0, help="which devices are sampled (default: %(default)s)")
    v.add_argument("--json", action="store_true", help="print the result per tile as JSON")
    v.set_defaults(fn=cmd_verify)
