"""A deployment cannot go silently stale: the board keeps a fingerprint per tile, any pulse inside a
tile clears it, and deploy (resuming), infer and verify refuse boards that do not hold what the
manifest records, naming the tiles and how to re-program them."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

from memctl.cli import main
from memctl.deployment import Deployment, Layer
from memctl.onnx_mlp import to_onnx
from memctl_emulator import EmulatedBoard

RNG = np.random.default_rng(0)
W = [RNG.normal(size=(6, 4)), RNG.normal(size=(3, 6))]
B = [RNG.normal(size=6) * 0.3, RNG.normal(size=3) * 0.3]


def digital(x: np.ndarray) -> np.ndarray:
    return np.maximum(x @ W[0].T + B[0], 0) @ W[1].T + B[1]


def text(capsys) -> str:
    out = capsys.readouterr()
    return " ".join((out.out + out.err).split())


@pytest.fixture(scope="module")
def deployed(hal, tmp_path_factory):
    """A board holding a two-tile deployment made with the CLI, and its manifest."""
    d = tmp_path_factory.mktemp("dep")
    onnx.save(to_onnx([Layer(W[0], B[0], "Relu"), Layer(W[1], B[1], None)]), d / "m.onnx")
    with EmulatedBoard(rows=8, cols=24, seed=3) as emu:
        argv = ["deploy", str(d / "m.onnx"), "--port", emu.port, "--no-progress", "--manifest", str(d / "dep.json")]
        assert main(argv) == 0
        yield emu, d


def test_a_manifest_copied_to_another_board_is_refused_and_nothing_is_pulsed(deployed, capsys, tmp_path):
    emu, d = deployed
    capsys.readouterr()
    copy = tmp_path / "copy.json"
    shutil.copy(d / "dep.json", copy)
    np.save(tmp_path / "x.npy", np.zeros((1, 4)))
    with EmulatedBoard(rows=8, cols=24, seed=4) as other:
        afe = other.afe()
        before = afe.stats().pulses
        port = ["--port", other.port, "--no-progress"]
        assert main(["deploy", str(d / "m.onnx"), *port, "--manifest", str(copy)]) == 2
        out = text(capsys)
        assert "tile 1 (layer 0) on board 0" in out and "tile 2 (layer 1)" in out and "missing" in out, out
        assert "Nothing was pulsed" in out and "--repair" in out and "resumed" not in out
        assert main(["infer", str(tmp_path / "x.npy"), *port, "--manifest", str(copy)]) == 2
        assert "missing" in text(capsys)
        assert afe.stats().pulses == before
        afe.close()
    assert json.loads(copy.read_text()) == json.loads((d / "dep.json").read_text())  # the journal is untouched


def test_verify_catches_a_reprogrammed_device_and_repair_reprograms_its_tile(deployed, capsys):
    emu, d = deployed
    port = ["--port", emu.port, "--no-progress"]
    manifest = ["--manifest", str(d / "dep.json")]
    assert main(["verify", *port, *manifest]) == 0, text(capsys)
    assert "every tile holds its fingerprint" in text(capsys)
    dep = Deployment.load(d / "dep.json")
    second = dep.placements[1]
    r, c = second.rows[2], second.cols[1]
    assert main(["pulse", str(r), str(c), "1.2", "1e-4", *port]) == 0  # one pulse inside tile 2
    capsys.readouterr()
    assert main(["verify", *port, *manifest, "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert [(t["tile"], t["layer"], t["state"]) for t in report["tiles"]] == [(0, 0, "ok"), (1, 1, "reprogrammed")]
    assert not report["ok"]
    assert main(["verify", *port, *manifest]) == 3
    assert "1 tile(s) not as deployed; nothing was pulsed" in text(capsys)
    np.save(d / "x.npy", np.zeros((1, 4)))
    assert main(["infer", str(d / "x.npy"), *port, *manifest]) == 2
    assert "tile 2 (layer 1) on board 0" in text(capsys)
    afe = emu.afe()
    _, g0 = afe.truth()
    assert main(["deploy", str(d / "m.onnx"), *port, *manifest, "--repair"]) == 0
    _, g1 = afe.truth()
    first = dep.placements[0]
    rr, cc = np.meshgrid(first.rows, first.cols, indexing="ij")
    assert np.array_equal(g0[rr, cc], g1[rr, cc])  # the tile that still held was not touched
    afe.close()
    assert main(["verify", *port, *manifest]) == 0
    x = np.random.default_rng(5).uniform(-1, 1, (8, 4))
    np.save(d / "x.npy", x)
    assert main(["infer", str(d / "x.npy"), *port, *manifest, "--out", str(d / "y.npy")]) == 0
    assert np.mean(np.argmax(np.load(d / "y.npy"), 1) == np.argmax(digital(x), 1)) >= 0.85


def test_inputs_outside_the_encoding_range_are_refused_unless_clipped(deployed, capsys, tmp_path):
    emu, d = deployed
    port = ["--port", emu.port, "--no-progress"]
    r = Deployment.load(d / "dep.json").input_range  # what the first layer encodes unclipped
    assert 1 <= r < 10
    x = np.zeros((3, 4))
    x[2, 1] = 1.5 * r  # e.g. a z-scored feature far out in its tail
    np.save(tmp_path / "x.npy", x)
    infer = ["infer", str(tmp_path / "x.npy"), *port, "--manifest", str(d / "dep.json")]
    capsys.readouterr()
    assert main(infer) == 2
    out = text(capsys)
    assert f"feature 1 of sample 2 is {1.5 * r:.4g}" in out and f"-{r:.3g}..{r:.3g}" in out and "--clip" in out, out
    assert main([*infer, "--clip", "--out", str(tmp_path / "y.npy")]) == 0
    clipped = np.clip(x, -r, r)
    assert np.array_equal(np.argmax(np.load(tmp_path / "y.npy"), 1), np.argmax(digital(clipped), 1))


def test_deploy_applies_the_input_scaling_it_is_given(tmp_path, capsys):
    """A model trained on standardized inputs, deployed with the scaler's mean and std: infer takes raw
    inputs (here far outside +-1) and agrees with the model on the standardized ones."""
    mean, std = np.array([5.0, -3.0, 100.0, 0.5]), np.array([2.0, 0.5, 30.0, 0.1])
    np.savez(tmp_path / "scaler.npz", mean=mean, std=std)
    onnx.save(to_onnx([Layer(W[0], B[0], "Relu"), Layer(W[1], B[1], None)]), tmp_path / "m.onnx")
    raw = mean + std * np.random.default_rng(8).normal(size=(10, 4)).clip(-3, 3)
    np.save(tmp_path / "raw.npy", raw)
    with EmulatedBoard(rows=8, cols=24, seed=6) as emu:
        port = ["--port", emu.port, "--no-progress"]
        manifest = ["--manifest", str(tmp_path / "dep.json")]
        argv = ["deploy", str(tmp_path / "m.onnx"), *port, *manifest, "--input-scaling", str(tmp_path / "scaler.npz")]
        assert main(argv) == 0, text(capsys)
        assert main(["infer", str(tmp_path / "raw.npy"), *port, *manifest, "--out", str(tmp_path / "y.npy")]) == 0
    y = np.load(tmp_path / "y.npy")
    want = digital((raw - mean) / std)
    assert np.mean(np.argmax(y, 1) == np.argmax(want, 1)) >= 0.8, (y, want)
