"""Board backend cost: the same workload on both firmware front
ends, in one run, on the same seed.

    python benchmarks/hal_backends.py [--quick] [--out results/hal_backends.json]

"emulated" sends semantic bus operations; "chips" runs the reference board's
chip drivers, every SPI frame and GPIO edge crossing to the chip models. The
ratio is chips time over emulated time for each operation; the results must
be identical (same physics), which the table checks. Also: resident heap
(INFO's peak) and a firmware update over the protocol.
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
from memctl.firmware_image import build
from memctl.flash import update
from memctl_emulator import EmulatedBoard

OUT = Path(__file__).with_name("results") / "hal_backends.json"


def run(hal: str, image: Path, quick: bool) -> dict:
    reps = 3 if quick else 20
    rng = np.random.default_rng(0)
    timings: dict[str, float] = {}
    results: dict[str, np.ndarray] = {}
    with EmulatedBoard(seed=5, hal=hal) as emu, memctl.Board(emu.port, progress=False) as b:
        ops = {
            "read one device": lambda: b.read(3, 4),
            "read 32x32 array": b.read_array,
            "VMM 32x32": lambda: b.vmm(rng.uniform(0, 0.1, 32)),
            "program 4x4 (write-verify)": lambda: b.program(np.full((4, 4), 60e-6), tolerance=1e-6).final,
        }
        for name, op in ops.items():
            t0 = time.perf_counter()
            for _ in range(1 if name.startswith("program") else reps):
                out = op()
            timings[name] = (time.perf_counter() - t0) / (1 if name.startswith("program") else reps)
            results[name] = np.asarray(out)
        heap = b.info().heap_peak
        t0 = time.perf_counter()
        update(b, image)
        timings["firmware update (x64 image)"] = time.perf_counter() - t0
    return {"timings": timings, "results": results, "heap_peak": heap}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    image = build(tempfile.mkdtemp(prefix="memctl-bench-"), "x64")
    runs = {hal: run(hal, image, a.quick) for hal in ("emulated", "chips")}
    e, b = runs["emulated"], runs["chips"]
    rows = []
    print("| operation | emulated ms | chips ms | chips / emulated | same result |\n|---|---|---|---|---|")
    for name, te in e["timings"].items():
        tb = b["timings"][name]
        same = bool(np.array_equal(e["results"][name], b["results"][name])) if name in e["results"] else None
        rows.append({"operation": name, "emulated_s": te, "chips_s": tb, "ratio": tb / te, "same_result": same})
        print(f"| {name} | {te * 1e3:.2f} | {tb * 1e3:.2f} | {tb / te:.2f} | {'-' if same is None else same} |")
    print(
        f"| resident heap (INFO peak) | {e['heap_peak']} B | {b['heap_peak']} B | "
        f"{b['heap_peak'] / e['heap_peak']:.2f} | - |"
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    heap = {"emulated": e["heap_peak"], "chips": b["heap_peak"]}
    a.out.write_text(
        json.dumps({"machine": platform.platform(), "quick": a.quick, "rows": rows, "heap_peak": heap}, indent=1)
    )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
