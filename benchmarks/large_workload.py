"""A larger workload: a 255-120-10 MLP deployed over four 128x128 1T1R boards with wire resistance on.

    python benchmarks/large_workload.py [--quick] [--r-line 1.0] [--out results/large_workload.json]

The task: scikit-learn's 8x8 digits upscaled to 16x16 (each pixel a 2x2 block, plus a little seeded
noise so the inputs are not exact copies; the always blank first pixel dropped: 255 inputs), scaled
to [-1, 1], a 255-120 (ReLU)-10 MLP trained with memctl.robust_training (ERM). 256-128-10 does not
fit four 128x128 boards with differential pairs (its first layer alone, bias row included, needs
257 x 256 = 65 792 devices, the boards hold 65 536); 255-120-10 is the largest of that shape that
does (256 rows x 480 columns, then 121 x 20). The boards are emulated 1T1R arrays (default device) with
`--r-line` ohms per wire segment; deploy programs the boards' tiles concurrently with row-parallel
adaptive write-verify, then the host composes inference from per-tile VMMs across the boards.
Reports wall time, board time, pulses, devices that missed their target, and the output error
against the digital model (RMS of the outputs, accuracy). --quick: 63-8-10 on four 32x32 boards.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

import memctl
from memctl.deployment import deploy
from memctl.onnx_mlp import forward
from memctl.robust_training import TrainConfig, train_mlp
from memctl_emulator import EmulatedBoard

OUT = Path(__file__).with_name("results") / "large_workload.json"


def digits(scale: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images / 16.0
    if scale > 1:
        x = np.kron(x, np.ones((1, scale, scale)))
    rng = np.random.default_rng(seed)
    x = np.clip(x + 0.03 * rng.standard_normal(x.shape), 0, 1).reshape(len(x), -1)[:, 1:] * 2 - 1
    order = rng.permutation(len(x))
    x, y = x[order], d.target[order]
    n = int(0.75 * len(x))
    return x[:n], y[:n], x[n:], y[n:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--r-line", type=float, default=1.0, help="ohms per wire segment")
    ap.add_argument("--test", type=int, default=200, help="test samples run on the boards")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    size, scale, hidden = (32, 1, 8) if a.quick else (128, 2, 120)
    xtr, ytr, xte, yte = digits(scale)
    layers = train_mlp(xtr, ytr, TrainConfig(hidden=(hidden,), activation="Relu", epochs=150, seed=0))
    xte, yte = xte[: a.test], yte[: a.test]
    want = forward(layers, xte)
    with ExitStack() as stack:
        emus = [
            stack.enter_context(EmulatedBoard(rows=size, cols=size, seed=11 + k, cell="1T1R", line_resistance=a.r_line))
            for k in range(4)
        ]
        boards = [stack.enter_context(memctl.Board(e.port, progress=False)) for e in emus]
        start = time.monotonic()
        dep = deploy(layers, boards, algorithm=memctl.Adaptive(), tolerance=0.5e-6, max_pulses=300)
        wall_deploy = time.monotonic() - start
        start = time.monotonic()
        got = dep.run(boards, xte, calibrated=False)
        dep.calibrate(boards, samples=32)
        got_cal = dep.run(boards, xte)
        wall_infer = time.monotonic() - start
    cost = dep.cost()
    devices = sum(np.size(p.targets) for p in dep.placements)
    missed = sum(len(p.failed) for p in dep.placements)
    acc = lambda out: float(np.mean(np.argmax(out, 1) == yte))  # noqa: E731
    rms = lambda out: float(np.sqrt(np.mean((out - want) ** 2)) / np.sqrt(np.mean(want**2)))  # noqa: E731
    report = {
        "machine": platform.platform(),
        "quick": a.quick,
        "model": [layers[0].weight.shape[1], hidden, 10],
        "boards": f"4 x {size}x{size} 1T1R, {a.r_line} ohm per segment",
        "tiles": len(dep.placements),
        "devices": int(devices),
        "missed_target": int(missed),
        "wall_deploy_s": wall_deploy,
        "wall_inference_s": wall_infer,
        **cost,
        "accuracy": {"digital": acc(want), "deployed": acc(got), "deployed_calibrated": acc(got_cal)},
        "relative_rms_output_error": {"raw": rms(got), "calibrated": rms(got_cal)},
        "test_samples": len(yte),
    }
    print(f"| {report['model']} on {report['boards']} | value |\n|---|---|")
    for k in ("tiles", "devices", "missed_target", "wall_deploy_s", "board_time_s", "pulses", "wall_inference_s"):
        v = report[k]
        print(f"| {k} | {v:.3g} |" if isinstance(v, float) else f"| {k} | {v} |")
    for k, v in report["accuracy"].items():
        print(f"| accuracy {k} | {v:.1%} |")
    for k, v in report["relative_rms_output_error"].items():
        print(f"| relative RMS output error ({k}) | {v:.3g} |")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
