"""The predictor (paper 004) on hfo2_tio2_bilayer data from the emulated board.

    python benchmarks/predictor.py [--devices 16]

1. Data study: test MSE with and without the present scaled read current as
   a feature (paper 004 has only the six pulse features).
2. Data-size study: test MSE against the share of data used, beside paper
   004 Fig. 4b (A1: 0.07 at 0.1 %, 0.006 at 20 %).
3. Online adaptation: pulses of predictor-guided programming with and
   without the per-device output scale, on devices the model never saw.
4. Cost: us per inference in the MicroPython unix port (float and int8),
   numpy and onnxruntime on the same host, firmware heap used, operations per
   inference beside paper 004's 896 FLOP.
Prints markdown tables and writes benchmarks/results/predictor.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import memctl
from memctl.characterize import characterize, write_hdf5
from memctl.export import onnx_export
from memctl.export.train import Dataset, fit, load
from memctl.firmware_image import staged
from memctl.tuning import characterization_sweeps, settings_for
from memctl_emulator import EmulatedBoard, micropython_executable

OUT = Path(__file__).with_name("results") / "predictor.json"
PRESET = "hfo2_tio2_bilayer"
PAPER_A1 = {0.001: 0.07, 0.2: 0.006}

MPY_TIMER = """
import sys, time, gc
sys.path.insert(0, sys.argv[1])
gc.collect()
before = gc.mem_alloc()
from predictor import PREDICTOR
blob = bytearray(open(sys.argv[2], 'rb').read())
PREDICTOR.load(blob, len(blob))
del blob
gc.collect()
used = gc.mem_alloc() - before
f = [3.0, 0.1, 2.0, 0.0, 1e-4, 0.0, 0.3]
n = 300
t = time.ticks_us()
for _ in range(n):
    PREDICTOR.predict(f)
print(time.ticks_diff(time.ticks_us(), t) / n, used)
"""


def collect(devices: int, tmp: Path) -> Dataset:
    s = settings_for(PRESET)
    side = int(np.sqrt(devices))
    with EmulatedBoard(rows=side, cols=side, seed=50, device=PRESET) as emu, memctl.Board(emu.port) as b:
        s.apply(b)
        files = []
        cells = [(r, c) for r in range(side) for c in range(side)]
        for k, sweep in enumerate(characterization_sweeps(PRESET, cells)):
            files.append(tmp / f"{k}.h5")
            write_hdf5(files[-1], characterize(b, sweep))
    return load(files)


def subset(data: Dataset, rows: np.ndarray) -> Dataset:
    return Dataset(data.x[rows], data.y[rows], data.curve[rows], data.i_min, data.i_max)


def test_mse(data: Dataset, train_rows: np.ndarray, test_rows: np.ndarray) -> float:
    r = fit(subset(data, train_rows))
    return float(np.mean((r.model.predict(data.x[test_rows]) - data.y[test_rows]) ** 2))


def adaptation(blob: bytes, devices: int) -> dict:
    """The same targets on the same (unseen) devices, adaptation on and off."""
    s = settings_for(PRESET)
    side = int(np.sqrt(devices))
    out = {}
    for adapt in (True, False):
        with EmulatedBoard(rows=side, cols=side, seed=51, device=PRESET) as emu, memctl.Board(emu.port) as b:
            s.apply(b)
            b.configure(v_read=0.5)
            b.load_predictor(blob)
            afe = emu.afe()
            lo, hi = afe.ranges()
            afe.close()
            targets = lo + (hi - lo) * np.random.default_rng(5).uniform(0.2, 0.45, lo.shape)
            algo = dataclasses.replace(s.predicted_trains, adapt=adapt)
            r = b.program(targets, tolerance=s.tolerance, max_pulses=300, algorithm=algo)
        out["adaptive" if adapt else "static"] = {"success": float(r.ok.mean()), "pulses_mean": float(r.pulses.mean())}
    return out


def mpy_cost(blob: bytes) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "m.mcpr").write_bytes(blob)
        (Path(tmp) / "t.py").write_text(MPY_TIMER)
        out = subprocess.run(
            [
                micropython_executable(),
                "-X",
                "heapsize=256K",
                str(Path(tmp) / "t.py"),
                str(staged()),
                str(Path(tmp) / "m.mcpr"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    us, used = out.stdout.split()
    return float(us), int(used)


def per_call_us(fn, n: int = 2000) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--devices", type=int, default=16)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = collect(a.devices, Path(tmp))
    rng = np.random.default_rng(0)
    curves = np.unique(data.curve)
    test_curves = rng.choice(curves, max(1, len(curves) // 5), replace=False)
    test_rows = np.flatnonzero(np.isin(data.curve, test_curves))
    pool = np.flatnonzero(~np.isin(data.curve, test_curves))
    report: dict = {"machine": platform.platform(), "rows": int(len(data.y)), "variance": float(data.y.var())}

    full = fit(subset(data, pool))
    no_i = Dataset(data.x.copy(), data.y, data.curve, data.i_min, data.i_max)
    no_i.x[:, 6] = 0.0  # a constant column carries nothing
    report["data_study"] = {
        "with_I_n": float(np.mean((full.model.predict(data.x[test_rows]) - data.y[test_rows]) ** 2)),
        "without_I_n": test_mse(no_i, pool, test_rows),
    }
    sizes = {}
    for frac in (0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0):
        n = max(30, int(frac * len(data.y)))
        rows = rng.choice(pool, min(n, len(pool)), replace=False)
        if len(np.unique(data.curve[rows])) < 5:
            continue
        sizes[frac] = test_mse(data, rows, test_rows)
    report["data_size"] = sizes

    report["online_adaptation"] = adaptation(full.int8_blob, a.devices)

    m = full.model
    x1 = data.x[:1]
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_export.float_model(m).SerializeToString(), providers=["CPUExecutionProvider"])
    us_f, ram_f = mpy_cost(full.blob)
    us_q, ram_q = mpy_cost(full.int8_blob)
    macs = sum(w.size for w in m.weights)
    report["cost"] = {
        "params": m.n_params,
        "flop_per_inference": 2 * macs + sum(b.size for b in m.biases),
        "paper_flop_A1": 896,
        "micropython_float_us": us_f,
        "micropython_int8_us": us_q,
        "numpy_us": per_call_us(lambda: m.predict(x1)),
        "onnxruntime_us": per_call_us(lambda: sess.run(None, {"features": x1.astype(np.float32)})),
        "firmware_heap_float_bytes": ram_f,
        "firmware_heap_int8_bytes": ram_q,
        "blob_bytes_float": len(full.blob),
        "blob_bytes_int8": len(full.int8_blob),
        "test_mse_float": full.mse["test"],
        "test_mse_int8": full.int8_mse["test"],
    }

    print(f"### predictor on {PRESET}: {report['rows']} pulse periods, target variance {report['variance']:.3g}\n")
    ds = report["data_study"]
    print("| features | test MSE |\n|---|---|")
    print(f"| six pulse features + scaled read current | {ds['with_I_n']:.3g} |")
    print(f"| six pulse features only (paper 004) | {ds['without_I_n']:.3g} |\n")
    print("| share of data | test MSE (ours) | paper 004 A1 |\n|---|---|---|")
    for frac, mse in sizes.items():
        print(f"| {frac:.1%} | {mse:.3g} | {PAPER_A1.get(frac, '-')} |")
    ad = report["online_adaptation"]
    print("\n| predictor-guided (int8) | success | pulses mean |\n|---|---|---|")
    for k, v in ad.items():
        print(f"| {k} output scale | {v['success']:.0%} | {v['pulses_mean']:.1f} |")
    c = report["cost"]
    print("\n| cost | value |\n|---|---|")
    for k, v in c.items():
        print(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |")
    print(
        f"\nint8 / float test MSE: {c['test_mse_int8'] / c['test_mse_float']:.3f} (target <= 1.1); "
        f"MicroPython float / numpy time: {c['micropython_float_us'] / c['numpy_us']:.1f}x"
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
