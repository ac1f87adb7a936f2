"""Crossbar physics throughput: pulses, reads and VMMs per second on 32x32,
64x64 and 128x128 arrays, with ideal wires and with line resistance.

    python benchmarks/physics.py [--quick]

Prints a markdown table and writes benchmarks/results/physics.json. Ratios
(128x128 against 32x32) come from the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np

from memctl.devices import PRESETS
from memctl_emulator.array_circuit import LineDrive
from memctl_emulator.crossbar import Crossbar

OUT = Path(__file__).with_name("results") / "physics.json"


def rate(fn, min_time: float) -> float:
    """Calls per second of fn, timed over at least min_time seconds."""
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_time and n >= 3:
            return n / dt


def measure(n: int, r_line: float, min_time: float) -> dict:
    formed = dataclasses.replace(PRESETS["pt_al2o3_tio2_passive"], v_form=0.0)  # every pulse switches
    xb = Crossbar(n, n, formed, seed=0, line_resistance=r_line)
    vr, vc = np.full(n, 0.65), np.full(n, 0.65)
    vr[n // 2], vc[n // 3] = 1.3, 0.0
    pulse = LineDrive.driven(vr, vc)  # V/2 biasing
    read_v = np.zeros(n)
    read_v[1] = 0.2
    read = LineDrive.driven(read_v, np.zeros(n))
    vmm = LineDrive.driven(np.random.default_rng(0).uniform(-0.2, 0.2, n), np.zeros(n))
    return {
        "size": f"{n}x{n}",
        "line_resistance": r_line,
        "pulses_per_s": rate(lambda: xb.apply(pulse, 100e-6), min_time),
        "reads_per_s": rate(lambda: xb.column_currents(read), min_time),
        "vmms_per_s": rate(lambda: xb.column_currents(vmm), min_time),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="shorter timing windows")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    t = 0.2 if a.quick else 1.0
    rows = [measure(n, r, t) for r in (0.0, 1.0) for n in (32, 64, 128)]
    print("| array | line R (ohm) | pulses/s | reads/s | VMMs/s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['size']} | {r['line_resistance']:g} | {r['pulses_per_s']:,.0f} | {r['reads_per_s']:,.0f} "
            f"| {r['vmms_per_s']:,.0f} |"
        )
    ideal = {r["size"]: r for r in rows if r["line_resistance"] == 0}
    ratio = ideal["128x128"]["vmms_per_s"] / ideal["32x32"]["vmms_per_s"]
    print(f"\nVMM rate 128x128 / 32x32 (ideal wires): {ratio:.3f} (devices x16)")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(
        json.dumps({"machine": platform.platform(), "rows": rows, "vmm_ratio_128_to_32": ratio}, indent=2) + "\n"
    )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
