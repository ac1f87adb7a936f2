"""`memctl` commands for deployed networks: map an ONNX MLP onto crossbars, run it."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from memctl.cli.common import _board, _boards, _load_array, console, err_console, with_port


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


def add_parsers(sub: argparse._SubParsersAction) -> None:
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

    i = with_port(sub.add_parser("infer", help="run a deployed model (--manifest) or a raw VMM (volts)"))
    i.add_argument("inputs")
    i.add_argument("--manifest", help="a deployment manifest from memctl deploy")
    i.add_argument("--more-ports", nargs="+", default=[], help="the deployment's further boards, in order")
    i.add_argument("--out", help="save column currents (A) to this .npy")
    i.set_defaults(fn=cmd_infer)
