"""The firmware on the rp2 board (MicroPython's rp2 port on an emulated RP2040, the reference board's chips on
its SPI bus): what its gate does, whether its heap holds over a long session, and what its code costs on a
Cortex-M0+ without an FPU.

    python benchmarks/rp2_board.py [--task gate|soak|cost|speed|all] [--soak 10000] [--out ...]

gate:  pulses spanning the widths the limits allow (16 ns .. the width limit, log-spaced, each width rounded to
       whole ns as the firmware does); the front end records the window the gate pin's edges made in simulated
       time. Goal: every window within one state-machine cycle of the request, none longer than the width limit.
soak:  mixed requests (reads, pulses, programs, VMMs, predictor and network blob loads, INFO) on a 4x4 board, the
       free heap (INFO: gc.mem_free() after a collect) sampled every 1 000. Goal: no downward trend, no MemoryError.
cost:  benchmarks/mpy_target.py on the rp2 port (the build's frozen firmware; ticks_us in simulated time, 125
       cycles per us): cycles per write-verify iteration of each algorithm, per predictor inference (the inverse
       int8 model predicted programming ships; forward float32 and int8), per 1 KB frame encode and decode.
speed: wall time to program the same 8x8 map on the rp2 board and on the unix board (both front ends).
Needs `memctl build-mpy --target rp2` and `npm ci --prefix memctl_emulator/rp2`.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import memctl
from memctl_emulator import EmulatedBoard, rp2

OUT = Path(__file__).with_name("results") / "rp2_board.json"
RUNNER = Path(__file__).with_name("mpy_target.py")
MHZ = 125


def gate(n: int) -> dict:
    step = rp2.GATE_STEP
    with EmulatedBoard(rows=4, cols=4, seed=31, hal="rp2") as emu, memctl.Board(emu.port, progress=False) as b:
        limit = b.info().limits.width
        afe = emu.afe()
        asked = np.round(np.geomspace(16e-9, limit, n).astype(np.float32).astype(float) / 1e-9) * 1e-9
        seen = np.empty(n)
        t = time.monotonic()
        for k, w in enumerate(asked):
            afe.stats(clear=True)
            b.pulse(k % 4, (k // 4) % 4, 0.3, float(w))  # below every threshold: the array holds
            seen[k] = afe.stats().peak_width
        wall = time.monotonic() - t
        afe.close()
    short = (asked - seen) / step  # cycles the window fell short of the request
    return {
        "pulses": n,
        "width_range_s": [float(asked.min()), float(asked.max())],
        "width_limit_s": limit,
        "cycle_s": step,
        "max_short_cycles": float(short.max()),
        "min_short_cycles": float(short.min()),
        "longer_than_request": int((seen > asked + 1e-15).sum()),
        "longer_than_limit": int((seen > limit + 1e-15).sum()),
        "within_one_cycle": int((short < 1 - 1e-9).sum()),
        "wall_s": wall,
        "goal_met": bool((short < 1 - 1e-9).all() and (seen <= asked + 1e-15).all() and (seen <= limit).all()),
    }


def soak(n: int, every: int = 1000, hal: str = "rp2") -> dict:
    """Mixed requests on a 4x4 board of hal (benchmarks/target.py runs it on rv32), the free heap sampled."""
    from memctl_shared import network_blob, predictor_blob

    rng = np.random.default_rng(5)
    pred = predictor_blob.encode(
        [(rng.normal(size=(8, 7)).tolist(), [0.0] * 8, 1), (rng.normal(size=(1, 8)).tolist(), [0.0], 0)],
        [0.0] * 7,
        [1.0] * 7,
        0.0,
        1e-4,
    )
    # Two inputs and a bias on rows 0-2, one output on columns 0/1 (differential), as the safety tests load.
    net = network_blob.encode(
        [(2, 1, network_blob.ACT_NONE, 0.1, [1.0], [0.0])], [(0, 0, 3, 0, 1, 1.0, [0, 1, 2], [0, 1])]
    )
    samples, errors = [], []
    t = time.monotonic()
    with EmulatedBoard(rows=4, cols=4, seed=32, hal=hal) as emu, memctl.Board(emu.port, progress=False) as b:
        for k in range(n):
            if k % every == 0:
                info = b.info()
                samples.append({"requests": k, "heap_free": info.heap_free, "wall_s": time.monotonic() - t})
                print(f"  {k:6d} requests: heap free {info.heap_free:,} B ({time.monotonic() - t:.0f} s)", flush=True)
            kind = k % 10
            r, c = int(rng.integers(4)), int(rng.integers(4))
            try:
                if kind in (0, 1, 2):
                    b.read(r, c)
                elif kind in (3, 4):
                    b.pulse(r, c, float(rng.choice([0.3, 1.2, -1.4])), 1e-5)
                elif kind == 5:
                    b.vmm(rng.uniform(-0.2, 0.2, 4))
                elif kind == 6:
                    b.program(np.array([[rng.uniform(30e-6, 60e-6)]]), origin=(r, c), tolerance=3e-6, max_pulses=30)
                elif kind == 7:
                    b.load_predictor(pred)
                elif kind == 8:
                    b.load_network(net)
                else:
                    b.info()
            except memctl.MemctlError as e:
                errors.append(f"{k}: {type(e).__name__}: {e}")
                if "memory" in str(e).lower():
                    break
        info = b.info()
        samples.append({"requests": n, "heap_free": info.heap_free, "wall_s": time.monotonic() - t})
    free = np.array([s["heap_free"] for s in samples], float)
    slope = float(np.polyfit(np.arange(len(free)), free, 1)[0]) if len(free) > 2 else 0.0
    return {
        "requests": n,
        "samples": samples,
        "errors": errors[:20],
        "error_count": len(errors),
        "sampled_every": every,
        "heap_free_slope_per_sample": slope,
        "memory_errors": sum("memory" in e.lower() for e in errors),
        "goal_met": bool(not any("memory" in e.lower() for e in errors) and slope > -0.01 * free.mean()),
    }


def cost() -> list[dict]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("target", Path(__file__).with_name("target.py"))
    target = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(target)  # type: ignore[union-attr]
    f32, i8 = target.blobs(np.random.default_rng(0))
    inv = target.inverse_blob()
    with tempfile.TemporaryDirectory() as tmp:
        # Nothing but the blobs (no main.py: MicroPython's REPL, where the script runs): the firmware's modules are
        # the build's frozen ones, as shipped.
        flash = Path(tmp, "fs")
        flash.mkdir()
        (flash / "f32.mcpr").write_bytes(f32)
        (flash / "i8.mcpr").write_bytes(i8)
        (flash / "inv.mcpr").write_bytes(inv)
        lines = rp2.run_script(RUNNER, flash, ["f32.mcpr", "i8.mcpr", "inv.mcpr"], timeout=1800)
    rows = [json.loads(line) for line in lines if line.startswith("{")]
    for row in rows:
        row["cycles"] = round(row["us"] * MHZ)
    return rows


def speed() -> dict:
    targets = np.random.default_rng(7).uniform(20e-6, 80e-6, (8, 8))
    out = {}
    for hal in ("emulated", "chips", "rp2"):
        with EmulatedBoard(rows=8, cols=8, seed=33, hal=hal) as emu, memctl.Board(emu.port, progress=False) as b:
            t = time.monotonic()
            res = b.program(targets, tolerance=1e-6, max_pulses=200)
            out[hal] = {
                "wall_s": time.monotonic() - t,
                "board_time_s": float(res.board_time),
                "pulses": int(res.pulses.sum()),
                "ok": int(res.ok.sum()),
            }
    out["rp2_vs_unix_emulated"] = out["rp2"]["wall_s"] / out["emulated"]["wall_s"]
    out["rp2_vs_unix_chips"] = out["rp2"]["wall_s"] / out["chips"]["wall_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=["gate", "soak", "cost", "speed", "all"], default="all")
    ap.add_argument("--pulses", type=int, default=1000)
    ap.add_argument("--soak", type=int, default=10_000, help="soak requests")
    ap.add_argument("--every", type=int, default=1000, help="soak requests between heap samples")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    result = json.loads(a.out.read_text()) if a.out.exists() else {}
    result["machine"] = platform.platform()
    tasks = ["gate", "soak", "cost", "speed"] if a.task == "all" else [a.task]
    for task in tasks:
        t = time.monotonic()
        if task == "gate":
            g = result["gate"] = gate(a.pulses)
            print("| gate | value | goal |\n|---|---|---|")
            print(f"| pulses, widths | {g['pulses']}, {g['width_range_s'][0]:.3g} .. {g['width_range_s'][1]:.3g} s | |")
            print(
                f"| shortfall, cycles of {g['cycle_s'] * 1e9:.0f} ns | {g['min_short_cycles']:.3f} .. "
                f"{g['max_short_cycles']:.3f} | < 1 |"
            )
            print(f"| longer than asked / than the limit | {g['longer_than_request']} / {g['longer_than_limit']} | 0 |")
        elif task == "soak":
            s = result["soak"] = soak(a.soak, a.every)
            print("| soak requests | heap free (B) |\n|---|---|")
            for row in s["samples"]:
                print(f"| {row['requests']:,} | {row['heap_free']:,} |")
            print(
                f"slope {s['heap_free_slope_per_sample']:.1f} B per {s['sampled_every']} requests; "
                f"errors {s['error_count']}"
            )
        elif task == "cost":
            rows = result["cost"] = cost()
            print("| on the RP2040 (Cortex-M0+, 125 MHz, simulated time) | cycles |\n|---|---|")
            for row in rows:
                print(f"| {row['what']} | {row['cycles']:,} |")
        else:
            s = result["speed"] = speed()
            print("| 8x8 map, write-verify | wall s | board time s | pulses | ok |\n|---|---|---|---|---|")
            for hal in ("emulated", "chips", "rp2"):
                r = s[hal]
                print(f"| {hal} | {r['wall_s']:.1f} | {r['board_time_s']:.3f} | {r['pulses']} | {r['ok']}/64 |")
            print(
                f"rp2 wall / unix wall: {s['rp2_vs_unix_emulated']:.1f}x (emulated), {s['rp2_vs_unix_chips']:.1f}x "
                "(chips)"
            )
        result.setdefault("wall_s", {})[task] = time.monotonic() - t
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
