"""Ablations of predictor-guided programming: what each part of the firmware's
inverse rule buys, in pulses, board time and pulse energy.

The firmware's own algorithm and verify loop (memctl_firmware/algorithms.py,
verify.py, run under CPython by memctl_emulator.firmware_python) program
isolated copies of the emulator's devices with noisy reads, one part switched
off at a time:

- full: the rule as shipped;
- static: no per-device adaptation (the offsets stay at the model's);
- longest_width: past the amplitude limit, the longest width at once (the rule
  before it chose the width a step needs);
- no_gain: overshoots do not lower the step asked for (the offset still learns);
- no_escalation: pulses that fall far short or overshoot change nothing beyond
  the learned offset (no nudges, no widening, no cap).

The predictor (float32: the int8 kernel is viper code) is fitted on a
single-pulse characterization of an emulated board (seed 107, 16 devices x
300 pulses over the family's ranges, memctl.tuning.characterization_pulses).
Programmed: boards of seeds 11 and 12 (never used while the rule was designed),
64 random 8-bit targets each, half-level tolerance, 300 pulses at most. Board
time is the pulses' widths plus one 100 us read per pulse and per device.
Prints a table and writes benchmarks/results/programming_ablation.json.

    python benchmarks/programming_ablation.py [--families ...] [--seeds 11 12]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
from programming import GENERATED, MAX_PULSES, TRAIN_SEED, characterized_predictor, family
from report import programming_ablation

from memctl.devices import PRESETS
from memctl.tuning import settings_for
from memctl_emulator.array_circuit import LineDrive
from memctl_emulator.crossbar import Crossbar
from memctl_emulator.firmware_python import install
from memctl_emulator.oracle import isolate

install()
import algorithms  # noqa: E402  (the firmware's, after install())
import verify  # noqa: E402
from predictor import PREDICTOR  # noqa: E402
from xbar import Limits, f32  # noqa: E402

OUT = Path(__file__).with_name("results") / "programming_ablation.json"
T_READ = 100e-6  # the emulated front end's conversion
_ZERO = np.zeros(1)


def _longest(self, f, step, v_lo, off, hi):
    """The rule before the width choice: the longest width, at the amplitude the model gives there."""
    f[1] = step
    f[2] = self.lg_hi
    return self.t_hi, self.p.predict(f) + off, self.lg_hi


MODES = {
    "full": {},
    "static": {"adapt": False},
    "longest_width": {"_width": _longest},
    "no_gain": {"GAIN_DOWN": 1.0},
    "no_escalation": {"WEAK": -math.inf, "OVER": math.inf},
}


class Device:
    """What the verify loop needs of an array, on one isolated device: pulse, read, the board time."""

    def __init__(self, dev: Crossbar, v_read: float):
        self.dev, self.v_read, self.t = dev, v_read, 0.0

    def pulse(self, r: int, c: int, v: float, w: float) -> None:
        self.dev.apply(LineDrive.driven(np.array([v]), _ZERO), w)
        self.t += w

    def read(self, r: int, c: int) -> float:
        self.t += T_READ
        return float(self.dev.column_currents(LineDrive.driven(np.array([self.v_read]), _ZERO))[0] / self.v_read)


def predictor_blob(name: str) -> bytes:
    """float32: the int8 kernel is viper code, which CPython cannot run as the board does."""
    devices = [(r, c) for r in range(4) for c in range(4)]
    r, _ = characterized_predictor(name, TRAIN_SEED, devices, 300, (4, 4), family(name)[1])
    return r.blob


def run(name: str, mode: str, seed: int, n_dev: int) -> dict:
    d, _ = family(name)
    s = settings_for(d)
    algo = s.predicted
    limits = Limits()
    limits.set(s.limits.v_pulse, s.limits.width, s.limits.v_read)
    level = (d.g_max - d.g_min) / 255
    params = algorithms.Params()
    params.tol, params.max_pulses, params.patience = level / 2, MAX_PULSES, 8
    params.algorithm = algo.code
    params.p = [f32(x) for x in algo.params(inverse=True)]  # as the wire carries them
    kind = type("Ablated", (algorithms.Predicted,), {k: v for k, v in MODES[mode].items() if k != "adapt"})
    a = kind()
    algorithms.setup(a, params, limits)
    a.adapt = MODES[mode].get("adapt", True)
    xb = Crossbar(8, 8, d, seed=seed)
    rng = np.random.default_rng(seed)
    ok, pulses, board_time, energy = [], [], [], []
    for k in range(n_dev):
        dev = isolate(xb, k // 8 % 8, k % 8)
        if d.v_form:
            dev.apply(LineDrive.driven(np.array([d.v_max]), _ZERO), 1e-3)
        device = Device(dev, d.v_read)
        out = verify.Outcome()
        verify.program_device(device, 0, 0, d.g_min + rng.integers(0, 256) * level, params, a, out)
        ok.append(out.status == 0)
        pulses.append(out.pulses)
        board_time.append(device.t)
        energy.append(out.energy)
    ok, pulses = np.array(ok), np.array(pulses)
    return {
        "success": float(ok.mean()),
        "pulses_ok": float(pulses[ok].mean()) if ok.any() else float("nan"),
        "board_time_s": float(np.sum(board_time)),
        "energy_J": float(np.sum(energy)),
    }


def bench(name: str, seeds: list[int], n_dev: int) -> dict:
    blob = predictor_blob(name)
    PREDICTOR.load(bytearray(blob), len(blob))
    out = {}
    for mode in MODES:
        runs = [run(name, mode, s, n_dev) for s in seeds]
        out[mode] = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
        out[mode]["per_seed"] = runs
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="+", default=[*sorted(PRESETS), *GENERATED])
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12])
    ap.add_argument("--devices", type=int, default=64, help="targets per seed (64)")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    t0 = time.monotonic()
    families = {}
    for name in a.families:
        families[name] = bench(name, a.seeds, a.devices)
        table = programming_ablation({"families": {name: families[name]}})
        print(table, f"({time.monotonic() - t0:.0f} s)", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"machine": platform.platform(), "seeds": a.seeds, "devices": a.devices, "families": families}
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
