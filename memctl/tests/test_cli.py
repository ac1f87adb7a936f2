"""The memctl command line against a live emulated board, as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from memctl.cli import main


def memctl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "memctl.cli", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def emulate():
    """`memctl emulate` in its own process, as from a second terminal."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "memctl.cli", "emulate", "--seed", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    port = proc.stdout.readline().strip()
    assert os.path.realpath(port).startswith("/dev/"), proc.stderr.read() if proc.poll() is not None else port
    yield port
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0


def test_info(emulate):
    out = memctl("info", "--port", emulate)
    assert out.returncode == 0, out.stderr
    assert "rows" in out.stdout and "32" in out.stdout and "emulated" in out.stdout


def test_program_read_infer(emulate, tmp_path):
    targets = np.random.default_rng(1).uniform(20e-6, 80e-6, (4, 4))
    np.save(tmp_path / "map.npy", targets)
    out = memctl("program", str(tmp_path / "map.npy"), "--port", emulate, "--out", str(tmp_path / "res.npz"))
    assert out.returncode == 0, out.stderr
    assert "16 within" in out.stdout
    res = np.load(tmp_path / "res.npz")
    assert np.abs(res["final"] - targets).max() <= 1e-6

    out = memctl("read", "--port", emulate, "--out", str(tmp_path / "g.npy"))
    assert out.returncode == 0, out.stderr
    g = np.load(tmp_path / "g.npy")
    assert g.shape == (32, 32) and np.abs(g[:4, :4] - targets).max() < 1.1e-6

    x = np.zeros((2, 32))
    x[0, :4], x[1, :4] = 0.1, -0.1
    np.save(tmp_path / "x.npy", x)
    out = memctl("infer", str(tmp_path / "x.npy"), "--port", emulate, "--out", str(tmp_path / "i.npy"))
    assert out.returncode == 0, out.stderr
    i = np.load(tmp_path / "i.npy")
    assert i.shape == (2, 32)
    np.testing.assert_allclose(i[0], -i[1], atol=1e-7)
    np.testing.assert_allclose(i[0], g.T @ x[0], atol=2e-7)


def test_clear_errors(emulate, tmp_path, capsys):
    assert main(["pulse", "0", "0", "3.0", "1e-4", "--port", emulate]) == 2
    assert "safety-limit" in capsys.readouterr().err
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not numpy")
    assert main(["program", str(bad), "--port", emulate]) == 2
    err = capsys.readouterr().err
    assert "not a readable" in err and "allow_pickle" not in err
    # Corrupt inputs get memctl's own error, before any board is opened (/dev/null is not one).
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    assert main(["deploy", str(tmp_path / "bad.onnx"), "--port", "/dev/null", "--manifest", str(tmp_path / "m")]) == 2
    assert "not a readable ONNX model" in capsys.readouterr().err
    assert main(["predictor", "check", str(tmp_path)]) == 2
    assert "not a folder written by `memctl predictor export`" in " ".join(capsys.readouterr().err.split())
    np.save(tmp_path / "nan.npy", np.array([[np.nan]]))
    assert main(["program", str(tmp_path / "nan.npy"), "--port", emulate]) == 2
    assert "finite" in capsys.readouterr().err


def test_unreachable_port_is_a_clear_error(capsys):
    assert main(["info", "--port", "/dev/memctl-does-not-exist"]) == 2
    assert "cannot open /dev/memctl-does-not-exist" in capsys.readouterr().err


def test_demo_runs_and_reports():
    out = memctl("demo", "--size", "4")
    assert out.returncode == 0, out.stderr
    for words in ("within tolerance", "16 / 16", "pulses", "VMM"):
        assert words in out.stdout


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_emulate_leaves_no_processes_behind(sig):
    proc = subprocess.Popen(
        [sys.executable, "-m", "memctl.cli", "emulate", "--rows", "4", "--cols", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert os.path.realpath(proc.stdout.readline().strip()).startswith("/dev/")
    kids = _children(proc.pid)
    assert len(kids) == 2  # the analog front end and the firmware
    proc.send_signal(sig)
    proc.wait(timeout=10)
    if sig == signal.SIGTERM:
        assert proc.returncode == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{k}").exists() for k in kids):
        time.sleep(0.1)
    alive = [k for k in kids if Path(f"/proc/{k}").exists() and "Z" not in _state(k)]
    assert not alive


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def test_info_ports_and_config_speak_units_and_names(emulate, capsys):
    import json

    assert main(["info", "--port", emulate]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "0.001 s" in out and "0.0010000000474974513" not in out and "V/2" in out and "grounded" in out, out
    assert main(["info", "--port", emulate, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["info"]["limits.width"] == pytest.approx(1e-3) and info["units"]["limits.width"] == "s"
    assert info["info"]["bias_scheme"] == "V/2" and info["info"]["cell"] in ("0T1R", "1T1R")
    assert main(["ports", "--json"]) == 0
    ports = {p["port"]: p for p in json.loads(capsys.readouterr().out)}
    assert ports[emulate]["memctl"] is True and ports[emulate]["shape"] == [info["info"]["rows"], info["info"]["cols"]]
    try:
        assert main(["config", "--port", emulate, "--v-read", "0.25"]) == 0
        assert "read voltage 0.25 V" in capsys.readouterr().out
        assert main(["config", "--port", emulate, "--v-read", "5"]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "read voltage 5 V beyond the read limit 0.3 V" in err and "memctl set-limits" in err, err
    finally:
        assert main(["config", "--port", emulate, "--v-read", "0.2"]) == 0


def test_every_option_says_what_it_does():
    """--help is the documentation most users read: every option of every command has a help text."""
    import argparse

    from memctl.cli import build_parser

    missing = []

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        for act in p._actions:
            if isinstance(act, argparse._SubParsersAction):
                for name, sp in act.choices.items():
                    walk(sp, f"{path} {name}")
            elif not isinstance(act, argparse._HelpAction) and not act.help:
                missing.append(f"{path} {'/'.join(act.option_strings) or act.dest}")

    walk(build_parser(), "memctl")
    assert not missing, missing
