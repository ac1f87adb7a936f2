"""Paper 001's levels study on tio2_4terminal, through the firmware.

    python benchmarks/ffp_levels.py [--reps 20]

Calibrates the board's V_w(G) table with FFP sweeps, records one FFP trace
per direction, segments it into n = 32, 128 and 512 levels (pulse groups),
then replays each plan open loop `reps` times from the initialized state. It
fits the nonlinearity nu of eqs. (2)-(3) to the mean level sequence and counts
levels skipped at CPD 80 %, printing paper 001's values beside ours. Writes
benchmarks/results/ffp_levels.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from memctl import Board
from memctl.algorithms import FFP
from memctl.ffp import PAPER_NU_D, PAPER_NU_P, PAPER_SKIPPED, calibrate, fit_nu, run_planned, segment, skipped_levels
from memctl_emulator import EmulatedBoard

OUT = Path(__file__).with_name("results") / "ffp_levels.json"


def levels_study(reps: int = 20, levels: tuple[int, ...] | list[int] = (32, 128, 512), seed: int = 3) -> dict:
    """Paper 001's levels study on an emulated tio2_4terminal device, through
    the firmware: calibrate, one FFP trace per direction, segment into each n,
    replay every plan `reps` times from the initialized state, fit nu and
    count skipped levels at CPD 80 %."""
    width, init_v = 0.8, 6.0  # paper 001: 0.8 s FFP pulses; +-6 V initialization

    def init(b: Board, sign: float) -> None:
        for _ in range(10):
            b.pulse(0, 0, sign * init_v, width)

    report: dict = {"reps": reps, "levels": {}}
    with EmulatedBoard(rows=1, cols=1, seed=seed, device="tio2_4terminal") as emu, Board(emu.port) as b:
        b.set_limits(7.0, 2.0, 0.3)
        b.configure(v_read=0.1)
        ffp = FFP(window_lo=0.1 / 800.0**2, window_hi=0.3 / 800.0**2, width=width)  # 0.1 < |dR| < 0.3 ohm
        init(b, -1)
        calibrate(b, 0, 0, ffp, 1 / 885, 1 / 735)
        plans = {}
        for name, sign in (("potentiation", -1), ("depression", +1)):
            init(b, sign)  # start at HRS for potentiation, LRS for depression
            g, v = b.ffp_trace(0, 0, -sign, ffp)
            r = np.append(1 / g, 1 / b.read(0, 0))
            steps = np.abs(np.diff(r))
            plans[name] = (sign, r, v)
            report[name] = {
                "events": int(len(v)),
                "paper_events": 494 if name == "potentiation" else 579,
                "share_in_window": float(np.mean((steps > 0.1) & (steps < 0.3))),
                "v_w_range": [float(np.abs(v).min()), float(np.abs(v).max())],
            }
        for n in levels:
            row = {}
            for name, (sign, r, v) in plans.items():
                seg = segment(r, v, n)
                reached = []
                for _ in range(reps):
                    init(b, sign)
                    reached.append(run_planned(b, 0, 0, seg, width))
                reached = np.array(reached)
                y = reached.mean(axis=0)
                y = (y - y.min()) / (y.max() - y.min())
                if name == "depression":
                    y = 1 - y  # eq. 3 runs from r_min up
                row[name] = {
                    "nu": fit_nu(y, potentiation=name == "potentiation"),
                    "skipped": skipped_levels(reached, seg.targets),
                    "unoccupied": int(sum(len(g_) == 0 for g_ in seg.groups)),
                }
            report["levels"][n] = row
    return report


def print_levels(report: dict) -> None:
    """The levels study as markdown, paper 001's values beside ours."""
    print("### FFP on tio2_4terminal (paper 001)\n")
    print("| sweep | events (ours / paper) | steps in 0.1-0.3 ohm | V_w range (V) |")
    print("|---|---|---|---|")
    for name in ("potentiation", "depression"):
        s = report[name]
        print(
            f"| {name} | {s['events']} / {s['paper_events']} | {s['share_in_window']:.0%} "
            f"| {s['v_w_range'][0]:.2f}-{s['v_w_range'][1]:.2f} |"
        )
    print(f"\n### levels ({report['reps']} replays each; paper: 66 samples)\n")
    print(
        "| n | nu_p ours | nu_p paper | nu_d ours | nu_d paper | skipped pot ours / paper | skipped dep ours / paper |"
    )
    print("|---|---|---|---|---|---|---|")
    for n, row in report["levels"].items():
        sp, sd = PAPER_SKIPPED.get(n, ("-", "-"))
        pot, dep = row["potentiation"], row["depression"]
        print(
            f"| {n} | {pot['nu']:.3g} | {PAPER_NU_P.get(n, '-')} | {dep['nu']:.3g} | {PAPER_NU_D.get(n, '-')} "
            f"| {pot['skipped']} / {sp} | {dep['skipped']} / {sd} |"
        )
    nu512 = report["levels"].get(512, {}).get("potentiation", {}).get("nu")
    if nu512 is not None:
        verdict = "met" if nu512 <= 2e-5 else "not met"
        print(f"\nproject target: 512 levels at nu <= 2e-5 -> nu_p(512) = {nu512:.3g}: {verdict}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=20, help="replays per plan (paper 001 used 66 samples)")
    ap.add_argument("--levels", type=int, nargs="+", default=[32, 128, 512])
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    start = time.monotonic()
    report = {"machine": platform.platform(), **levels_study(reps=a.reps, levels=a.levels)}
    report["wall_s"] = time.monotonic() - start
    print_levels(report)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"wrote {a.out} ({report['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
