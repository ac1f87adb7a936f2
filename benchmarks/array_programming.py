"""Programming at array scale: one device at a time against row-parallel write-verify, in one run.

    python benchmarks/array_programming.py [--quick] [--out results/array_programming.json]

An 8-bit map (256 levels over the default device's 10-100 uS, tolerance half a level) on a 1T1R
board, adaptive write-verify, the same seed, targets and settings for both: serial programs one
device at a time; rows pulses every unfinished device of a word line at once (one pulse per distinct
width) and reads the row in one conversion. Reports wall time, board (simulated) time, device pulses,
pulse events on the array and devices within tolerance. Project goals (issue 17): 64x64 in <= 10 s
wall with rows, board time >= 16x lower than serial. --quick: 16x16.

Then the same on a passive board (32x32; --quick 8x8) with the default device's disturb limit
(memctl.tuning.disturb_limit): serial against column groups under V/2 and V/3 biasing. Passive rows
also report devices within tolerance by the array's truth at the end: a pulse too large to share goes
alone and half-selects its neighbours, in every mode, and can disturb devices that had finished.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

import memctl
from memctl.devices import DeviceModel
from memctl.tuning import disturb_limit
from memctl_emulator import EmulatedBoard

OUT = Path(__file__).with_name("results") / "array_programming.json"
G_LO, G_HI = 10e-6, 100e-6


def run(n: int, parallel: bool, cell: str = "1T1R", bias: str = "V/2") -> dict:
    rng = np.random.default_rng(1)
    targets = G_LO + (G_HI - G_LO) * rng.integers(0, 256, (n, n)) / 255
    tol = (G_HI - G_LO) / 255 / 2
    with (
        EmulatedBoard(rows=n, cols=n, seed=3, cell=cell) as emu,
        memctl.Board(emu.port, progress=False) as b,
    ):
        if cell == "0T1R":
            lim = b.limits()
            b.set_limits(lim.v_pulse, lim.width, lim.v_read, disturb_limit(DeviceModel()))
            b.configure(bias=bias)
        afe = emu.afe()
        events = afe.stats().pulses
        start = time.monotonic()
        r = b.program(targets, tolerance=tol, max_pulses=300, algorithm=memctl.Adaptive(), parallel=parallel)
        wall = time.monotonic() - start
        events = afe.stats().pulses - events
        _, truth = afe.truth()
        afe.close()
    mode = ("rows" if cell == "1T1R" else f"groups {bias}") if parallel else "serial"
    return {
        "cell": cell,
        "mode": mode,
        "size": n,
        "wall_s": wall,
        "board_time_s": r.board_time,
        "device_pulses_mean": float(r.pulses.mean()),
        "pulse_events": int(events),
        "within_tolerance": int(r.ok.sum()),
        "truth_within_tolerance": int((np.abs(truth - targets) <= tol * 1.001).sum()),
        "devices": int(r.ok.size),
    }


def table(title: str, runs: list[dict]) -> None:
    print(f"| {title} | wall s | board s | pulses / device | pulse events | within tolerance | truth within |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r['mode']} | {r['wall_s']:.2f} | {r['board_time_s']:.3f} | {r['device_pulses_mean']:.1f} | "
            f"{r['pulse_events']} | {r['within_tolerance']}/{r['devices']} | {r['truth_within_tolerance']} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    n = 16 if a.quick else 64
    serial, rows = run(n, False), run(n, True)
    table(f"{n}x{n} 1T1R, 8-bit, adaptive", [serial, rows])
    m = 8 if a.quick else 32
    passive = [run(m, False, "0T1R"), run(m, True, "0T1R", "V/2"), run(m, True, "0T1R", "V/3")]
    print()
    table(f"{m}x{m} passive, disturb limit {disturb_limit(DeviceModel()):.3f} V", passive)
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
    ratios["passive_board_time_serial_over_groups_v2"] = passive[0]["board_time_s"] / passive[1]["board_time_s"]
    ratios["passive_board_time_serial_over_groups_v3"] = passive[0]["board_time_s"] / passive[2]["board_time_s"]
    report = {"machine": platform.platform(), "quick": a.quick, "runs": [serial, rows, *passive], "ratios": ratios}
    if not a.quick:
        report["goals_met"] = goals
    a.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
