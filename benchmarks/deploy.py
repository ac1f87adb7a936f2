"""Deploy benchmark, first task: paper 003's 4x4 letter classifier (16-10-4).

    python benchmarks/deploy.py

Four 4x4 patterns (A, T, V, X); 40 training patterns (each letter and its
nine one-pixel variants), 640 test patterns (every training pattern with one
more pixel flipped). A 16-10-4 tanh MLP is trained in numpy, exported to
ONNX, deployed on an emulated 32x32 board with +-0.2 V inputs (paper 003) and
run there: accuracy digital vs deployed (with and without calibration),
beside the paper's 100 % / 82.34 % (software) and 95 % / 79.06 % or 100 % /
81.4 % (hardware). Writes benchmarks/results/deploy.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import memctl
from memctl.deployment import deploy
from memctl_emulation import EmulatedBoard

OUT = Path(__file__).with_name("results") / "deploy.json"
LETTERS = {
    "A": ["0110", "1001", "1111", "1001"],
    "T": ["1111", "0110", "0110", "0110"],
    "V": ["1001", "1001", "1001", "0110"],
    "X": ["1001", "0110", "0110", "1001"],
}


def patterns(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = np.array([[int(c) for c in "".join(rows)] for rows in LETTERS.values()]) * 2 - 1
    train_x, train_y = [], []
    for k, p in enumerate(base):
        train_x.append(p)
        for pixel in rng.choice(16, 9, replace=False):
            q = p.copy()
            q[pixel] *= -1
            train_x.append(q)
        train_y += [k] * 10
    train_x, train_y = np.array(train_x, float), np.array(train_y)
    test_x = np.array([np.where(np.arange(16) == i, -x, x) for x in train_x for i in range(16)], float)
    return train_x, train_y, test_x, np.repeat(train_y, 16)


def train(x: np.ndarray, y: np.ndarray, hidden: int = 10, epochs: int = 3000, seed: int = 0):
    rng = np.random.default_rng(seed)
    w1, b1 = rng.normal(0, 0.3, (hidden, 16)), np.zeros(hidden)
    w2, b2 = rng.normal(0, 0.3, (4, hidden)), np.zeros(4)
    t = np.eye(4)[y]
    for _ in range(epochs):
        h = np.tanh(x @ w1.T + b1)
        o = h @ w2.T + b2
        g = 2 * (o - t) / len(x)
        gh = (g @ w2) * (1 - h**2)
        w2 -= 0.05 * g.T @ h
        b2 -= 0.05 * g.sum(0)
        w1 -= 0.05 * gh.T @ x
        b1 -= 0.05 * gh.sum(0)
    return [w1, w2], [b1, b2]


def to_onnx(w, b):
    inits = [numpy_helper.from_array(a.astype(np.float32), n)
             for n, a in (("w0", w[0]), ("b0", b[0]), ("w1", w[1]), ("b1", b[1]))]  # fmt: skip
    nodes = [helper.make_node("Gemm", ["x", "w0", "b0"], ["h"], transB=1), helper.make_node("Tanh", ["h"], ["a"]),
             helper.make_node("Gemm", ["a", "w1", "b1"], ["y"], transB=1)]  # fmt: skip
    g = helper.make_graph(nodes, "letters", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])], inits)  # fmt: skip
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--tolerance", type=float, default=0.5e-6)
    a = ap.parse_args()
    xtr, ytr, xte, yte = patterns()
    w, b = train(xtr, ytr)

    def digital(x):
        return np.tanh(x @ w[0].T + b[0]) @ w[1].T + b[1]

    acc = lambda out, y: float(np.mean(np.argmax(out, 1) == y))  # noqa: E731
    report = {
        "machine": platform.platform(),
        "digital": {"train": acc(digital(xtr), ytr), "test": acc(digital(xte), yte)},
    }
    start = time.monotonic()
    with EmulatedBoard(seed=3) as emu, memctl.Board(emu.port) as board:
        dep = deploy(to_onnx(w, b), board, tolerance=a.tolerance, max_pulses=300, v_in=0.2)  # +-0.2 V inputs
        report["program_s"] = time.monotonic() - start
        report["weight_rms_error"] = [p.weight_rms_error for p in dep.placements]
        report["programming"] = dep.cost()
        raw_tr, raw_te = dep.run(board, xtr, calibrated=False), dep.run(board, xte, calibrated=False)
        dep.calibrate(board)
        cal_tr, cal_te = dep.run(board, xtr), dep.run(board, xte)
    report["deployed"] = {"train": acc(raw_tr, ytr), "test": acc(raw_te, yte)}
    report["deployed_calibrated"] = {"train": acc(cal_tr, ytr), "test": acc(cal_te, yte)}
    print("### 4x4 letters, 16-10-4 (paper 003)\n")
    print("| model | train | test (640, one pixel flipped) |\n|---|---|---|")
    for k in ("digital", "deployed", "deployed_calibrated"):
        print(f"| {k} | {report[k]['train']:.1%} | {report[k]['test']:.2%} |")
    print("| paper 003 software | 100 % | 82.34 % |\n| paper 003 hardware (oblivious / aware) | 95 % / 100 % "
          "| 79.06 % / 81.4 % |")  # fmt: skip
    c = report["programming"]
    print(f"\nprogramming: {c['pulses']} pulses, {c['board_time_s']:.3g} s board time, {c['energy_J']:.3g} J, "
          f"{report['program_s']:.1f} s wall; weight RMS error per layer {report['weight_rms_error']}")  # fmt: skip
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
