"""Deploy a small ONNX MLP onto the emulated crossbar and run it there."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import memctl
from memctl.deploy import DeployError, deploy, read_onnx


def mlp_onnx(weights, biases, acts) -> onnx.ModelProto:
    nodes, inits, x = [], [], "x"
    for k, (w, b, act) in enumerate(zip(weights, biases, acts, strict=True)):
        inits += [numpy_helper.from_array(w.astype(np.float32), f"w{k}"),
                  numpy_helper.from_array(b.astype(np.float32), f"b{k}")]  # fmt: skip
        nodes.append(helper.make_node("Gemm", [x, f"w{k}", f"b{k}"], [f"h{k}"], transB=1))
        x = f"h{k}"
        if act:
            nodes.append(helper.make_node(act, [x], [f"a{k}"]))
            x = f"a{k}"
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, weights[0].shape[1]])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [None, weights[-1].shape[0]])], inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    w = [rng.normal(size=(6, 4)), rng.normal(size=(3, 6))]
    b = [rng.normal(size=6) * 0.3, rng.normal(size=3) * 0.3]
    return w, b, mlp_onnx(w, b, ["Relu", None])


def digital(w, b, x):
    h = np.maximum(x @ w[0].T + b[0], 0)
    return h @ w[1].T + b[1]


def test_deploy_then_infer_matches_the_digital_model(model, board, emu, tmp_path):
    w, b, onnx_model = model
    dep = deploy(onnx_model, board, tolerance=0.3e-6, max_pulses=300)
    assert all(p.weight_rms_error < 0.05 * np.abs(w[p.layer]).max() for p in dep.placements)
    assert len(dep.placements) == 2  # one tile per layer on a 32x32 array
    cost = dep.cost()
    assert cost["pulses"] > 0 and cost["board_time_s"] > 0 and cost["energy_J"] > 0
    x = np.random.default_rng(1).uniform(-1, 1, (20, 4))
    want = digital(w, b, x)
    got = dep.run(board, x)
    assert np.all(np.argmax(got, 1) == np.argmax(want, 1))
    assert np.abs(got - want).max() < 0.1 * np.abs(want).max()
    dep.save(tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text())["format"] == "memctl-deployment"


def test_bad_models_are_refused_before_any_pulse(model, board, emu):
    w, b, _ = model
    afe = emu.afe()
    n0, _ = afe.truth()
    bad_nan = mlp_onnx([np.full((2, 4), np.nan)], [np.zeros(2)], [None])
    with pytest.raises(DeployError, match="NaN"):
        deploy(bad_nan, board)
    too_big = mlp_onnx([np.ones((20, 4))], [np.zeros(20)], [None])  # 40 columns > 32
    with pytest.raises(DeployError, match="needs 40 columns"):
        deploy(too_big, board)
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.ones((1, 1, 2, 2), np.float32), "w")])  # fmt: skip
    with pytest.raises(DeployError, match="unsupported ONNX op 'Conv'"):
        read_onnx(helper.make_model(graph))
    assert afe.truth()[0] == n0
    afe.close()
    assert isinstance(board, memctl.Board)


def test_cli_deploy_then_infer_from_the_manifest(model, emu, tmp_path, capsys):
    from memctl.cli import main

    w, b, onnx_model = model
    onnx.save(onnx_model, tmp_path / "m.onnx")
    port = ["--port", emu.port, "--no-progress"]
    assert main(["deploy", str(tmp_path / "m.onnx"), *port, "--manifest", str(tmp_path / "dep.json")]) == 0
    x = np.random.default_rng(2).uniform(-1, 1, (5, 4))
    np.save(tmp_path / "x.npy", x)
    assert main(["infer", str(tmp_path / "x.npy"), *port, "--manifest", str(tmp_path / "dep.json"),
                 "--out", str(tmp_path / "y.npy")]) == 0  # fmt: skip
    y = np.load(tmp_path / "y.npy")
    assert np.all(np.argmax(y, 1) == np.argmax(digital(w, b, x), 1))
    (tmp_path / "bad.json").write_text("{}")
    assert main(["infer", str(tmp_path / "x.npy"), *port, "--manifest", str(tmp_path / "bad.json")]) == 2
    assert "not a memctl deployment manifest" in capsys.readouterr().err


def test_column_calibration_reduces_the_error(model, board):
    """Coarse programming (loose tolerance) leaves gain/offset errors that a
    per-output calibration removes (paper 002)."""
    w, b, onnx_model = model
    dep = deploy(onnx_model, board, tolerance=3e-6, max_pulses=100)
    x = np.random.default_rng(4).uniform(-1, 1, (30, 4))
    want = digital(w, b, x)
    raw = np.abs(dep.run(board, x, calibrated=False) - want).mean()
    dep.calibrate(board, samples=24)
    cal = np.abs(dep.run(board, x) - want).mean()
    assert cal < raw


def test_a_layer_larger_than_one_array_is_tiled_across_boards():
    """20 inputs x 6 outputs on two 16x16 boards: two row blocks (21 rows with
    the bias), column bands split across the boards, partial sums on the host."""
    from memctl_emulation import EmulatedBoard

    rng = np.random.default_rng(6)
    w, b = [rng.normal(size=(6, 20))], [rng.normal(size=6) * 0.3]
    onnx_model = mlp_onnx(w, b, [None])
    with EmulatedBoard(rows=16, cols=16, seed=1) as e1, EmulatedBoard(rows=16, cols=16, seed=2) as e2:
        with memctl.Board(e1.port) as b1, memctl.Board(e2.port) as b2:
            dep = deploy(onnx_model, [b1, b2], tolerance=0.3e-6, max_pulses=300)
            assert {p.board for p in dep.placements} == {0, 1}
            assert all(p.rows <= 16 and p.cols <= 16 for p in dep.placements)
            assert {p.inputs for p in dep.placements} == {(0, 16), (16, 21)}
            x = rng.uniform(-1, 1, (10, 20))
            want = x @ w[0].T + b[0]
            got = dep.run([b1, b2], x)
            assert np.abs(got - want).max() < 0.1 * np.abs(want).max()
            with pytest.raises(DeployError, match="offer"):
                deploy(mlp_onnx([np.ones((20, 20))], [np.zeros(20)], [None]), [b1, b2])
