"""Programming at array scale: one device at a time against row-parallel write-verify, in one run.

    python benchmarks/array_programming.py [--quick] [--out results/array_programming.json]

An 8-bit map (256 levels over the default device's 10-100 uS, tolerance half a level) on a 1T1R
board, adaptive write-verify, the same seed, targets and settings for both: serial programs one
device at a time; rows pulses every unfinished device of a word line at once (one pulse per distinct
width) and reads the row in one conversion. Reports wall time, board (simulated) time, device pulses,
pulse events on the array and devices within tolerance. Project goals (issue 17): 64x64 in <= 10 s
wall with rows, board time >= 16x lower than serial. --quick: 16x16.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

import memctl
from memctl_emulator import EmulatedBoard

OUT = Path(__file__).with_name("results") / "array_programming.json"
G_LO, G_HI = 10e-6, 100e-6


def run(n: int, parallel: bool) -> dict:
    rng = np.random.default_rng(1)
    targets = G_LO + (G_HI - G_LO) * rng.integers(0, 256, (n, n)) / 255
    tol = (G_HI - G_LO) / 255 / 2
    with (
        EmulatedBoard(rows=n, cols=n, seed=3, cell="1T1R") as emu,
        memctl.Board(emu.port, progress=False) as b,
    ):
        afe = emu.afe()
        events = afe.stats().pulses
        start = time.monotonic()
        r = b.program(targets, tolerance=tol, max_pulses=300, algorithm=memctl.Adaptive(), parallel=parallel)
        wall = time.monotonic() - start
        events = afe.stats().pulses - events
        afe.close()
    return {
        "mode": "rows" if parallel else "serial",
        "size": n,
        "wall_s": wall,
        "board_time_s": r.board_time,
        "device_pulses_mean": float(r.pulses.mean()),
        "pulse_events": int(events),
        "within_tolerance": int(r.ok.sum()),
        "devices": int(r.ok.size),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    n = 16 if a.quick else 64
    serial, rows = run(n, False), run(n, True)
    print(f"| {n}x{n}, 8-bit, adaptive | wall s | board s | pulses / device | pulse events | within tolerance |")
    print("|---|---|---|---|---|---|")
    for r in (serial, rows):
        print(
            f"| {r['mode']} | {r['wall_s']:.2f} | {r['board_time_s']:.3f} | {r['device_pulses_mean']:.1f} | "
            f"{r['pulse_events']} | {r['within_tolerance']}/{r['devices']} |"
        )
    ratios = {
        "board_time_serial_over_rows": serial["board_time_s"] / rows["board_time_s"],
        "wall_serial_over_rows": serial["wall_s"] / rows["wall_s"],
    }
    goals = {
        "rows_wall_le_10s": rows["wall_s"] <= 10.0,
        "board_time_ratio_ge_16": ratios["board_time_serial_over_rows"] >= 16,
    }
    print(
        f"board time serial / rows {ratios['board_time_serial_over_rows']:.1f}x (goal >= 16), "
        f"wall {ratios['wall_serial_over_rows']:.1f}x; rows wall {rows['wall_s']:.2f} s (goal <= 10 s at 64x64)"
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"machine": platform.platform(), "quick": a.quick, "runs": [serial, rows], "ratios": ratios}
    if not a.quick:
        report["goals_met"] = goals
    a.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
