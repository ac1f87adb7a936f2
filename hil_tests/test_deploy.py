"""Deploy a small ONNX MLP onto the emulated crossbar and run it there."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import memctl
from memctl.deployment import DeployError, Deployment, Layer, deploy, read_onnx
from memctl.onnx_mlp import to_onnx


def mlp_onnx(weights, biases, acts) -> onnx.ModelProto:
    return to_onnx(
        [Layer(np.asarray(w, float), np.asarray(b, float), a) for w, b, a in zip(weights, biases, acts, strict=True)]
    )


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    w = [rng.normal(size=(6, 4)), rng.normal(size=(3, 6))]
    b = [rng.normal(size=6) * 0.3, rng.normal(size=3) * 0.3]
    return w, b, mlp_onnx(w, b, ["Relu", None])


def digital(w, b, x):
    h = np.maximum(x @ w[0].T + b[0], 0)
    return h @ w[1].T + b[1]


@pytest.mark.rv32
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
    before, net = board.info(), board.network
    bad_nan = mlp_onnx([np.full((2, 4), np.nan)], [np.zeros(2)], [None])
    with pytest.raises(DeployError, match="NaN"):
        deploy(bad_nan, board)
    with pytest.raises(DeployError, match="NaN or inf"):
        deploy(mlp_onnx([np.ones((2, 4))], [np.array([np.inf, 0])], [None]), board)
    with pytest.raises(DeployError, match="3 inputs, previous layer has 2 outputs"):
        deploy([Layer(np.ones((2, 4)), np.zeros(2), None), Layer(np.ones((1, 3)), np.zeros(1), None)], board)
    with pytest.raises(DeployError, match="do not match"):
        deploy([Layer(np.ones((2, 4)), np.zeros(3), None)], board)
    too_big = mlp_onnx([np.ones((20, 4))], [np.zeros(20)], [None])  # 40 columns > 32
    with pytest.raises(DeployError, match="needs 40 columns"):
        deploy(too_big, board)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.ones((1, 1, 2, 2), np.float32), "w")],
    )
    with pytest.raises(DeployError, match="unsupported ONNX op 'Conv'"):
        read_onnx(helper.make_model(graph))
    assert afe.truth()[0] == n0
    afe.close()
    after = board.info()  # nor was anything configured or loaded
    kept = ("limits", "v_read", "bias_scheme", "predictor_params")
    assert [getattr(after, k) for k in kept] == [getattr(before, k) for k in kept] and board.network is net


def test_cli_deploy_then_infer_from_the_manifest(model, emu, tmp_path, capsys):
    from memctl.cli import main

    w, b, onnx_model = model
    onnx.save(onnx_model, tmp_path / "m.onnx")
    port = ["--port", emu.port, "--no-progress"]
    assert main(["deploy", str(tmp_path / "m.onnx"), *port, "--manifest", str(tmp_path / "dep.json")]) == 0
    x = np.random.default_rng(2).uniform(-1, 1, (5, 4))
    np.save(tmp_path / "x.npy", x)
    assert (
        main(
            [
                "infer",
                str(tmp_path / "x.npy"),
                *port,
                "--manifest",
                str(tmp_path / "dep.json"),
                "--out",
                str(tmp_path / "y.npy"),
            ]
        )
        == 0
    )
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
    from memctl_emulator import EmulatedBoard

    rng = np.random.default_rng(6)
    w, b = [rng.normal(size=(6, 20))], [rng.normal(size=6) * 0.3]
    onnx_model = mlp_onnx(w, b, [None])
    with EmulatedBoard(rows=16, cols=16, seed=1) as e1, EmulatedBoard(rows=16, cols=16, seed=2) as e2:
        with memctl.Board(e1.port) as b1, memctl.Board(e2.port) as b2:
            dep = deploy(onnx_model, [b1, b2], tolerance=0.3e-6, max_pulses=300)
            assert {p.board for p in dep.placements} == {0, 1}
            assert all(len(p.rows) <= 16 and len(p.cols) <= 16 for p in dep.placements)
            assert {p.inputs for p in dep.placements} == {(0, 16), (16, 21)}
            x = rng.uniform(-1, 1, (10, 20))
            want = x @ w[0].T + b[0]
            got = dep.run([b1, b2], x)
            assert np.abs(got - want).max() < 0.1 * np.abs(want).max()
            with pytest.raises(DeployError, match="offer"):
                deploy(mlp_onnx([np.ones((20, 20))], [np.zeros(20)], [None]), [b1, b2])


@pytest.mark.rv32
def test_the_controller_runs_the_whole_mlp_like_the_host(model, board):
    """RUN_NETWORK (firmware: VMM per tile, bias, gain/offset, activation,
    next layer's input) gives what the host computes from per-tile VMMs, for a
    batch larger than one frame."""
    w, b, onnx_model = model
    dep = deploy(onnx_model, board, tolerance=0.5e-6, max_pulses=300)
    dep.calibrate(board)
    x = np.random.default_rng(7).uniform(-1, 1, (70, 4))  # 70 x 4 floats: two RUN_NETWORK frames
    on_board = dep.run(board, x)
    on_host = dep.run(board, x, on_board=False)
    assert board.network is not None
    assert np.abs(on_board - on_host).max() < 5e-3 * np.abs(on_host).max()  # two analog reads: read noise only
    assert np.all(np.argmax(on_board, 1) == np.argmax(digital(w, b, x), 1))
    with pytest.raises(ValueError, match="shape"):
        dep.run(board, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="finite"):
        dep.run(board, np.full((1, 4), np.nan))


def test_a_bad_network_blob_is_refused_and_the_old_one_stays(model, board):
    from memctl.errors import FirmwareError
    from memctl_shared import network_blob, wire

    w, b, onnx_model = model
    dep = deploy(onnx_model, board, tolerance=1e-6, max_pulses=200)
    x = np.random.default_rng(8).uniform(-1, 1, (4, 4))
    before = dep.run(board, x)
    good = dep.network_blob()
    rows, cols = board.shape
    bad_row = dep.placements[0].rows[0]
    dep.placements[0].rows[0] = rows  # outside the array
    with pytest.raises(network_blob.BlobError, match="outside the array"):
        board.load_network(dep.network_blob())
    dep.placements[0].rows[0] = bad_row
    corrupt = bytearray(good)
    corrupt[20] ^= 0xFF
    for blob in (bytes(corrupt), good[:-9] + good[-4:]):  # flipped byte, truncated
        with pytest.raises(FirmwareError, match="CRC|truncated|length"):
            board._stream_blob(wire.LOAD_NETWORK, blob, "raw", False)
    assert np.abs(board.run_network(x) - before).max() < 0.01 * np.abs(before).max()


def test_stuck_devices_are_placed_around(tmp_path):
    """Paper 003: a few devices cannot be tuned. With 10 % stuck devices the
    pre-scan finds them and hardware-aware placement (rows and pairs
    permuted, partners compensating) gives a smaller weight error than
    placing obliviously."""
    from memctl_emulator import EmulatedBoard

    dev = tmp_path / "stuck.json"
    dev.write_text(json.dumps({"g_min": 10e-6, "g_max": 100e-6, "v_set": 0.85, "v_reset": -1.1, "stuck_fraction": 0.1}))
    rng = np.random.default_rng(11)
    w, b = [rng.normal(size=(8, 12))], [rng.normal(size=8) * 0.3]
    layers = [Layer(w[0], b[0], None)]
    errors = {}
    for aware in (False, True):
        with EmulatedBoard(rows=32, cols=32, seed=5, device=str(dev)) as emu, memctl.Board(emu.port) as board:
            dep = deploy(layers, board, tolerance=0.5e-6, max_pulses=150, aware=aware)
            errors[aware] = dep.layer_errors()[0]
            if aware:
                stuck = np.array(dep.scans[0]["defect"])
                assert 0.03 < stuck[:, :16].mean() < 0.25
                p = dep.placements[0]
                assert len(set(p.rows)) == 13 and sorted(p.cols) == list(range(16))
    assert errors[True] < 0.6 * errors[False]


def test_an_interrupted_deployment_resumes_from_its_journal(model, emu, board, tmp_path):
    """The manifest is a journal: after an interruption (here: its state
    after the first of two tiles) deploy() programs only what is missing,
    and a journal of another deployment is refused."""
    w, b, onnx_model = model
    journal = tmp_path / "dep.json"
    full = deploy(onnx_model, board, tolerance=0.5e-6, max_pulses=300, manifest=journal)
    assert full.complete and Deployment.load(journal).complete
    m = json.loads(journal.read_text())
    m["placements"] = m["placements"][:1]
    journal.write_text(json.dumps(m))
    assert not Deployment.load(journal).complete
    with pytest.raises(DeployError, match="incomplete"):
        Deployment.load(journal).run(board, np.zeros((1, 4)))
    afe = emu.afe()
    before, g0 = afe.truth()
    resumed = deploy(onnx_model, board, tolerance=0.5e-6, max_pulses=300, manifest=journal)
    after, g1 = afe.truth()
    afe.close()
    first = resumed.placements[0]
    assert first.achieved == full.placements[0].achieved
    r, c = np.meshgrid(first.rows, first.cols, indexing="ij")
    assert np.array_equal(g0[r, c], g1[r, c])  # the finished tile was not touched
    assert resumed.complete and after - before <= resumed.placements[1].pulses
    other = mlp_onnx([w[0] * 2, w[1]], b, ["Relu", None])
    with pytest.raises(DeployError, match="different deployment"):
        deploy(other, board, manifest=journal)


def test_levels_quantize_the_targets(model, board):
    w, b, onnx_model = model
    dep = deploy(onnx_model, board, tolerance=1e-6, max_pulses=200, levels=8)
    t = np.concatenate([np.ravel(p.targets) for p in dep.placements])
    steps = (t - 10e-6) / (90e-6 / 7)
    assert np.allclose(steps, np.round(steps), atol=1e-6)


def test_student_t_program_error_fitted_from_the_boards_own_results(board):
    """Paper 001 eqs. 4-5: the error model comes from programming results on
    this board; write-verify keeps its errors inside the tolerance."""
    from memctl.noise_model import StudentTError

    targets = np.random.default_rng(12).uniform(15e-6, 95e-6, (8, 8))
    res = board.program(targets, tolerance=1e-6, max_pulses=200, origin=(16, 16))
    assert res.ok.all()
    model = StudentTError.fit(res.targets, res.final, (10e-6, 100e-6), bins=2)
    span = 90e-6
    assert np.all(np.abs(model.loc) < 1e-6 / span) and np.all(model.scale < 1e-6 / span)
    y = model.sample(np.full(1000, 0.5), np.random.default_rng(0))
    assert np.mean(np.abs(y - 0.5) < 1.5e-6 / span) > 0.9
