"""docs/guide-onnx.md's scikit-learn walkthrough runs as written, on emulated boards.

Which blocks run: a fenced block whose opening fence is on the line right after `<!-- tested: sklearn -->`.
They run in document order, in a temporary working directory:

- a ```python block is executed; all of them share one namespace, so later blocks use earlier names;
- a plain ``` block holds `memctl` command lines. `memctl emulate --rows R --cols C [--seed S]` starts an
  EmulatedBoard with those options for the rest of the block; every other line runs through
  `memctl.cli.main` with `$PORT` replaced by that board's port (and `--no-progress` added) and must exit 0.

Unmarked blocks (the PyTorch ones: torch is not a dependency) are not run. Then the test checks what the guide
claims: the deployed accuracy, through the SDK and through `memctl infer`, is within 10 points of the digital
reference on the held-out flowers, and raw features on a deployment without the scaler are refused with the
out-of-range error the guide quotes.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

import memctl
from memctl.cli import main
from memctl_emulator import EmulatedBoard

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide-onnx.md"
MARK = "<!-- tested: sklearn -->"


def marked_blocks() -> list[tuple[str, str]]:
    """(language, code) of every marked block, in document order."""
    blocks = re.findall(re.escape(MARK) + r"\n```(\w*)\n(.*?)\n```", GUIDE.read_text(), re.S)
    assert blocks, f"no block marked {MARK!r} in {GUIDE}"
    return blocks


def run_commands(block: str) -> None:
    emulate = argparse.ArgumentParser()
    for opt in ("--rows", "--cols", "--seed"):
        emulate.add_argument(opt, type=int, default=argparse.SUPPRESS)
    board = None
    try:
        for line in block.splitlines():
            argv = shlex.split(line, comments=True)
            if not argv:
                continue
            assert argv[0] == "memctl", f"not a memctl command: {line!r}"
            if argv[1] == "emulate":
                assert board is None, "one emulated board per block"
                board = EmulatedBoard(**vars(emulate.parse_args(argv[2:])))
                board.__enter__()
                continue
            assert board is not None, f"{line!r} needs a board: start one with memctl emulate first"
            argv = [board.port if a == "$PORT" else a for a in argv[1:]]
            rc = main([*argv, "--no-progress"])
            assert rc == 0, f"{line!r} exited {rc}"
    finally:
        if board is not None:
            board.__exit__(None, None, None)


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory):
    """Run the guide's tested blocks once; return the working directory and the Python namespace."""
    cwd = tmp_path_factory.mktemp("guide-onnx")
    ns: dict = {"__name__": "guide_onnx"}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        for n, (lang, code) in enumerate(marked_blocks()):
            if lang == "python":
                exec(compile(code, f"{GUIDE.name}, tested block {n + 1}", "exec"), ns)
            else:
                assert lang == "", f"tested block {n + 1}: only python and command blocks run, not {lang!r}"
                run_commands(code)
    return cwd, ns


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(outputs, 1) == labels))


def test_the_deployed_network_is_within_10_points_of_the_digital_one(walkthrough):
    cwd, ns = walkthrough
    y_test = ns["y_test"]
    digital = float(ns["digital"])
    sdk = accuracy(ns["y_board"], y_test)
    cli = accuracy(np.load(cwd / "y_board.npy"), y_test)
    print(f"{len(y_test)} held-out samples: digital {digital:.1%}, SDK {sdk:.1%}, memctl infer {cli:.1%}")
    assert sdk == pytest.approx(ns["deployed"])
    assert digital >= 0.9, "the guide's network should classify iris"
    assert sdk >= digital - 0.10
    assert cli >= digital - 0.10


def test_raw_features_without_the_scaler_are_refused(walkthrough, capsys):
    """The guide's point about scaling: deployed without --input-scaling, the raw features (cm) are outside
    the encoded +-1 and refused, through the SDK and the CLI, with the message the guide quotes."""
    cwd, ns = walkthrough
    quoted = re.search(r"```\nValueError: (.*?)\n```", GUIDE.read_text(), re.S)
    assert quoted, "the guide quotes the out-of-range error"
    manifest = str(cwd / "unscaled.json")
    with EmulatedBoard(rows=16, cols=24, seed=1) as emu, memctl.Board(emu.port) as board:
        dep = memctl.deploy(ns["layers"], board, manifest=manifest, progress=False)
        with pytest.raises(ValueError, match="input range") as refused:
            dep.run(board, ns["x_test"])
        assert " ".join(str(refused.value).split()) == " ".join(quoted.group(1).split())
        assert dep.run(board, ns["x_test"], clip=True).shape == (len(ns["x_test"]), 3)  # clipped knowingly
        capsys.readouterr()
        rc = main(["infer", str(cwd / "x_test.npy"), "--port", emu.port, "--manifest", manifest, "--no-progress"])
    assert rc != 0
    assert "input range" in " ".join(capsys.readouterr().err.split())
