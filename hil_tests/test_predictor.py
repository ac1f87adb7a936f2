"""Predictor round trip: characterize -> fit -> blob -> LOAD_PREDICTOR ->
predictor-guided programming under MicroPython; bad blobs change nothing."""

from __future__ import annotations

import numpy as np
import pytest

import memctl
from memctl import protocol
from memctl.characterize import characterize, write_hdf5
from memctl.export import check
from memctl.export.train import fit, load
from memctl.firmware_image import staged
from memctl.tuning import characterization_sweeps, settings_for
from memctl_emulator import EmulatedBoard
from memctl_shared import predictor_blob

PRESET = "hfo2_tio2_bilayer"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, hal):
    """A predictor fitted on one board's devices (seed 50), characterized on this front end (the rv32 tests
    need the model, not a characterization at a seventh of the speed: theirs come from the unix port)."""
    tmp = tmp_path_factory.mktemp("predictor")
    s = settings_for(PRESET)
    devices = [(r, c) for r in range(3) for c in range(3)]
    front_end = "emulated" if hal == "rv32" else hal
    with EmulatedBoard(rows=3, cols=3, seed=50, device=PRESET, hal=front_end) as emu, memctl.Board(emu.port) as b:
        b.set_limits(s.limits.v_pulse, s.limits.width, s.limits.v_read)
        files = []
        for k, sweep in enumerate(characterization_sweeps(PRESET, devices)):
            files.append(tmp / f"c{k}.h5")
            write_hdf5(files[-1], characterize(b, sweep))
    data = load(files)
    return fit(data), data


def test_fit_learns_the_increments(trained):
    result, data = trained
    assert result.model.n_params <= 600  # A1-sized (paper 004: 513)
    assert result.mse["test"] < 0.3 * np.var(data.y)  # explains most of the variance on unseen curves
    assert predictor_blob.check(result.blob, len(result.blob)) == 3


@pytest.mark.parametrize(
    "blob_kind, seed, max_pulses, min_success", [("blob", 51, 300, 0.75), ("int8_blob", 53, 1000, 1.0)]
)
def test_predictor_guided_programming_on_other_devices(trained, blob_kind, seed, max_pulses, min_success):
    """Float and int8 predictors, each on devices the model never saw."""
    result, _ = trained
    s = settings_for(PRESET)
    with EmulatedBoard(rows=3, cols=3, seed=seed, device=PRESET) as emu, memctl.Board(emu.port) as b:
        b.set_limits(s.limits.v_pulse, s.limits.width, s.limits.v_read)
        b.configure(v_read=0.5)
        assert b.info().predictor_params == 0
        assert b.load_predictor(getattr(result, blob_kind)) == result.model.n_params
        assert b.info().predictor_params == result.model.n_params
        afe = emu.afe()
        lo, hi = afe.ranges()
        afe.close()
        targets = lo + (hi - lo) * np.random.default_rng(seed - 49).uniform(0.2, 0.45, lo.shape)
        res = b.program(targets, tolerance=s.tolerance, max_pulses=max_pulses, algorithm=s.predicted_trains)
    assert res.ok.mean() >= min_success, res.status_names()
    assert np.all(np.abs(res.error[res.ok]) <= s.tolerance)


def test_corrupt_or_truncated_blob_is_refused_and_old_model_stays(trained):
    result, _ = trained
    blob = result.blob
    with EmulatedBoard(rows=2, cols=2, seed=52, device=PRESET) as emu, memctl.Board(emu.port) as b:
        b.load_predictor(blob)
        n = b.info().predictor_params
        corrupt = bytearray(blob)
        corrupt[40] ^= 0xFF
        with pytest.raises(ValueError, match="CRC"):
            b.load_predictor(bytes(corrupt))  # refused by the SDK before sending
        # Bypass the SDK check: the board refuses it too, and keeps the old model.

        from memctl_shared import wire

        with pytest.raises(memctl.FirmwareError, match="CRC"):
            chunk = protocol.encode_blob_chunk(wire.LOAD_PREDICTOR, 0, len(corrupt), corrupt[:1000])
            b.link.request(wire.T_LOAD_PREDICTOR, chunk)
            chunk = protocol.encode_blob_chunk(wire.LOAD_PREDICTOR, 1000, len(corrupt), corrupt[1000:])
            b.link.request(wire.T_LOAD_PREDICTOR, chunk)
        truncated = blob[:-10]
        with pytest.raises(ValueError):
            b.load_predictor(truncated)
        with pytest.raises(memctl.FirmwareError, match="out of order"):
            chunk = protocol.encode_blob_chunk(wire.LOAD_PREDICTOR, 500, len(blob), blob[500:600])
            b.link.request(wire.T_LOAD_PREDICTOR, chunk)
        assert b.info().predictor_params == n


def test_int8_quantization_keeps_accuracy(trained):
    result, _ = trained
    # Project target: int8 MSE <= 1.1 x float MSE.
    assert result.int8_mse["test"] <= 1.1 * result.mse["test"]
    assert predictor_blob.check(result.int8_blob, len(result.int8_blob)) == 3
    assert len(result.int8_blob) < 0.6 * len(result.blob)


def test_int8_firmware_inference_is_bit_exact(trained, tmp_path):
    """The board's integer inference under MicroPython equals the host's
    integer reference on every input, including saturating ones."""
    import json
    import subprocess
    from pathlib import Path

    from memctl.export.quantize import quantize
    from memctl.export.train import split
    from memctl_emulator import micropython_executable

    result, data = trained
    tr, _, te = split(data.curve, 0)
    q = quantize(result.model, data.x[tr])
    rng = np.random.default_rng(0)
    rows = np.concatenate([data.x[te][:200], data.x.mean(0) + 4 * data.x.std(0) * rng.normal(size=(100, 7))])
    (tmp_path / "rows.json").write_text("\n".join(json.dumps(r) for r in rows.tolist()))
    (tmp_path / "m.mcpr").write_bytes(q.to_blob(data.i_min, data.i_max))
    out = subprocess.run(
        [
            micropython_executable(),
            "-X",
            "heapsize=256K",
            str(Path(check.__file__).with_name("mpy_predictor.py")),
            str(staged()),
            str(tmp_path / "m.mcpr"),
            str(tmp_path / "rows.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    board = np.array([int(v) for v in out.stdout.split()])
    host = q.run_int(q.quantize_input(rows))[:, 0]
    np.testing.assert_array_equal(board, host)
    assert len(set(host.tolist())) > 20  # not a constant output


@pytest.mark.rv32(only=True)
def test_int8_inference_is_bit_exact_and_allocates_nothing_on_rv32(trained, tmp_path, rv32_flash):
    """On a 32-bit MicroPython (31-bit small ints) the integer inference still equals the host's integer
    reference, characterized on this board, and 100 inferences allocate no heap."""
    import json
    from pathlib import Path

    from memctl.export.quantize import quantize
    from memctl.export.train import split
    from memctl_emulator.rv32 import run_script

    result, data = trained
    tr, _, te = split(data.curve, 0)
    q = quantize(result.model, data.x[tr])
    rng = np.random.default_rng(0)
    rows = np.concatenate([data.x[te][:100], data.x.mean(0) + 4 * data.x.std(0) * rng.normal(size=(50, 7))])
    elf, fresh = rv32_flash
    flash = fresh()
    (flash / "rows.json").write_text("\n".join(json.dumps(r) for r in rows.tolist()))
    (flash / "m.mcpr").write_bytes(q.to_blob(data.i_min, data.i_max))
    out = run_script(elf, Path(check.__file__).with_name("mpy_predictor.py"), flash, ["", "m.mcpr", "rows.json"])
    board = np.array([int(v) for line in out for v in line.split()])
    host = q.run_int(q.quantize_input(rows))[:, 0]
    np.testing.assert_array_equal(board, host)
    assert len(set(host.tolist())) > 20  # not a constant output
    runner = Path(__file__).with_name("mpy_alloc_runner.py")
    allocated = [line for line in run_script(elf, runner, flash, ["", "m.mcpr", "100"]) if line.strip()]
    assert allocated == ["0"], allocated


def test_export_and_cross_check_every_runtime(trained, tmp_path):
    from memctl.export.check import cross_check, export

    result, data = trained
    d = export(result, data, tmp_path / "model")
    assert {p.name for p in d.iterdir()} >= {
        "predictor_f32.mcpr",
        "predictor_int8.mcpr",
        "model_f32.onnx",
        "model_int8.onnx",
        "model_int8.tflite",
        "check_inputs.npy",
        "meta.json",
    }
    rows = {r.runtime: r for r in cross_check(d)}
    scale = float(np.abs(data.y).max())
    assert rows["onnxruntime float"].max_deviation < 1e-4 * scale
    assert rows["firmware float (MicroPython)"].max_deviation < 1e-4 * scale
    assert rows["firmware int8 (MicroPython)"].max_deviation == 0
    assert rows["firmware int8 (MicroPython)"].verdict.startswith("exact")
    # Float requantization: one LSB on almost every input, rarely more (it compounds over the 3 layers).
    # Requantizing their own way: >= 95 % of outputs within 1 LSB (else MISMATCH, below), rarely more.
    assert rows["onnxruntime int8 QDQ"].max_deviation <= 3
    assert rows["TFLite Micro int8"].max_deviation == 0  # the runtime MCUs use: same arithmetic
    assert rows["LiteRT int8 (builtin kernels)"].max_deviation <= 3  # optimized kernels round their own way
    assert rows["LiteRT int8 (XNNPACK delegate)"].max_deviation <= 3
    assert "MISMATCH" not in {r.verdict for r in rows.values()}
