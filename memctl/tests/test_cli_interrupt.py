"""Ctrl-C during long work, as a user presses it: one line, partial results saved, and the printed
command carries on where the run stopped."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time

import numpy as np

from memctl_emulator import EmulatedBoard


def _interrupt_when(proc: subprocess.Popen, ready, timeout: float = 60) -> tuple[int, str]:
    """SIGINT once ready() holds (work is under way), then (exit code, stderr)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the work never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, " ".join(err.split())


def _popen(args: list[str]) -> subprocess.Popen:
    """memctl in a child that takes Ctrl-C as a terminal user's would: a shell runs background jobs (CI
    runners often do) with SIGINT ignored, and a child inherits that."""
    return subprocess.Popen(
        [sys.executable, "-m", "memctl.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _run(cmd: str) -> subprocess.CompletedProcess:
    args = shlex.split(cmd)
    assert args[0] == "memctl"
    return subprocess.run([sys.executable, "-m", "memctl.cli", *args[1:]], capture_output=True, text=True, timeout=300)


def test_sigint_during_program_saves_what_finished_and_the_resume_command_finishes_the_rest(tmp_path):
    with EmulatedBoard(rows=8, cols=8, seed=31) as emu:
        afe = emu.afe()
        g0 = afe.truth()[1]
        targets = np.clip(g0 + np.where(g0 < 55e-6, 25e-6, -25e-6), 10e-6, 95e-6)  # every device moves
        np.save(tmp_path / "map.npy", targets)
        # Small chunks, so the interrupt lands between requests with some devices finished.
        cmd = ["program", str(tmp_path / "map.npy"), "--port", emu.port]
        proc = _popen([*cmd, "--no-progress", "--tolerance", "1e-6", "--chunk", "4"])
        rc, err = _interrupt_when(proc, lambda: afe.stats().pulses > 300)
        assert rc == 130, err
        assert "Traceback" not in err
        partial = tmp_path / "map.program.npz"
        assert f"saved to {partial}" in err, err
        with np.load(partial) as f:
            status = f["status"]
            done = status == "ok"
            assert set(np.unique(status)) <= {"ok", "not-programmed", "max-pulses", "stuck", "unreachable"}
            assert 0 < done.sum() < 64, status
            assert np.all(np.abs(f["final"][done] - targets[done]) <= 1e-6)
        resume = err.split("to program the rest: ", 1)[1].strip()
        assert f"--resume {partial}" in resume
        before = afe.truth()[1]
        res = _run(resume)
        assert res.returncode == 0, res.stdout + res.stderr
        with np.load(partial) as f:
            assert (f["status"] == "ok").all()
            final = f["final"]
        after = afe.truth()[1]
        np.testing.assert_array_equal(after[done], before[done])  # finished devices are not pulsed again
        assert np.all(np.abs(final - targets) <= 1e-6)
        afe.close()


def test_sigint_during_the_prescan_keeps_the_scanned_blocks_and_the_deploy_resumes(tmp_path):
    import json

    import onnx

    from memctl.deployment import Layer
    from memctl.onnx_mlp import to_onnx

    rng = np.random.default_rng(0)
    layers = [
        Layer(rng.normal(size=(6, 4)), rng.normal(size=6) * 0.3, "Relu"),
        Layer(rng.normal(size=(3, 6)), 0.3 * rng.normal(size=3), None),
    ]
    onnx.save(to_onnx(layers), tmp_path / "m.onnx")
    journal = tmp_path / "m.json"

    def scanned() -> list:
        try:
            scans = json.loads(journal.read_text()).get("scans") or [None]
        except (OSError, ValueError):
            return []
        return (scans[0] or {}).get("done", [])

    with EmulatedBoard(rows=8, cols=24, seed=12) as emu:
        cmd = ["deploy", str(tmp_path / "m.onnx"), "--port", emu.port, "--no-progress", "--manifest", str(journal)]
        proc = _popen([*cmd, "--aware"])
        rc, err = _interrupt_when(proc, lambda: len(scanned()) >= 1)
        assert rc == 130 and "Traceback" not in err, err
        kept = json.loads(journal.read_text())
        done = kept["scans"][0]["done"]
        assert 1 <= len(done) < 3 and not kept["placements"], done  # 18 columns: blocks at 0, 8 and 16
        resume = err.split("to carry on: ", 1)[1].strip()
        assert f"--manifest {journal}" in resume and "--aware" in resume
        res = _run(resume)
        assert res.returncode == 0, res.stdout + res.stderr
        final = json.loads(journal.read_text())
        assert final["complete"] and sorted(final["scans"][0]["done"]) == [0, 8, 16]
        g_kept, g_final = np.array(kept["scans"][0]["g"]), np.array(final["scans"][0]["g"])
        np.testing.assert_array_equal(g_final[:, :8], g_kept[:, :8])  # the first block was not scanned again
