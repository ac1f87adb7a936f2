"""What the firmware costs on its target: the rv32 board (MicroPython's qemu
port on a 32-bit RISC-V, QEMU virt with -icount shift=0, so virtual time
counts instructions: 1 per ns).

    python benchmarks/target.py [--out benchmarks/results/target.json]

Measured on the board by benchmarks/mpy_target.py (the firmware's modules as
the board's build froze them): instructions per predictor inference (the
inverse int8 model predicted programming ships, fitted to a toy device; the
forward 7-16-16-1 models, float32 and int8, for comparison), per write-verify
iteration of each algorithm (a pure-Python toy front end's own time taken
out; one device alone, and a 1T1R row as `memctl program` runs a map), per
1 KB frame encode and decode, per 32x32 VMM request (firmware side). On an
emulated rv32 board with the analog front end process: boot (QEMU start to
"firmware ready", wall clock) and the heap after it (free bytes and the
largest free block, as the firmware reports them), 10 000 mixed requests with
the free heap sampled (benchmarks/rp2_board.py's soak), the resident heap
after a paper-003 deployment (16-10-4 on 32x32), and the slowest answer of
every command kind against the host's link timeout. Needs `memctl build-mpy`.
Goals: the constants below.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import re
import tempfile
import time
from pathlib import Path

import numpy as np

import memctl
from memctl.deployment import Layer, deploy
from memctl.export.train import _inverse_rows, fit
from memctl_emulator import EmulatedBoard, firmware_python
from memctl_emulator.launcher import rv32_firmware
from memctl_emulator.rv32 import run_script
from memctl_shared import predictor_blob

OUT = Path(__file__).with_name("results") / "target.json"
RUNNER = Path(__file__).with_name("mpy_target.py")
INT8_GOAL = 20_000  # instructions per inverse int8 inference
ITERATION_GOAL = 1.5  # a predicted verify iteration against an ISPP one
FRAME_GOAL = 300_000  # instructions to encode and decode a 1 KB frame
BOOT_GOAL = 1.5  # s, QEMU start to firmware ready
LARGEST_GOAL = 64 * 1024  # B, the largest free block after boot
HEAP_GOAL = 0.5


def blobs(rng: np.random.Generator) -> tuple[bytes, bytes]:
    """Float32 and int8 blobs of the default forward predictor's shape (7-16-16-1); random weights: the cost
    does not depend on their values."""
    shapes = [(7, 16), (16, 16), (16, 1)]
    acts = [predictor_blob.ACT_RELU, predictor_blob.ACT_RELU, predictor_blob.ACT_NONE]
    mean, std = [0.0] * 7, [1.0] * 7
    f32 = predictor_blob.encode(
        [
            (rng.normal(size=(o, i)).tolist(), rng.normal(size=o).tolist(), a)
            for (i, o), a in zip(shapes, acts, strict=True)
        ],
        mean,
        std,
        0.0,
        1e-4,
    )
    layers = []
    for (i, o), a in zip(shapes, acts, strict=True):
        w = [[int(v) for v in rng.integers(-127, 128, i)] for _ in range(o)]
        b = [int(v) for v in rng.integers(-2000, 2000, o)]
        m0 = [int(v) for v in rng.integers(1 << 30, (1 << 31) - 1, o)]
        shift = [int(v) for v in rng.integers(-9, -5, o)]
        layers.append((w, b, m0, shift, a, 0.05, -20 if a == predictor_blob.ACT_RELU else 3))
    i8 = predictor_blob.encode_int8(layers, mean, std, 0.0, 1e-4, 0.03, 2)
    return f32, i8


def toy_device():
    """benchmarks/mpy_target.py under CPython (the firmware's modules as the board imports them): its toy
    device law and the programming parameters that go with it."""
    firmware_python.install()
    spec = importlib.util.spec_from_file_location("mpy_target", RUNNER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def inverse_blob(devices: int = 16, pulses: int = 300, seed: int = 0) -> bytes:
    """The int8 inverse predictor (4-16-16-2, as `memctl predictor fit` makes it) fitted to single pulses on
    the toy device the verify iterations program: the path through the rule (escalations, width search) is
    then the one a fitted model takes, and what it costs is what ships."""
    toy = toy_device()
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(devices):
        g = rng.uniform(toy.G_MIN, toy.G_MAX)
        rows.append((d, 0, 0.0, 0.0, g))
        for n in range(1, pulses + 1):
            pol = 1.0 if rng.uniform(toy.G_MIN, toy.G_MAX) > g else -1.0
            v, w = pol * rng.uniform(0.8, toy.LIMITS[0]), 10 ** rng.uniform(-5, np.log10(toy.LIMITS[1]))
            g = toy.toy_step(g, v, w)
            rows.append((d, n, v, w, g))
    cols = zip(*rows, strict=True)
    t = {k: np.array(col) for k, col in zip(("curve", "N", "V_set", "t_set", "g"), cols, strict=True)}
    i_min, i_max = toy.G_MIN * toy.V_READ, toy.G_MAX * toy.V_READ
    data = _inverse_rows(t, (t["g"] * toy.V_READ - i_min) / (i_max - i_min), i_min, i_max, ["toy device"])
    return fit(data, seed=seed).int8_blob


def on_the_core() -> list[dict]:
    rng = np.random.default_rng(0)
    f32, i8 = blobs(rng)
    inv = inverse_blob()
    with tempfile.TemporaryDirectory() as tmp:
        flash = Path(tmp)  # nothing but the blobs: the firmware's modules are the build's frozen ones, as shipped
        (flash / "f32.mcpr").write_bytes(f32)
        (flash / "i8.mcpr").write_bytes(i8)
        (flash / "inv.mcpr").write_bytes(inv)
        lines = run_script(rv32_firmware(), RUNNER, flash, ["f32.mcpr", "i8.mcpr", "inv.mcpr"], timeout=1800)
    return [json.loads(line) for line in lines if line.startswith("{")]


def boots(n: int = 3) -> dict:
    """QEMU start to the firmware's ready line (wall, the launcher's front end process already up: what the
    board itself takes), and the heap after boot as the firmware reports it there (app.py)."""
    walls, heap = [], {}
    for k in range(n):
        with EmulatedBoard(rows=8, cols=8, seed=40 + k, hal="rv32") as emu:
            walls.append(emu.boot_s)
            found = re.search(r"heap free (\d+) largest block (\d+)", emu.ready_line)
            heap = {"heap_free_after_boot": int(found[1]), "largest_block_after_boot": int(found[2])}
    return {"boot_s": min(walls), "boot_s_all": walls, **heap}


def on_the_board() -> dict:
    rng = np.random.default_rng(9)
    start = time.monotonic()
    with EmulatedBoard(seed=27, hal="rv32") as emu, memctl.Board(emu.port, progress=False) as b:
        start_s = time.monotonic() - start
        slowest: dict[str, float] = {}

        def timed(name: str, fn) -> None:
            t = time.monotonic()
            fn()
            slowest[name] = max(slowest.get(name, 0.0), time.monotonic() - t)

        for _ in range(3):
            timed("INFO", b.info)
            timed("READ", lambda: b.read(3, 4))
            timed("PULSE", lambda: b.pulse(3, 4, 1.0, 1e-4))
            timed("READ_ARRAY 32x32", b.read_array)
            timed("VMM 32x32", lambda: b.vmm(np.full(32, 0.1)))
            timed("PROGRAM 1 device", lambda: b.program(np.array([[5e-5]]), origin=(5, 5), tolerance=1e-6))
            timed("CONFIG", lambda: b.configure(v_read=0.2))
        layers = [
            Layer(rng.normal(size=(10, 16)), rng.normal(size=10), "Tanh"),
            Layer(rng.normal(size=(4, 10)), rng.normal(size=4), None),
        ]
        t = time.monotonic()
        dep = deploy(layers, b, tolerance=1e-6, max_pulses=200)
        deploy_s = time.monotonic() - t
        timed("RUN_NETWORK 40 inputs", lambda: dep.run(b, rng.uniform(-1, 1, (40, 16))))
        info = b.info()
        timeout = b.link.timeout
    return {
        "start_s": start_s,
        "deploy_s": deploy_s,
        "heap_size": info.heap_size,
        "heap_peak_after_deployment": info.heap_peak,
        "slowest_answer_s": slowest,
        "link_timeout_s": timeout,
    }


def _row(core: list[dict], start: str) -> dict:
    return next(r for r in core if r["what"].startswith(start))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--soak", type=int, default=10_000, help="mixed requests in the heap soak (0: none)")
    a = ap.parse_args()
    core = on_the_core()
    board = on_the_board()
    board.update(boots())
    if a.soak:
        spec = importlib.util.spec_from_file_location("rp2_board", Path(__file__).with_name("rp2_board.py"))
        rp2_board = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(rp2_board)  # type: ignore[union-attr]
        board["soak"] = rp2_board.soak(a.soak, hal="rv32")
    print("| on the rv32 core (icount: 1 instruction per ns) | instructions |\n|---|---|")
    for row in core:
        row["instructions"] = round(row["us"] * 1000)
        print(f"| {row['what']} | {row['instructions']:,} |")
    int8 = _row(core, "inverse predictor int8 inference")["instructions"]
    ratio = (
        _row(core, "verify iteration, one device: predicted")["instructions"]
        / _row(core, "verify iteration, one device: ISPP")["instructions"]
    )
    frames = _row(core, "frame encode")["instructions"] + _row(core, "frame decode")["instructions"]
    heap = board["heap_peak_after_deployment"] / board["heap_size"]
    late = {k: v for k, v in board["slowest_answer_s"].items() if v > board["link_timeout_s"]}
    print("\n| on the emulated rv32 board | value | goal |\n|---|---|---|")
    print(f"| inverse int8 inference | {int8:,} instructions | <= {INT8_GOAL:,} |")
    print(f"| predicted verify iteration / ISPP's | {ratio:.2f} | <= {ITERATION_GOAL} |")
    print(f"| frame encode + decode, 1 KB | {frames:,} instructions | <= {FRAME_GOAL:,} |")
    print(
        f"| boot (QEMU start to firmware ready, wall, best of {len(board['boot_s_all'])}) | {board['boot_s']:.2f} s |"
        f" <= {BOOT_GOAL} s |"
    )
    largest = board["largest_block_after_boot"]
    print(
        f"| largest free block after boot | {largest:,} B (of {board['heap_free_after_boot']:,} B free) |"
        f" >= {LARGEST_GOAL:,} B |"
    )
    if "soak" in board:
        sk = board["soak"]
        slope = sk["heap_free_slope_per_sample"]
        print(f"| {sk['requests']:,} mixed requests: free heap per 1 000 | {slope:+,.0f} B", end="")
        print(f" ({sk['memory_errors']} memory errors) | no downward trend |")
    print(f"| paper-003 deployment (16-10-4), wall | {board['deploy_s']:.1f} s | - |")
    print(f"| resident heap after it (INFO peak) | {board['heap_peak_after_deployment']:,} B = {heap:.0%} | <= 50 % |")
    for name, t in board["slowest_answer_s"].items():
        print(f"| slowest {name} answer | {t * 1e3:.0f} ms | <= {board['link_timeout_s']:.1f} s link timeout |")
    goals = {
        "int8_inference": int8 <= INT8_GOAL,
        "verify_iteration": ratio <= ITERATION_GOAL,
        "frames": frames <= FRAME_GOAL,
        "boot": board["boot_s"] <= BOOT_GOAL,
        "largest_block": largest >= LARGEST_GOAL,
        "soak": board.get("soak", {}).get("goal_met", False),
        "resident_heap": heap <= HEAP_GOAL,
        "answers_within_timeout": not late,
    }
    print("\ngoals: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in goals.items()))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(
        json.dumps({"machine": platform.platform(), "core": core, "board": board, "goals": goals}, indent=1)
    )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
