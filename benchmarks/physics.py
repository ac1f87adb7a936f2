"""Crossbar physics throughput: pulses, reads and VMMs per second on 32x32,
64x64 and 128x128 arrays, with ideal wires and with line resistance; then
pulses per second with 1 ohm per segment at 32x32 ... 256x256, factoring the
wire network afresh whenever the conductances change (as before issue 17)
against updating its factorization (array_circuit.WireCache), on the same
pulse sequences.

    python benchmarks/physics.py [--quick]

Prints markdown tables and writes benchmarks/results/physics.json. Ratios
(128x128 against 32x32, updated against re-factored) come from the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import time
from pathlib import Path

import numpy as np

from memctl.devices import PRESETS
from memctl_emulator.array_circuit import LineDrive, WireCache
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
    xb.column_currents(read)  # warm: the first wire solve factors the network
    return {
        "size": f"{n}x{n}",
        "line_resistance": r_line,
        "pulses_per_s": rate(lambda: xb.apply(pulse, 100e-6), min_time),
        "reads_per_s": rate(lambda: xb.column_currents(read), min_time),
        "vmms_per_s": rate(lambda: xb.column_currents(vmm), min_time),
    }


FORMED = dataclasses.replace(PRESETS["pt_al2o3_tio2_passive"], v_form=0.0)
WIRE_SIZES = (32, 64, 128, 256)
WIRE_GOALS = {"128x128": 1000.0, "256x256": 200.0}  # pulses/s with 1 ohm per segment (issue 17)


def pulse_sequence(n: int, kind: str, pulses: int, seed: int = 0) -> list[tuple[int, int, float, bool]]:
    """(row, col, volts, verify read after it), V/2 pulses alternating set and
    reset so every pulse moves its device, on devices in the quadrant nearest
    the drivers (rows >= n/2, columns < n/2), where the IR drop at 256x256
    still leaves them above threshold. "one device": one device, +1.3 V /
    -1.6 V. "program-verify": random devices, 10 pulses each with a rising
    amplitude and a grounded read of the row after every pulse."""
    if kind == "one device":
        r, c = n - 1 - n // 8, n // 8
        return [(r, c, 1.3 if k % 2 == 0 else -1.6, False) for k in range(pulses)]
    rng = np.random.default_rng(seed)
    cells = rng.choice((n // 2) ** 2, -(-pulses // 10), replace=False)
    seq = []
    for f in cells:
        r, c = n // 2 + int(f) // (n // 2), int(f) % (n // 2)
        seq += [(r, c, (1.3 if k % 2 == 0 else -1.6) * (1 + 0.02 * k), True) for k in range(10)]
    return seq[:pulses]


def run_sequence(
    xb: Crossbar, seq: list, snapshot_at: int, warm: bool, gated: bool = False
) -> tuple[float, np.ndarray, list[int]]:
    """Seconds for the whole sequence, the conductances after snapshot_at
    pulses and how many devices each pulse changed. gated: a 1T1R array, one
    word line on for each pulse (the row's other columns at the pulse voltage)
    and read."""
    n = xb.rows
    read_v = np.zeros(n)
    if warm:  # the first factorization before the clock starts (draws no noise: same pulses after)
        xb.device_voltages(LineDrive.driven(read_v, np.zeros(n)))
    snap = xb.conductance
    changed = []
    t0 = time.perf_counter()
    for k, (r, c, v, verify) in enumerate(seq):
        vr, vc = np.full(n, v / 2), np.full(n, v / 2)
        vr[r], vc[c] = v, 0.0
        gate = np.arange(n) == r if gated else None
        if gated:
            vr[:], vc[:] = 0.0, v
            vr[r], vc[c] = v, 0.0
        pulse = LineDrive.driven(vr, vc)
        pulse.gate = gate
        changed.append(xb.apply(pulse, 100e-6))
        if verify:
            read_v[r] = 0.2
            read = LineDrive.driven(read_v, np.zeros(n))
            read.gate = gate
            xb.column_currents(read)
            read_v[r] = 0.0
        if k + 1 == snapshot_at:
            snap = xb.conductance
    return time.perf_counter() - t0, snap, changed


def measure_wires(n: int, kind: str, quick: bool) -> dict:
    """The same pulses on two identical arrays: updated (WireCache, timed after
    its first factorization) and factored afresh on every change (fewer pulses
    there: the first ones of the same sequence)."""
    n_fast = 200 if quick else 2000
    n_full = {32: 200, 64: 100, 128: 30, 256: 5}[n] // (5 if quick else 1)
    gated = kind.startswith("1T1R")
    seq = pulse_sequence(n, "program-verify" if gated else kind, n_fast)
    fast = Crossbar(n, n, FORMED, seed=0, line_resistance=1.0)
    full = Crossbar(n, n, FORMED, seed=0, line_resistance=1.0)
    full.wires = WireCache(max_changes=0)
    t_fast, g_fast, changed = run_sequence(fast, seq, n_full, warm=True, gated=gated)
    if gated:  # one word line on: the row solve, no factorization either way; no re-factor baseline
        t_full, g_full = math.nan, g_fast
    else:
        t_full, g_full, _ = run_sequence(full, seq[:n_full], n_full, warm=False)  # every pulse factors
    return {
        "size": f"{n}x{n}",
        "sequence": kind,
        "pulses_fast": n_fast,
        "pulses_full": n_full,
        "full_pulses_per_s": n_full / t_full,
        "fast_pulses_per_s": n_fast / t_fast,
        "speedup": (n_fast / t_fast) / (n_full / t_full),
        "pulses_changing_g": float(np.mean(np.array(changed) > 0)),
        "devices_per_pulse": float(np.mean(changed)),
        # Same pulses, same noise draws: the states agree to rounding.
        "max_dg_rel": float(np.abs(g_fast - g_full).max() / np.abs(g_full).max()),
        "factorizations": fast.wires.factorizations,
        "device_updates": fast.wires.device_updates,
    }


def wire_table(rows: list[dict]) -> str:
    out = [
        "| array | sequence | re-factor: pulses/s (pulses) | update: pulses/s (pulses) | × | pulses moving G "
        "| devices moved / pulse | factorizations | max ΔG/G |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['size']} | {r['sequence']} | {r['full_pulses_per_s']:,.1f} ({r['pulses_full']}) "
            f"| {r['fast_pulses_per_s']:,.0f} ({r['pulses_fast']}) | {r['speedup']:,.0f} "
            f"| {100 * r['pulses_changing_g']:.0f} % | {r['devices_per_pulse']:.2f} | {r['factorizations']} "
            f"| {r['max_dg_rel']:.1e} |"
        )
    return "\n".join(out)


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
    kinds = ("one device", "program-verify", "1T1R program-verify")
    wires = [measure_wires(n, kind, a.quick) for kind in kinds for n in WIRE_SIZES]
    print(
        "\npulses/s with 1 ohm per segment (program-verify: with a verify read after every pulse; 1T1R: one word "
        "line on, solved as the row alone)\n"
    )
    print(wire_table(wires))
    goals = {
        f"{r['size']} {r['sequence']}": r["fast_pulses_per_s"] >= WIRE_GOALS[r["size"]]
        for r in wires
        if r["size"] in WIRE_GOALS
    }
    print("\ngoals (>= 1000 pulses/s at 128x128, >= 200 at 256x256):", goals)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "rows": rows,
                "vmm_ratio_128_to_32": ratio,
                "wire_pulses": wires,
                "wire_goals_met": goals,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
