"""Bad input everywhere: corrupt files, NaN/inf, wrong shapes,
targets outside the device range. Each gets a clear error, and the board's
array is left exactly as it was (checked against the front end's truth)."""

from __future__ import annotations

import numpy as np
import pytest

from memctl import protocol
from memctl.cli import main
from memctl.deployment import DeployError, Layer, deploy, read_onnx
from memctl.errors import FirmwareError, SafetyLimitError
from memctl_shared import wire

RV32 = True  # also on the 32-bit RISC-V target
RP2 = True  # and on the rp2 board


@pytest.fixture
def untouched(emu):
    """Fails the test if anything reached the array."""
    afe = emu.afe()
    n0, g0 = afe.truth()
    yield
    n1, g1 = afe.truth()
    afe.close()
    assert n1 == n0 and np.array_equal(g0, g1)


def test_bad_numbers_and_shapes_through_the_sdk(board, untouched):
    nan, inf = float("nan"), float("inf")
    cases = [
        (lambda: board.program(np.array([[nan]])), ValueError, "finite"),
        (lambda: board.program(np.array([[2.0]])), ValueError, "0 < G < 1"),
        (lambda: board.program(np.full(4, 50e-6)), ValueError, "2-D"),
        (lambda: board.program(np.full((40, 2), 50e-6)), ValueError, "does not fit"),
        (lambda: board.program(np.full((2, 2), 50e-6), tolerance=-1), ValueError, "tolerance"),
        (lambda: board.vmm(np.full(32, inf)), ValueError, "finite"),
        (lambda: board.vmm(np.zeros(31)), ValueError, "shape"),
        (lambda: board.vmm(np.full(32, 5.0)), SafetyLimitError, "read limit"),
        (lambda: board.pulse(0, 0, nan, 1e-4), ValueError, "finite"),
        (lambda: board.pulse(0, 0, 9.0, 1e-4), SafetyLimitError, "safety limit"),
        (lambda: board.pulse(0, 40, 1.0, 1e-4), IndexError, "outside"),
        (lambda: board.set_limits(nan, 1e-3, 0.2), ValueError, "finite"),
        (lambda: board.set_limits(1e6, 1e-3, 0.2), SafetyLimitError, "DAC range"),
        (lambda: board.configure(v_read=inf), ValueError, "finite"),
        (lambda: board.pulse_train(0, 0, 3, v_set=1.0, t_set=nan), ValueError, "finite"),
        (lambda: board.load_predictor(b"MCPR" + bytes(40)), ValueError, "CRC|size"),
        (lambda: board.load_network(b"MNET" + bytes(40)), ValueError, "CRC|size"),
        (lambda: deploy([Layer(np.full((2, 3), nan), np.zeros(2), None)], board), DeployError, "NaN"),
        (
            lambda: deploy([Layer(np.ones((2, 3)), np.zeros(2), None)], board, g_range=(1e-4, 1e-5)),
            DeployError,
            "g_range",
        ),
    ]
    for call, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            call()


def test_bad_frames_past_the_sdk_are_refused_by_the_firmware(raw, untouched):

    for mtype, payload, code in [
        (wire.T_PULSE, protocol.encode_pulse(0, 0, float("nan"), 1e-4), wire.E_LIMIT),
        (wire.T_PULSE, protocol.encode_pulse(0, 0, 1.0, float("inf")), wire.E_LIMIT),
        (wire.T_PULSE, b"\x00" * 5, wire.E_PAYLOAD),
        (wire.T_VMM, protocol.encode_vmm(np.full(32, np.nan)), wire.E_LIMIT),
        (wire.T_PROGRAM, b"\x01" * 41, wire.E_PAYLOAD),
        (wire.T_RUN_NETWORK, protocol.encode_run_network(np.zeros((1, 1)), 1), wire.E_PAYLOAD),
        (0x55, b"", wire.E_UNKNOWN),
    ]:
        mt, _, p = raw.request(mtype, 9000 + mtype, payload)
        assert mt == wire.T_ERROR | wire.RESP and p[0] == code, (mtype, p)


def test_corrupt_files_get_clear_errors_from_the_cli(emu, tmp_path, capsys, untouched):
    port = ["--port", emu.port, "--no-progress"]
    (tmp_path / "bad.h5").write_bytes(b"\x89HDF\r\n garbage")
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage that is not a model")
    (tmp_path / "bad.mcpr").write_bytes(b"MCPR" + bytes(60))
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(tmp_path / "nan.npy", np.full((2, 2), np.nan))
    np.save(tmp_path / "wide.npy", np.full((2, 2), 5e-3))
    runs = [
        (["predictor", "fit", str(tmp_path / "bad.h5"), "--out", str(tmp_path / "m.mcpr")], "HDF5"),
        (["deploy", str(tmp_path / "bad.onnx"), *port, "--manifest", str(tmp_path / "d.json")], "ONNX"),
        (["predictor", "load", str(tmp_path / "bad.mcpr"), *port], "CRC"),
        (["program", str(tmp_path / "bad.npy"), *port], "npy"),
        (["program", str(tmp_path / "nan.npy"), *port], "finite"),
        (["program", str(tmp_path / "wide.npy"), *port, "--device", "pt_al2o3_tio2_passive"], "outside"),
    ]
    for argv, msg in runs:
        try:
            rc, said = main(argv), capsys.readouterr().err
        except SystemExit as e:  # argument-level refusals exit with their message
            rc, said = 2, str(e)
        assert rc == 2 and msg.lower() in said.lower(), (argv, said)
    with pytest.raises(DeployError, match="not a readable ONNX model"):
        read_onnx(tmp_path / "bad.onnx")


def test_a_board_without_limits_refuses_to_drive_its_array():
    import memctl
    from memctl_emulator import EmulatedBoard

    with EmulatedBoard(seed=3, limits=None) as emu, memctl.Board(emu.port, progress=False) as b:
        with pytest.raises(FirmwareError, match="limits not set"):
            b.read_array()
        afe = emu.afe()
        assert afe.truth()[0] == 0
        afe.close()
