"""Export a fitted predictor to a model directory and cross-check every
runtime on the same inputs ("three targets, one truth").

    MODEL_DIR/
      predictor_f32.mcpr   firmware blob, float32
      predictor_int8.mcpr  firmware blob, int8
      model_f32.onnx       float reference
      model_int8.onnx      int8 QDQ
      model_int8.tflite    int8 FULLY_CONNECTED (LiteRT and TFLite Micro)
      check_inputs.npy     inputs the check runs (held-out features)
      meta.json            features, scaling, MSEs

The int8 truth is the integer arithmetic the firmware implements (fixedpoint.py), which
the host reference reproduces bit for bit. Runtimes that requantize in float
(onnxruntime on a QDQ graph) agree within one LSB on almost every input; a
rounding the other way in one layer moves the next by its weight, so a rare
output differs by more (at most one per layer). The report says which.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from memctl.export import onnx_export
from memctl.export.quantize import QModel
from memctl.export.train import MLP, Dataset, FitResult


def export(result: FitResult, data: Dataset, out_dir: str | Path, n_check: int = 500) -> Path:
    """Write every target of one fitted predictor; check inputs are held-out rows."""
    q = result.qmodel
    test = data.x[result.test_mask] if result.test_mask is not None and result.test_mask.any() else data.x
    inputs = test[:n_check]
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / "predictor_f32.mcpr").write_bytes(result.blob)
    (d / "predictor_int8.mcpr").write_bytes(result.int8_blob)
    onnx.save(onnx_export.float_model(result.model), d / "model_f32.onnx")
    onnx.save(onnx_export.qdq_model(q), d / "model_int8.onnx")
    from memctl.export.tflite_export import to_tflite

    (d / "model_int8.tflite").write_bytes(to_tflite(q))
    np.save(d / "check_inputs.npy", inputs)
    meta = {
        "features": list(data.features),
        "feature_set": data.feature_set,
        "i_min": data.i_min,
        "i_max": data.i_max,
        "params": result.model.n_params,
        "mse": result.mse,
        "int8_mse": result.int8_mse,
    }
    (d / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return d


@dataclass
class Row:
    runtime: str
    compared_with: str
    max_deviation: float
    unit: str
    verdict: str


def _firmware(blob: Path, x: np.ndarray) -> np.ndarray:
    """The firmware's own inference under MicroPython (int8 codes or floats; rows x outputs)."""
    from memctl.firmware_image import staged
    from memctl_emulator import micropython_executable

    runner = Path(__file__).with_name("mpy_predictor.py")  # a MicroPython script
    with tempfile.TemporaryDirectory() as tmp:
        rows = Path(tmp) / "rows.json"
        rows.write_text("\n".join(json.dumps(r) for r in x.tolist()) + "\n")
        out = subprocess.run(
            [micropython_executable(), "-X", "heapsize=256K", str(runner), str(staged()), str(blob), str(rows)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    if out.returncode:
        raise RuntimeError(f"firmware inference failed: {(out.stderr or out.stdout)[-500:]}")
    return np.array([[float(v) for v in line.split()] for line in out.stdout.splitlines() if line.strip()])


def cross_check(model_dir: str | Path) -> list[Row]:
    from memctl_shared import predictor_blob

    d = Path(model_dir)
    need = ["check_inputs.npy", "predictor_f32.mcpr", "predictor_int8.mcpr", "model_f32.onnx"]
    absent = [n for n in need if not (d / n).is_file()]
    if absent:
        raise ValueError(
            f"{d} is not a folder written by `memctl predictor export` (no {', '.join(absent)}): export one first"
        )
    x = np.load(d / "check_inputs.npy", allow_pickle=False)
    blob_f = (d / "predictor_f32.mcpr").read_bytes()
    blob_q = (d / "predictor_int8.mcpr").read_bytes()
    m, q = _models(blob_f, blob_q)
    rows = []
    ref_f = m.predict_all(x)
    onnx_f = onnx_export.run(onnx.load(d / "model_f32.onnx"), x)[0]
    rows.append(
        Row("onnxruntime float", "numpy float", float(np.abs(onnx_f - ref_f).max()), "increment", "float32 rounding")
    )
    fw_f = _firmware(d / "predictor_f32.mcpr", x)
    rows.append(
        Row(
            "firmware float (MicroPython)",
            "numpy float",
            float(np.abs(fw_f - ref_f).max()),
            "increment",
            "float rounding",
        )
    )
    ref_q = q.run_int(q.quantize_input(x))
    steps = len(q.layers) + 1  # the input's quantization and each layer's requantization
    fw_q = _firmware(d / "predictor_int8.mcpr", x)
    rows.append(_int8_row("firmware int8 (MicroPython)", fw_q, ref_q, "same integer arithmetic", steps))
    _, code = onnx_export.run(onnx.load(d / "model_int8.onnx"), x)
    rows.append(_int8_row("onnxruntime int8 QDQ", code, ref_q, "float requantization", steps))
    from memctl.export import tflite_export

    model = (d / "model_int8.tflite").read_bytes()
    xq = q.quantize_input(x)
    for name, out, why in (
        ("LiteRT int8 (builtin kernels)", tflite_export.run_litert(model, xq), "optimized kernels"),
        ("LiteRT int8 (XNNPACK delegate)", tflite_export.run_litert(model, xq, delegates=True), "XNNPACK rounding"),
        ("TFLite Micro int8", tflite_export.run_tflm(model, xq), "gemmlowp"),
    ):
        rows.append(_int8_row(name, out, ref_q, why, steps))
    assert predictor_blob.check(blob_q, len(blob_q))
    return rows


def _int8_row(name: str, out: np.ndarray, ref: np.ndarray, why: str, steps: int) -> Row:
    """An int8 runtime against the integer truth. A runtime that requantizes its
    own way may round one step (the input, a layer's output) the other way, and
    a hidden unit one LSB off moves the next layer by its weight: one LSB on
    almost every input, rarely more, never more than one per step."""
    devs = np.abs(np.asarray(out, np.int64) - ref)
    dev, within = float(devs.max()), float(np.mean(devs <= 1))
    if dev == 0:
        verdict = f"exact ({why})"
    elif dev <= steps and within >= 0.95:
        verdict = f"within 1 LSB on {within:.1%} of inputs, at most {dev:.0f} ({why})"
    else:
        verdict = "MISMATCH"
    return Row(name, "host int8 reference", dev, "LSB", verdict)


def _models(blob_f: bytes, blob_q: bytes) -> tuple[MLP, QModel]:
    """Rebuild the host models from the blobs themselves (what the board runs)."""
    from memctl.export.quantize import QLayer
    from memctl_shared.predictor_blob import ACT_RELU, decode

    _, mean, std, _, _, _, layers, _ = decode(bytearray(blob_f), len(blob_f))
    m = MLP(tuple([layers[0][0]] + [lay[1] for lay in layers]))
    m.mean, m.std = np.array(mean), np.where(np.array(std) > 0, np.array(std), 1.0)
    for n_in, n_out, _, w, b in layers:
        m.weights.append(np.array(w).reshape(n_out, n_in))
        m.biases.append(np.array(b))
    _, mean, std, _, _, (s_in, zp_in), layers, _ = decode(bytearray(blob_q), len(blob_q))
    qlayers = []
    for n_in, n_out, act, s_out, zp_out, m0, sh, w, b in layers:
        wq = np.frombuffer(w, np.int8).reshape(n_out, n_in)
        qlayers.append(
            QLayer(
                wq, np.array(b, np.int64), np.array(m0), np.array(sh), np.ones(n_out), s_out, zp_out, act == ACT_RELU
            )
        )
    return m, QModel(np.array(mean), np.array(std), s_in, zp_in, qlayers)
