"""Many boards at once: a board served over RFC 2217 (memctl serve) answers as a local one, a dropped TCP
connection is reconnected like a pulled cable, and a deployment over a local and a served board programs
both at once, journals what finished when one fails or on Ctrl-C, and resumes."""

from __future__ import annotations

import ctypes
import json
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest

import memctl
from memctl.deployment import Deployment, Layer, deploy
from memctl.errors import PortError, SafetyLimitError
from memctl.serve import BoardServer
from memctl_emulator import EmulatedBoard
from memctl_shared import predictor_blob

# pyserial's RFC 2217 client names its reader thread the old way.
pytestmark = pytest.mark.filterwarnings(r"ignore:set(Daemon|Name)\(\) is deprecated:DeprecationWarning")

RNG = np.random.default_rng(17)
# 15 inputs -> 14 (Relu) -> 2 on two 16x16 boards: layer 0 (16 rows with the bias, 28 columns) is split
# over both boards (8 outputs on board 0, 6 on board 1), layer 1 (15 rows, 4 columns) goes to board 1.
LAYERS = [
    Layer(RNG.normal(size=(14, 15)), RNG.normal(size=14) * 0.3, "Relu"),
    Layer(RNG.normal(size=(2, 14)), RNG.normal(size=2) * 0.3, None),
]
OPTIONS = {"tolerance": 0.3e-6, "max_pulses": 300}


def digital(x: np.ndarray) -> np.ndarray:
    return np.maximum(x @ LAYERS[0].weight.T + LAYERS[0].bias, 0) @ LAYERS[1].weight.T + LAYERS[1].bias


@pytest.fixture(scope="module")
def served(hal):
    """An emulated board and an RFC 2217 server for it (in a thread), on a free loopback port."""
    with EmulatedBoard(rows=16, cols=16, seed=21) as emu, BoardServer(emu.port, ("127.0.0.1", 0)) as srv:
        yield emu, srv


@pytest.fixture(scope="module")
def local(hal):
    with EmulatedBoard(rows=16, cols=16, seed=22) as emu:
        yield emu


@contextmanager
def remote(srv: BoardServer):
    with memctl.Board(srv.url, progress=False) as b:
        yield b
    assert srv.wait_idle(), "the server still holds the board's port after its client left"


@contextmanager
def direct(emu: EmulatedBoard, srv: BoardServer):
    assert srv.wait_idle(), "the server still holds the board's port"
    with memctl.Board(emu.port, progress=False) as b:
        yield b


def test_a_served_board_answers_every_command_as_a_local_one(served):
    emu, srv = served
    x = RNG.uniform(-0.1, 0.1, 16)
    with direct(emu, srv) as d:
        info, g, one, i = d.info(), d.read_array(), d.read(3, 4), d.vmm(x)
    afe = emu.afe()
    try:
        with remote(srv) as r:
            got = r.info()
            same = ("rows", "cols", "limits", "v_read", "firmware", "hal", "boot_id", "image", "cell")
            assert [getattr(got, k) for k in same] == [getattr(info, k) for k in same]
            noise = 0.02 * np.abs(g).max()
            assert np.abs(r.read_array() - g).max() < noise
            assert abs(r.read(3, 4) - one) < noise
            assert np.abs(r.vmm(x) - i).max() < 0.02 * np.abs(i).max()
            # A pulse within the limits is applied once; one beyond them is refused, as on a local board.
            pulses = afe.stats().pulses
            lim = got.limits
            assert abs(r.pulse(5, 5, 0.9 * lim.v_pulse, 0.5 * lim.width) - 0.9 * lim.v_pulse) < 0.05
            assert afe.stats().pulses == pulses + 1
            with pytest.raises(SafetyLimitError):
                r.pulse(5, 5, lim.v_pulse + 1.0, 0.5 * lim.width)
            assert afe.stats().pulses == pulses + 1
            targets = RNG.uniform(20e-6, 80e-6, (4, 4))
            res = r.program(targets, tolerance=1e-6, max_pulses=200, origin=(8, 8))
            assert res.ok.all() and np.abs(res.error).max() <= 1e-6
            assert r.set_limits(0.9 * lim.v_pulse, lim.width, lim.v_read).v_pulse == pytest.approx(0.9 * lim.v_pulse)
            r.configure(v_read=0.8 * info.v_read)
            blob = predictor_blob.encode(
                [(RNG.normal(size=(24, 7)).tolist(), RNG.normal(size=24).tolist(), predictor_blob.ACT_RELU)]
                + [(RNG.normal(size=(1, 24)).tolist(), [0.1], predictor_blob.ACT_NONE)],
                [0.0] * 7,
                [1.0] * 7,
                1e-7,
                3e-5,
            )  # several frames of LOAD_PREDICTOR
            params = r.load_predictor(blob)
            assert params == 24 * 7 + 24 + 24 + 1 and r.info().predictor_params == params
        # What the served board was told, the board itself holds.
        with direct(emu, srv) as d:
            now = d.info()
            assert now.limits.v_pulse == pytest.approx(0.9 * lim.v_pulse)
            assert now.v_read == pytest.approx(0.8 * info.v_read, rel=1e-3)
            assert now.predictor_params == params
            d.configure(v_read=info.v_read)
            d.set_limits(lim.v_pulse, lim.width, lim.v_read)
            programmed = d.read_array()[8:12, 8:12]
        assert np.abs(programmed - targets).max() < 1e-6 + 0.01 * targets.max()  # tolerance plus read noise
        _, truth = afe.truth()
        assert np.abs(truth[8:12, 8:12] - targets).max() <= 1e-6
    finally:
        afe.close()
    assert srv.refused == 0


def test_memctl_serve_serves_any_memctl_command(local, capsys):
    """The CLI in its own process: it prints its URL; memctl commands reach the board through it, one after
    another (each a client of its own); SIGTERM stops it."""
    from memctl.cli import main

    proc = subprocess.Popen(
        [sys.executable, "-m", "memctl.cli", "serve", "--port", local.port, "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("rfc2217://127.0.0.1:"), (url, proc.stderr.read() if proc.poll() is not None else "")
        assert main(["info", "--port", url, "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["port"] == url and info["info"]["rows"] == 16
        assert main(["read", "--row", "2", "--col", "3", "--port", url]) == 0
        assert 5e-6 < float(capsys.readouterr().out) < 200e-6
        assert main(["read", "--port", url, "--no-progress"]) == 0
        assert "(uS)" in capsys.readouterr().out
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"at {url}" in " ".join(err.split()) and err.count("connected") >= 3, err
    assert main(["serve", "--port", local.port, "--listen", "localhost"]) == 2
    assert "expected HOST:PORT" in capsys.readouterr().err


def test_a_dropped_connection_is_reconnected(served):
    emu, srv = served
    with remote(srv) as b:
        g = b.read(1, 1)
        b.link.ser._socket.shutdown(socket.SHUT_RDWR)  # the TCP connection drops under the client
        assert b.read(1, 1) == pytest.approx(g, rel=0.02)
        assert b.link.stats["reconnects"] == 1
        # The server goes away and comes back on the same port: the request waits for it (reconnect timeout).
        address = srv.address
        srv.stop()
        back = threading.Timer(1.5, srv.start)
        back.start()
        start = time.monotonic()
        try:
            assert b.read(1, 1) == pytest.approx(g, rel=0.02)
        finally:
            back.join()
        assert time.monotonic() - start > 1.0 and b.link.stats["reconnects"] == 2
        assert srv.address == address
    assert srv.clients >= 3


def test_one_client_at_a_time(served):
    emu, srv = served
    refused = srv.refused
    with remote(srv) as b:
        with pytest.raises(PortError, match="RFC2217"):
            memctl.Board(srv.url, progress=False)
        assert srv.refused == refused + 1
        assert b.read(0, 0) > 0  # the first client is still served
    with remote(srv) as b:  # once it has left, the next one is
        assert b.info().rows == 16


def recorded(board: memctl.Board, name: int, log: list, before=None, after=None) -> None:
    """Log (board, start, end) of each program() call on this board; hooks run before and after it."""
    real = board.program

    def program(*args, **kw):
        if before:
            before()
        start = time.monotonic()
        res = real(*args, **kw)
        log.append((name, start, time.monotonic()))
        if after:
            after()
        return res

    board.program = program


def held(path) -> list[tuple[int, tuple, tuple]]:
    """(board, inputs, outputs) of the tiles a journal holds."""
    if not path.exists():
        return []
    return [(p.board, p.inputs, p.outputs) for p in Deployment.load(path).placements]


TILES = [(0, (0, 16), (0, 8)), (1, (0, 16), (8, 14)), (1, (0, 15), (0, 2))]  # the plan, in order


def test_a_deployment_over_a_local_and_a_served_board_programs_both_at_once(served, local, tmp_path):
    emu, srv = served
    log: list = []
    with memctl.Board(local.port, progress=False) as b0, remote(srv) as b1:
        recorded(b0, 0, log)
        recorded(b1, 1, log)
        dep = deploy(LAYERS, [b0, b1], manifest=tmp_path / "dep.json", **OPTIONS)
        assert held(tmp_path / "dep.json") == TILES and dep.complete
        assert all(p.weight_rms_error < 0.05 * np.abs(LAYERS[p.layer].weight).max() for p in dep.placements)
        x = RNG.uniform(-1, 1, (12, 15))
        want = digital(x)
        got = dep.run([b0, b1], x)  # layer 0 on both boards (their VMMs at once), layer 1 on the served one
        assert np.abs(got - want).max() < 0.1 * np.abs(want).max()
        assert np.all(np.argmax(got, 1) == np.argmax(want, 1))
    # Concurrency is real: the boards programmed at the same time (compared with each other, not a clock).
    spans = {bi: (min(s for b, s, _ in log if b == bi), max(e for b, _, e in log if b == bi)) for bi in (0, 1)}
    (s0, e0), (s1, e1) = spans[0], spans[1]
    overlap = min(e0, e1) - max(s0, s1)
    assert overlap > 0.5 * min(e0 - s0, e1 - s1), spans
    assert len(log) == 3


def test_a_failing_board_stops_the_others_and_the_journal_keeps_what_finished(served, local, tmp_path):
    """Board 0 fails once board 1 has finished both its tiles: the journal holds those two (a gap where
    board 0's tile goes) and resuming programs only board 0's."""
    emu, srv = served
    journal = tmp_path / "dep.json"

    def fail() -> None:
        deadline = time.monotonic() + 300
        while len(held(journal)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        raise PortError("the cable was pulled")

    log: list = []
    with memctl.Board(local.port, progress=False) as b0, remote(srv) as b1:
        recorded(b0, 0, log, before=fail)
        recorded(b1, 1, log)
        with pytest.raises(PortError, match="cable"):
            deploy(LAYERS, [b0, b1], manifest=journal, **OPTIONS)
        assert held(journal) == TILES[1:]
        assert not Deployment.load(journal).complete
    afe = emu.afe()
    try:
        _, g_before = afe.truth()
        log.clear()
        with memctl.Board(local.port, progress=False) as b0, remote(srv) as b1:
            recorded(b0, 0, log)
            recorded(b1, 1, log)
            dep = deploy(LAYERS, [b0, b1], manifest=journal, **OPTIONS)
            assert [b for b, _, _ in log] == [0] and held(journal) == TILES and dep.complete
            x = RNG.uniform(-1, 1, (8, 15))
            assert np.all(np.argmax(dep.run([b0, b1], x), 1) == np.argmax(digital(x), 1))
        _, g_after = afe.truth()
        assert np.array_equal(g_before[:, :16], g_after[:, :16])  # the served board's finished tiles untouched
    finally:
        afe.close()


def test_ctrl_c_stops_every_board_and_the_journal_keeps_what_finished(served, local, tmp_path):
    """Ctrl-C (here: once board 1's first tile is programmed) stops board 0 in the middle of its tile:
    the journal holds board 1's finished tile only; resuming programs the rest."""
    emu, srv = served
    journal = tmp_path / "dep.json"
    interrupted = threading.Event()
    deploying = threading.get_ident()

    def ctrl_c() -> None:  # KeyboardInterrupt in the thread that called deploy(), as Ctrl-C raises it there
        if not interrupted.is_set():
            interrupted.set()
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(deploying), ctypes.py_object(KeyboardInterrupt))

    def wait_for_ctrl_c() -> None:
        assert interrupted.wait(300)
        time.sleep(0.5)

    log: list = []
    with memctl.Board(local.port, progress=False) as b0, remote(srv) as b1:
        recorded(b0, 0, log, before=wait_for_ctrl_c)
        recorded(b1, 1, log, after=ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            deploy(LAYERS, [b0, b1], manifest=journal, **OPTIONS)
        assert [b for b, _, _ in log] == [1]  # board 0's program() never finished
        assert held(journal)[:1] == TILES[1:2] and TILES[0] not in held(journal)
    finished = len(held(journal))
    log.clear()
    with memctl.Board(local.port, progress=False) as b0, remote(srv) as b1:
        recorded(b0, 0, log)
        recorded(b1, 1, log)
        dep = deploy(LAYERS, [b0, b1], manifest=journal, **OPTIONS)
        assert sorted(b for b, _, _ in log) == [0] + [1] * (3 - 1 - finished)
        assert dep.complete and held(journal) == TILES


def test_sigint_during_a_deployment_over_two_boards_keeps_what_finished_and_resumes(served, local, tmp_path):
    """memctl deploy over a local and a served board, Ctrl-C as a user presses it (SIGINT) once the served
    board has finished its tiles while the local one, on a slow line, is still at its own: exit 130, the
    journal keeps the served board's tiles, and the printed command programs only the local board's."""
    import onnx

    from memctl.onnx_mlp import to_onnx

    emu, srv = served
    other = [Layer(-lay.weight, lay.bias, lay.activation) for lay in LAYERS]  # targets the boards do not hold
    onnx.save(to_onnx(other), tmp_path / "m.onnx")
    journal = tmp_path / "dep.json"
    cmd = ["deploy", str(tmp_path / "m.onnx"), "--port", local.port, "--more-ports", srv.url, "--no-progress"]
    local.set_baud(38400)  # the local board's line is slow: it is still programming when the served one is done
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "memctl.cli", *cmd, "--manifest", str(journal), "--tolerance", "0.5e-6"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal's foreground job
        )
        deadline = time.monotonic() + 300
        while len(held(journal)) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the served board never finished its tiles"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        local.set_baud(None)
    err = " ".join(err.split())
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert held(journal) == TILES[1:]
    resume = err.split("to carry on: ", 1)[1].strip()
    afe = emu.afe()
    try:
        pulses = afe.stats().pulses
        assert srv.wait_idle()
        res = subprocess.run(
            [sys.executable, "-m", "memctl.cli", *shlex.split(resume)[1:]], capture_output=True, text=True, timeout=300
        )
        assert res.returncode == 0, res.stdout + res.stderr
        assert afe.stats().pulses == pulses  # the served board's finished tiles were not programmed again
    finally:
        afe.close()
    assert held(journal) == TILES and Deployment.load(journal).complete
