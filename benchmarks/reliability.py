"""Reliability benchmark: one workload through every fault, in one run.

    python benchmarks/reliability.py [--quick]

Workload per scenario, on a fresh emulated 32x32 board: program a 6x6 map
(write-verify, 1 uS), read the whole array back, run 10 VMMs. Each SDK call
is an operation; it completes or raises. Undetected errors are results that
disagree with the front end's ground truth: a device reported within
tolerance that is not, a reported conductance or read-back value that is not
the array's, a VMM current off by more than 0.1 %. Slowdown is wall time
over the fault-free run of the same workload in the same run (median of three).
Retries count every frame sent again (after a damaged answer, a silent
timeout or an RTO) and every REPLAY request (a piece of a damaged reply asked
for again); the JSON also breaks them down, with the byte error rate the link
measured and the frame budget it ended with.
Writes benchmarks/results/reliability.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import threading
import time
from pathlib import Path

import numpy as np
from report import reliability as reliability_table

import memctl
from memctl_emulator import EmulatedBoard
from memctl_emulator.faults import LinkFaults

OUT = Path(__file__).with_name("results") / "reliability.json"
TOL = 1e-6


def workload(emu: EmulatedBoard, b: memctl.Board, during=None) -> dict:
    """Run the operations; `during(step)` may inject a fault at a step."""
    rng = np.random.default_rng(0)
    targets = rng.uniform(20e-6, 90e-6, (6, 6))
    xs = rng.uniform(0, 0.1, (10, b.shape[0]))
    results, attempted, completed, errors = {}, 0, 0, []
    ops = [
        ("program", lambda: b.program(targets, tolerance=TOL, max_pulses=200, origin=(3, 3))),
        ("read_array", b.read_array),
    ] + [(f"vmm{k}", lambda x=x: b.vmm(x)) for k, x in enumerate(xs)]
    for name, op in ops:
        attempted += 1
        if during:
            during(name)
        try:
            results[name] = op()
            completed += 1
        except memctl.MemctlError as e:
            errors.append(f"{name}: {e}")
    emu.set_link_filter(None)
    afe = emu.afe()
    _, truth = afe.truth()
    afe.close()
    undetected = 0
    if "program" in results:
        r = results["program"]
        real = truth[3:9, 3:9]
        undetected += int(np.sum(r.ok & (np.abs(real - r.targets) > 1.05 * TOL)))
        undetected += int(np.sum(np.isfinite(r.final) & (np.abs(real - r.final) > 0.05 * TOL)))
    if "read_array" in results:
        undetected += int(np.sum(np.abs(results["read_array"] - truth) > 0.05 * TOL))
    for k, x in enumerate(xs):
        if f"vmm{k}" in results:
            want = x @ truth
            undetected += int(np.sum(np.abs(results[f"vmm{k}"] - want) > 1e-3 * np.abs(want).max()))
    return {"attempted": attempted, "completed": completed, "undetected": undetected, "errors": errors}


def scenario(name: str, rate: str, *, faults: LinkFaults | None = None, baud: int | None = None, inject=None) -> dict:
    with EmulatedBoard(seed=41, baud=baud) as emu, memctl.Board(emu.port, timeout=0.5, progress=False) as b:
        if faults:
            emu.set_link_filter(faults)
        start = time.monotonic()
        r = workload(emu, b, inject(emu) if inject else None)
        r["wall_s"] = time.monotonic() - start
        s = b.link.stats
        # Every frame sent again: resends after a damaged answer, a silent timeout or an RTO, and REPLAY requests.
        r["retries"] = s["retries"] + s["resends"] + s["replays"]
        r["link"] = {k: s[k] for k in ("retries", "resends", "replays", "bad_frames")}
        r["byte_error_rate"] = b.link.errors.rate  # what the link measured (its frame budget follows it)
        r["budget"] = b.link.budget
        r["resyncs"] = b.resets
        r["reconnects"] = b.link.stats["reconnects"]
    return {"fault": name, "rate": rate, **r}


def at_step(step: str, action):
    """An injector: arm action(emu) when the workload reaches `step`; it fires
    at an event of the operation (its n-th pulse), whatever the machine's speed."""

    def make(emu):
        def during(name: str) -> None:
            if name == step:
                action(emu)

        return during

    return make


def unplugged(step: str, seconds: float):
    """The cable is pulled just before `step` and plugged back `seconds` later."""

    def make(emu):
        def during(name: str) -> None:
            if name == step:
                emu.unplug()
                threading.Timer(seconds, emu.replug).start()

        return during

    return make


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--quick", action="store_true", help="a few scenarios (the test suite's check)")
    a = ap.parse_args()
    runs = [
        ("none", "-", {}),
        ("byte corruption", "1 %", {"faults": LinkFaults(corrupt=0.01, seed=1)}),
        ("board reset mid-program", "1", {"inject": at_step("program", lambda emu: emu.reset_at_pulse(40))}),
    ]
    if not a.quick:
        runs[2:2] = [
            ("byte corruption", "0.1 %", {"faults": LinkFaults(corrupt=0.001, seed=2)}),
            ("byte drops", "0.1 %", {"faults": LinkFaults(drop=0.001, seed=3)}),
            ("byte drops", "1 %", {"faults": LinkFaults(drop=0.01, seed=4)}),
            ("byte duplicates", "1 %", {"faults": LinkFaults(duplicate=0.01, seed=5)}),
            ("bursts of 8 random bytes", "0.2 %", {"faults": LinkFaults(burst=0.002, seed=6)}),
            ("UART timing", "921600 baud", {"baud": 921600}),
            ("UART timing", "115200 baud", {"baud": 115200}),
        ]
        runs += [
            (
                "brown-out mid-pulse",
                "1",
                {"inject": at_step("program", lambda emu: emu.brownout(0.5, after=40, block=False))},
            ),
            ("cable unplugged 0.5 s", "1", {"inject": unplugged("read_array", 0.5)}),
        ]
    rows = [scenario(name, rate, **kw) for name, rate, kw in runs]
    # The fault-free workload takes under a second: one sample of it is noise-prone (the first
    # run also warms caches), so the baseline is the median of that row and two more runs.
    base = float(np.median([rows[0]["wall_s"]] + [scenario("none", "-")["wall_s"] for _ in range(2)]))
    for r in rows:
        r["slowdown"] = r["wall_s"] / base
    report = {"machine": platform.platform(), "baseline_s": base, "scenarios": rows}
    print(reliability_table(report))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
