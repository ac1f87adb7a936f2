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

from memctl.ffp import levels_study, print_levels

OUT = Path(__file__).with_name("results") / "ffp_levels.json"


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
