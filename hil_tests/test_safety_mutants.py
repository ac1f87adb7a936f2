"""The safety tests can fail: every firmware mutant of .ci/mutants.py (a limit
check loosened by one DAC step or timer tick, a clamp or an early check
dropped) makes the boundary tests fail on this front end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "mutants.py"


@pytest.mark.slow
def test_every_loosened_limit_check_is_caught(hal):
    run = subprocess.run([sys.executable, str(SCRIPT), "--hal", hal], capture_output=True, text=True, timeout=1200)
    print(run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr
    caught, tried = re.search(r"(\d+) of (\d+) mutants caught", run.stdout).groups()
    # Every limit check the firmware has (the algorithms' amplitude and width checks share xbar's and
    # algorithms.start_within, so one mutant each covers them all).
    assert caught == tried and int(tried) >= 14
