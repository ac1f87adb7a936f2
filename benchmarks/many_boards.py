"""Many boards at once: one deployment over four emulated boards, the boards programmed concurrently (deploy's
default: a thread per board) against one board after another, same model, same seeds.

    python benchmarks/many_boards.py [--boards 4] [--size 32] [--out results/many_boards.json]

The model (31 inputs -> 56 (Tanh) -> 2) keeps four 32x32 boards about equally busy: its first layer spans
all four, its second sits on the last. "One after another" runs the very same per-board tile lists through the same
code, a board's tiles only after the previous board's. Reported: wall time of deploy() (boards already up)
each way, their ratio (goal <= 0.35 for four boards), the time each board spent programming, and the CPU
seconds the emulated boards and this process used, against the cores this machine has: every emulated board
is two busy processes (MicroPython firmware and the analog front end), so with fewer cores than boards the
ratio is bounded by CPU, not by the boards. Inference (host-composed, per-layer VMMs at once) is checked
against the digital model. Writes benchmarks/results/many_boards.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

import memctl
import memctl.deployment as deployment
from memctl.deployment import Layer, deploy
from memctl_emulator import EmulatedBoard

OUT = Path(__file__).with_name("results") / "many_boards.json"
SEED = 5
TICK = os.sysconf("SC_CLK_TCK")


def model(size: int, boards: int) -> list[Layer]:
    """Layer 0 fills (boards - 1/2) boards' columns; layer 1's two row blocks go on the last board, beside
    layer 0's half (its narrow tiles program more slowly per device: this keeps the boards' times near)."""
    rng = np.random.default_rng(SEED)
    n_in, hidden = size - 1, (boards * size - size // 2) // 2
    return [
        Layer(rng.normal(size=(hidden, n_in)) / np.sqrt(n_in), rng.normal(size=hidden) * 0.3, "Tanh"),
        Layer(rng.normal(size=(2, hidden)) / np.sqrt(hidden), rng.normal(size=2) * 0.3, None),
    ]


def children_cpu() -> float:
    """CPU seconds used so far by this process's child processes (the emulated boards), alive ones included."""
    me, total = os.getpid(), 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:  # ppid
            total += (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
    return total


def one_after_another(per_board, program, devices, boards, progress) -> None:
    """deploy's concurrent step, one board at a time: the same tiles through the same code."""
    for tiles in per_board.values():
        for n in tiles:
            program(n, progress)


def run(layers: list[Layer], n_boards: int, size: int, concurrent: bool) -> dict:
    with ExitStack() as stack:
        emus = [stack.enter_context(EmulatedBoard(rows=size, cols=size, seed=SEED + i)) for i in range(n_boards)]
        boards = [stack.enter_context(memctl.Board(e.port, progress=False)) for e in emus]
        spans: dict[int, list[float]] = {}
        for i, b in enumerate(boards):
            real = b.program

            def program(*args, _real=real, _i=i, **kw):
                start = time.monotonic()
                res = _real(*args, **kw)
                spans.setdefault(_i, []).append(time.monotonic() - start)
                return res

            b.program = program
        original = deployment._program_concurrently
        if not concurrent:
            deployment._program_concurrently = one_after_another
        try:
            cpu0, own0, start = children_cpu(), time.process_time(), time.monotonic()
            dep = deploy(layers, boards, tolerance=0.5e-6, max_pulses=300)
            wall = time.monotonic() - start
            cpu_boards, cpu_host = children_cpu() - cpu0, time.process_time() - own0
        finally:
            deployment._program_concurrently = original
        x = np.random.default_rng(1).uniform(-1, 1, (16, layers[0].weight.shape[1]))
        want = np.tanh(x @ layers[0].weight.T + layers[0].bias) @ layers[1].weight.T + layers[1].bias
        start = time.monotonic()
        got = dep.run(boards, x)
        infer = time.monotonic() - start
    return {
        "wall_s": wall,
        "programming_s_per_board": [float(sum(spans.get(i, []))) for i in range(n_boards)],
        "cpu_s_boards": cpu_boards,
        "cpu_s_host": cpu_host,
        "tiles_per_board": [sum(p.board == i for p in dep.placements) for i in range(n_boards)],
        "devices_per_board": [
            sum(len(p.rows) * len(p.cols) for p in dep.placements if p.board == i) for i in range(n_boards)
        ],
        "pulses": dep.cost()["pulses"],
        "layer_weight_rms_error": dep.layer_errors(),
        "inference_s_16_samples": infer,
        "inference_max_error_rel": float(np.abs(got - want).max() / np.abs(want).max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boards", type=int, default=4)
    ap.add_argument("--size", type=int, default=32, help="rows and columns of each emulated board")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    layers = model(a.size, a.boards)
    cores = len(os.sched_getaffinity(0))
    report: dict = {
        "machine": platform.platform(),
        "cores": cores,
        "load_average_at_start": list(os.getloadavg()),
        "boards": a.boards,
        "board_size": a.size,
        "model": [list(lay.weight.shape[::-1]) for lay in layers],
        "seed": SEED,
    }
    for label, concurrent in (("one_after_another", False), ("concurrent", True)):
        report[label] = run(layers, a.boards, a.size, concurrent)
    seq, con = report["one_after_another"], report["concurrent"]
    ratio = con["wall_s"] / seq["wall_s"]
    busiest = max(seq["programming_s_per_board"]) / sum(seq["programming_s_per_board"])
    cpu_floor = (con["cpu_s_boards"] + con["cpu_s_host"]) / cores / seq["wall_s"]
    report.update(
        ratio=ratio,
        goal=0.35,
        ratio_if_cores_were_free=busiest,
        ratio_cpu_bound=cpu_floor,
        load_average_at_end=list(os.getloadavg()),
    )
    print(f"\n### {a.boards} boards ({a.size}x{a.size}), model {report['model']}, {cores} cores\n")
    print("| | wall s | programming s per board | CPU s boards | CPU s host | inference max error |")
    print("|---|---|---|---|---|---|")
    for label in ("one_after_another", "concurrent"):
        r = report[label]
        per = ", ".join(f"{t:.1f}" for t in r["programming_s_per_board"])
        print(
            f"| {label.replace('_', ' ')} | {r['wall_s']:.1f} | {per} | {r['cpu_s_boards']:.1f} | "
            f"{r['cpu_s_host']:.1f} | {r['inference_max_error_rel']:.3f} |"
        )
    print(
        f"\nconcurrent / one after another: {ratio:.2f} (goal <= 0.35). With a free core per board process the "
        f"busiest board bounds it at {busiest:.2f}; the CPU the concurrent run used, spread over {cores} cores, "
        f"bounds it at {cpu_floor:.2f}. Load average at start {report['load_average_at_start'][0]:.1f}."
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
