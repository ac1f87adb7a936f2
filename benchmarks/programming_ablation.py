"""Ablations of predictor-guided programming: where its gap to the oracle comes from.

A host replica of the firmware's inverse-predictor controller
(memctl_firmware/algorithms.py, Predicted: proposal at t_lo / t_hi, per-device
per-polarity amplitude offset with escalation, warm start across devices,
the spread-aware rule for an overshoot penalty) runs on isolated copies of
the emulator's own devices with noisy reads, so single parts can be switched
off or handed what no board can know:

- full: the controller as shipped (overshoot penalty 0);
- static: no per-device adaptation (offsets stay 0);
- true_offset: each device starts from its true threshold shift (hidden
  emulator parameters: an ablation only);
- trains_data: the model fitted to paper-004-style pulse trains (one
  amplitude and width per curve from a reset state) instead of single pulses;
- aim_0.8: aims 80 % of the way while farther than 3 tolerances;
- overshoot_1, overshoot_3: the spread-aware rule at those penalties.

Training devices come from board seed 107, programmed devices from seeds
7, 8, 9 (64 random 8-bit targets each, half-level tolerance, 300 pulses at
most). Prints a table and writes benchmarks/results/programming_ablation.json.

    python benchmarks/programming_ablation.py [--families ...] [--seeds 7 8 9]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from memctl.devices import PRESETS, DeviceModel, load_device
from memctl.export.train import Dataset, fit
from memctl_emulator.array_circuit import LineDrive
from memctl_emulator.crossbar import Crossbar
from memctl_emulator.oracle import isolate
from memctl_shared.predictor_blob import FEATURES_INVERSE

OUT = Path(__file__).with_name("results") / "programming_ablation.json"
TRAIN_SEED = 107
GENERATED = [f"generated:{s}" for s in range(1000, 1008)]
MAX_PULSES = 300
BETA, WARM, CAP = 0.6, 0.3, 0.15  # as the firmware's Predicted
ABLATIONS = ("full", "static", "true_offset", "trains_data", "aim_0.8")
PENALTIES = (1.0, 3.0)
_ZERO = np.zeros(1)


def read(dev: Crossbar) -> float:
    v = dev.device.v_read
    return float(dev.column_currents(LineDrive.driven(np.array([v]), _ZERO))[0] / v)


def pulse(dev: Crossbar, v: float, width: float) -> None:
    dev.apply(LineDrive.driven(np.array([v]), _ZERO), width)


def fresh(xb: Crossbar, k: int) -> Crossbar:
    dev = isolate(xb, k // 8 % 8, k % 8)
    if dev.device.v_form:
        pulse(dev, dev.device.v_max, 1e-3)
    return dev


class Replica:
    """One family's controller: ranges from the family (as memctl.tuning.settings_for)."""

    def __init__(self, d: DeviceModel):
        self.d = d
        self.w0 = d.pulse_width
        self.up, self.down = (0.6 * d.v_set, d.v_max), (0.6 * abs(d.v_reset), d.v_max)
        self.t_lo, self.t_hi = 0.1 * self.w0, 10 * self.w0
        self.model = None

    def features(self, g, dg, t, pol) -> np.ndarray:
        d = self.d
        span = d.g_max - d.g_min
        cols = [(np.asarray(g) - d.g_min) / span, np.asarray(dg) / span, np.log10(np.asarray(t) / self.w0)]
        return np.stack([*cols, np.asarray(pol, float)], axis=-1)

    def fit(self, rows: np.ndarray) -> dict:
        """rows: device, g before, V, width, g after -> the inverse model (and its spread output)."""
        d = self.d
        k, g, v, t, g2 = rows.T
        dg, pol = g2 - g, np.sign(v)
        noise = 2 * (d.read_noise_rel * np.maximum(g, g2) + d.read_noise_abs) + 1e-3 * (d.g_max - d.g_min)
        ok = dg * pol > noise  # moved in the pulse's direction
        x = self.features(g[ok], dg[ok], t[ok], pol[ok])
        r = fit(Dataset(x, np.abs(v[ok]), k[ok].astype(int), 0.0, 1.0, FEATURES_INVERSE))
        self.model = r.model
        return {"rows": int(ok.sum()), "test_mse": r.mse["test"]}

    def ask(self, g: float, step: float, t: float, pol: int) -> tuple[float, float]:
        out = self.model.predict_all(self.features([g], [step], [t], [pol]))[0]
        return float(out[0]), float(out[1])

    def program(self, dev: Crossbar, target: float, tol: float, dv: dict, *, beta=BETA, aim=1.0, lam=0.0):
        """The firmware's verify loop and inverse rule; dv: this device's offsets (updated)."""
        g, n, still = read(dev), 0, 0
        while abs(g - target) > tol and n < MAX_PULSES:
            err = target - g
            pol = 1 if err > 0 else -1
            lo, hi = self.up if pol > 0 else self.down
            if aim < 1 and abs(err) > 3 * tol:
                err *= aim
            band = lam > 0
            t = self.t_lo
            v, s = self.ask(g, err - tol * pol if band else err, t, pol)
            v += dv[pol]
            if v > hi:
                t = self.t_hi
                v = self.ask(g, err, t, pol)[0] + dv[pol]
            elif band:
                far, s_far = self.ask(g, err + tol * pol, t, pol)
                far += dv[pol]
                s, gap = 0.5 * (s + s_far), far - v
                v = 0.5 * (v + far)
                if gap > 1e-6 and s > 0:
                    w = np.log1p(lam)
                    v -= min(s * s * w / gap, CAP * s * w)
            v = float(np.clip(v, lo, hi))
            pulse(dev, pol * v, t)
            n += 1
            g2 = read(dev)
            seen, lim = (g2 - g) * pol, 0.5 * hi
            if not beta:  # no adaptation (the firmware's A_STATIC)
                pass
            elif seen < 0.2 * tol:  # nothing moved: more, doubling
                still = min(still + 1, 6)
                dv[pol] = min(dv[pol] + 0.02 * lim * (1 << (still - 1)), lim)
            else:
                still = 0
                shift = v - self.ask(g, seen * pol, t, pol)[0]
                dv[pol] = float(np.clip(dv[pol] + beta * (shift - dv[pol]), -lim, lim))
            g = g2
        return n, abs(g - target) <= tol


def single_pulses(d: DeviceModel, rep: Replica, devices: int = 16, n: int = 300) -> np.ndarray:
    """Programming-like pulses: amplitude and width across the ranges, polarity toward a random goal."""
    xb = Crossbar(8, 8, d, seed=TRAIN_SEED)
    rng = np.random.default_rng(TRAIN_SEED)
    rows = []
    for k in range(devices):
        dev = fresh(xb, k)
        g = read(dev)
        for _ in range(n):
            pol = 1 if rng.uniform(d.g_min, d.g_max) > g else -1
            lo, hi = rep.up if pol > 0 else rep.down
            v = pol * (lo + (hi - lo) * rng.random())
            t = rep.w0 * 10 ** rng.uniform(-1, 1)
            pulse(dev, v, t)
            g2 = read(dev)
            rows.append((k, g, v, t, g2))
            g = g2
    return np.array(rows)


def pulse_trains(d: DeviceModel, rep: Replica, devices: int = 16, periods: int = 30) -> np.ndarray:
    """Paper 004 style: per curve one amplitude and width, identical pulses from a reset state."""
    xb = Crossbar(8, 8, d, seed=TRAIN_SEED)
    rows = []
    for k in range(devices):
        dev = fresh(xb, k)
        for amps, reset in (
            (np.linspace(rep.up[0] / 0.6 * 1.1, rep.up[1], 5), -0.9 * d.v_max),
            (-np.linspace(rep.down[0] / 0.6 * 1.1, rep.down[1], 5), 0.9 * d.v_max),
        ):
            for v in amps:
                for t in (0.2 * rep.w0, rep.w0, 5 * rep.w0):
                    for _ in range(20):
                        pulse(dev, reset, 5 * rep.w0)
                    g = read(dev)
                    for _ in range(periods):
                        pulse(dev, v, t)
                        g2 = read(dev)
                        rows.append((k, g, v, t, g2))
                        g = g2
    return np.array(rows)


def run(rep: Replica, mode: str, seed: int, n_dev: int = 64) -> tuple[list[int], list[bool]]:
    d = rep.d
    level = (d.g_max - d.g_min) / 255
    xb = Crossbar(8, 8, d, seed=seed)
    rng = np.random.default_rng(seed)
    array = {1: 0.0, -1: 0.0}  # the offsets a new device starts from
    pulses, ok = [], []
    for k in range(n_dev):
        dev = fresh(xb, k)
        target = d.g_min + rng.integers(0, 256) * level
        dv = dict(array)
        r, c = k // 8 % 8, k % 8
        if mode == "true_offset":
            dv = {1: float(xb.v_set[r, c] - d.v_set), -1: float(d.v_reset - xb.v_reset[r, c])}
        kw = {
            "static": {"beta": 0.0},
            "aim_0.8": {"aim": 0.8},
            **{f"overshoot_{lam:g}": {"lam": lam} for lam in PENALTIES},
        }.get(mode, {})
        n, success = rep.program(dev, target, level / 2, dv, **kw)
        if mode not in ("static", "true_offset"):
            for p in (1, -1):
                array[p] += WARM * (dv[p] - array[p])
        pulses.append(n)
        ok.append(success)
    return pulses, ok


def bench(name: str, seeds: list[int], modes: tuple[str, ...], n_dev: int = 64) -> dict:
    d = load_device(name)
    rep = Replica(d)
    out = {"model": rep.fit(single_pulses(d, rep)), "modes": {}}
    trains = None
    for mode in modes:
        if mode == "trains_data":
            trains = Replica(d)
            out["trains_model"] = trains.fit(pulse_trains(d, trains))
        runs = [run(trains if mode == "trains_data" else rep, mode, s, n_dev) for s in seeds]
        pulses = np.concatenate([r[0] for r in runs])
        ok = np.concatenate([r[1] for r in runs])
        out["modes"][mode] = {
            "success": float(ok.mean()),
            "pulses_ok": float(pulses[ok].mean()) if ok.any() else float("nan"),
            "pulses_ok_per_seed": [float(np.mean(np.array(r[0])[np.array(r[1])])) for r in runs],
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="+", default=[*sorted(PRESETS), *GENERATED])
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    ap.add_argument("--devices", type=int, default=64, help="targets per seed (64)")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    t0 = time.monotonic()
    families = {}
    print("| family | " + " | ".join(ABLATIONS + tuple(f"overshoot_{lam:g}" for lam in PENALTIES)) + " |")
    for name in a.families:
        # The ablations on the presets; the penalty sweep everywhere.
        modes = (ABLATIONS if name in PRESETS else ("full",)) + tuple(f"overshoot_{lam:g}" for lam in PENALTIES)
        families[name] = bench(name, a.seeds, modes, a.devices)
        cells = []
        for mode in ABLATIONS + tuple(f"overshoot_{lam:g}" for lam in PENALTIES):
            m = families[name]["modes"].get(mode)
            cells.append("" if m is None else f"{m['pulses_ok']:.1f} ({m['success']:.0%})")
        print(f"| {name} | " + " | ".join(cells) + f" |  ({time.monotonic() - t0:.0f} s)", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(
        json.dumps(
            {"machine": platform.platform(), "seeds": a.seeds, "devices": a.devices, "families": families}, indent=2
        )
        + "\n"
    )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
