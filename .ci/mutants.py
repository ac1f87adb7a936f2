#!/usr/bin/env python3
"""Mutation check of the firmware's safety limits.

Each mutant loosens one check by one DAC step (1.01 x 76.3 uV on the default
board) or one timer tick (1.01 ns), or drops a clamp or a check that stood
in front of another, in a copy of the firmware. The boundary tests
(hil_tests/test_safety_limits.py) run against each copy and must fail; the
unmutated copy runs first and must pass, so a broken harness cannot pass
for a caught mutant.

    python .ci/mutants.py [--hal emulated|chips] [--only SUBSTRING] [--tests PATH]

Prints a table; exits 1 if any mutant survived (or the control failed).
hil_tests/test_safety_mutants.py runs it as part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from memctl.firmware_image import stage

ROOT = Path(__file__).resolve().parents[1]
TESTS = "hil_tests/test_safety_limits.py"
LSB = "7.71e-5"  # 1.01 DAC steps of the default board (2.5 V full scale, 16 bits)
TICK = "1.01e-9"


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # path on the board (memctl_firmware/manifest.py)
    old: str
    new: str
    count: int = 1  # occurrences of old the mutant replaces (all of them)


MUTANTS = [
    Mutant(
        "pulse amplitude check +1 LSB", "xbar.py", "abs(v) <= limits.v_pulse:", f"abs(v) <= limits.v_pulse + {LSB}:"
    ),
    Mutant(
        "pulse amplitude check on positive pulses only", "xbar.py", "abs(v) <= limits.v_pulse:", "v <= limits.v_pulse:"
    ),
    Mutant(
        "width check +1 tick (pulses, and every algorithm's widths)",
        "xbar.py",
        "if not width <= limits.width:",
        f"if not width <= limits.width + {TICK}:",
    ),
    Mutant("read voltage check +1 LSB", "xbar.py", "abs(v) <= limits.v_read:", f"abs(v) <= limits.v_read + {LSB}:"),
    Mutant(
        "read voltage check on positive voltages only", "xbar.py", "abs(v) <= limits.v_read:", "v <= limits.v_read:"
    ),
    Mutant(
        "DAC rounding may pass a limit (no step back)",
        "hal/frontend.py",
        "            c -= 1\n",
        "            c -= 0\n",
    ),
    Mutant(
        "algorithm set amplitudes +1 LSB (starts of ISPP, adaptive, FFP; predicted's largest candidate)",
        "algorithms.py",
        "if not v_set <= limits.v_pulse:",
        f"if not v_set <= limits.v_pulse + {LSB}:",
    ),
    Mutant(
        "algorithm reset amplitudes +1 LSB (starts of ISPP, adaptive, FFP; predicted's largest candidate)",
        "algorithms.py",
        "if not -v_reset <= limits.v_pulse:",
        f"if not -v_reset <= limits.v_pulse + {LSB}:",
    ),
    Mutant(
        "ISPP amplitude growth not clamped to the limit",
        "algorithms.py",
        "        if self.amp > self.vmax:\n            self.amp = self.vmax\n",
        "",
    ),
    Mutant(
        "adaptive width doubling not clamped to the limit",
        "algorithms.py",
        "self.wmax = self.width_max if self.width_max <= limits.width else limits.width",
        "self.wmax = self.width_max",
    ),
    Mutant(
        "FFP table voltages not clamped to the limit",
        "algorithms.py",
        "        if amp > self.vmax:\n            amp = self.vmax\n        self.d, self.b",
        "        self.d, self.b",
    ),
    Mutant("PULSE_TRAIN read voltage checked only when read", "controller.py", "        check_read(lim, v_r)\n", ""),
    Mutant(
        "PULSE_TRAIN anti-pulse checked only when applied",
        "controller.py",
        "        if t_anti != 0:\n            check_pulse(lim, v_anti, t_anti)\n",
        "",
    ),
    Mutant(
        "network inputs not clipped to the read limit",
        "network.py",
        "vin[r[i]] = lim if v > lim else (-lim if v < -lim else v)",
        "vin[r[i]] = v",
    ),
]


def mutate(dst: Path, m: Mutant) -> None:
    path = dst / m.file
    text = path.read_text()
    found = text.count(m.old)
    if found != m.count:
        raise SystemExit(
            f"mutant {m.name!r}: {m.file} has {found} copies of its target, expected {m.count}; "
            "update .ci/mutants.py to the firmware's source"
        )
    path.write_text(text.replace(m.old, m.new))


def run_tests(firmware: Path, hal: str | None, tests: str) -> tuple[int, float, str]:
    env = dict(os.environ, MEMCTL_FIRMWARE_DIR=str(firmware))
    cmd = [sys.executable, "-m", "pytest", tests, "-x", "-q", "-n0", "-p", "no:cacheprovider"] + (
        ["-k", hal] if hal else []
    )
    start = time.monotonic()
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    last = [line for line in run.stdout.splitlines() if line.strip()][-1:] or [run.stderr.strip()[-200:]]
    return run.returncode, time.monotonic() - start, last[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hal", choices=["emulated", "chips"], help="one front end (default: both)")
    ap.add_argument("--only", default="", help="mutants whose name contains this")
    ap.add_argument("--tests", default=TESTS, help=f"the tests to run against each mutant (default {TESTS})")
    a = ap.parse_args()
    failed = False
    caught = tried = 0
    print("| mutant | tests | s |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="memctl-mutant-") as tmp:
        for m in [None] + [m for m in MUTANTS if a.only in m.name]:
            dst = Path(tmp, "firmware")
            shutil.rmtree(dst, ignore_errors=True)
            stage(dst)  # the board's files as they sit on its filesystem
            if m is not None:
                mutate(dst, m)
            rc, seconds, last = run_tests(dst, a.hal, a.tests)
            if m is None:
                verdict = "pass (control)" if rc == 0 else f"FAIL (control, rc {rc}): {last}"
                failed |= rc != 0
            else:
                verdict = "fail: caught" if rc == 1 else ("pass: SURVIVED" if rc == 0 else f"error rc {rc}: {last}")
                failed |= rc != 1
            print(f"| {m.name if m else 'none (control)'} | {verdict} | {seconds:.1f} |", flush=True)
            caught += m is not None and rc == 1
            tried += m is not None
    print(f"{caught} of {tried} mutants caught")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
