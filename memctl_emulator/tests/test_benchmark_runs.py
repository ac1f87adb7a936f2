"""The benchmarks stay runnable and consistent, and the docs quote their committed results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_docs_quote_the_committed_results():
    """Every measured table in docs/ is what benchmarks/report.py renders from its JSON."""
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "report.py")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_physics_benchmark_quick(tmp_path):
    out = tmp_path / "physics.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "physics.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "| 128x128 |" in run.stdout
    data = json.loads(out.read_text())
    assert len(data["rows"]) == 6 and all(r["vmms_per_s"] > 0 for r in data["rows"])


def test_programming_benchmark_small(tmp_path):
    """What a lab pays, measured: per algorithm and board seed success, pulses, the array's board time (row-parallel
    and serial), energy and wall time; ratios per seed against the oracle and the best baseline; the goals from
    the rows; the user path with what its characterization covered."""
    out = tmp_path / "programming.json"
    args = ["--devices", "4", "--quick", "--families", "perovskite_lognormal", "--out", str(out)]
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "programming.py"), *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    assert report["seeds"] == [11, 12]
    fam = report["families"]["perovskite_lognormal"]
    rows = fam["algorithms"]
    assert set(rows) == {"ispp", "adaptive", "adaptive_tuned", "predicted", "oracle"}
    for name, r in rows.items():
        seeds = r["per_seed"]
        assert len(seeds) == 2 and r["success"] == pytest.approx(np.mean([s["success"] for s in seeds]))
        for k, s in enumerate(seeds):  # the ratios are of figures on the same board
            o = rows["oracle"]["per_seed"][k]["pulses_mean_common"]
            assert r["pulses_vs_oracle"][k] == pytest.approx(s["pulses_mean_common"] / o)
            if name != "oracle":
                assert s["board_time_s"] > 0 and s["board_time_serial_s"] > 0 and s["energy_J"] > 0
                for key in ("board_time_s", "energy_J"):
                    best = min(rows[b]["per_seed"][k][key] for b in ("ispp", "adaptive", "adaptive_tuned"))
                    assert r[f"{key}_vs_best_baseline"][k] == pytest.approx(s[key] / best)
    # Write-verify reaches every target here (docs/programming.md: 100 % on 64 devices); the predictor-guided
    # decisions take at most 3 inferences per pulse on the board; the goals are computed from the rows.
    assert rows["ispp"]["success"] == rows["adaptive"]["success"] == 1.0
    p = fam["predictor"]
    assert 1 <= p["inferences_per_pulse"] <= 3 and p["params"] <= 600 and 0 < p["covered_share"] <= 1
    g = report["goals"]["perovskite_lognormal"]
    assert g["board_time_vs_best"] == max(rows["predicted"]["board_time_s_vs_best_baseline"])
    assert g["le_2x_oracle"] == (g["pulses_vs_oracle"] <= 2)
    t = fam["tuning"]
    assert t["kept_start"] or t["gain"] > 2 * t["gain_se"]  # a tuned setting saved more than the noise
    user = report["user_path"]
    assert set(user) == {"hfo2_tio2_bilayer", "pt_al2o3_tio2_passive", "generated:2001"}
    for u in user.values():
        assert set(u["algorithms"]) == {"ispp", "adaptive", "predicted"}
        assert all(0 < a["board_time_s"] and 0 < a["energy_J"] for a in u["algorithms"].values())
        lo, hi = u["predictor"]["covered_uA"]
        assert 0 < lo < hi


def test_programming_ablation_small(tmp_path):
    """The firmware's rule with its parts switched off runs, and the width choice matters: taking the
    longest width past the amplitude limit costs the four-terminal device many times the board time."""
    out = tmp_path / "ablation.json"
    script = str(ROOT / "benchmarks" / "programming_ablation.py")
    args = ["--families", "tio2_4terminal", "--seeds", "11", "--devices", "16", "--out", str(out)]
    run = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    modes = json.loads(out.read_text())["families"]["tio2_4terminal"]
    assert set(modes) == {"full", "static", "longest_width", "no_gain", "no_escalation"}
    full, longest = modes["full"], modes["longest_width"]
    assert full["success"] == 1.0 and longest["board_time_s"] > 5 * full["board_time_s"]
    assert longest["energy_J"] > 5 * full["energy_J"]


def test_ffp_levels_benchmark_small(tmp_path):
    out = tmp_path / "ffp.json"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "ffp_levels.py"),
            "--reps",
            "2",
            "--levels",
            "32",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    data = json.loads(out.read_text())
    assert data["potentiation"]["share_in_window"] > 0.8  # FFP keeps |dR| in 0.1-0.3 ohm
    assert data["levels"]["32"]["potentiation"]["skipped"] == 0  # paper 001: none at n = 32


def test_deploy_benchmark_letters_and_moons(tmp_path):
    """The deploy benchmark's small tasks; digits runs in the full benchmark only."""
    out = tmp_path / "deploy.json"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "deploy.py"),
            "--out",
            str(out),
            "--tasks",
            "letters,moons",
            "--bo-iterations",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert run.returncode == 0, run.stderr
    r = json.loads(out.read_text())
    letters = r["letters"]
    assert letters["digital"]["train"] == 1.0
    assert letters["aware"]["calibrated"]["test"] >= letters["digital"]["test"] - 0.01  # within 1 point of digital
    assert letters["aware"]["defects_found"] > 0
    assert max(letters["aware"]["layer_weight_rms_error"]) < max(letters["oblivious"]["layer_weight_rms_error"])
    moons = r["moons"]
    assert moons["digital_erm"] > 0.8 and len(moons["bo_trials"]) == 5  # ERM probe + 3 random + 1 GP step
    assert all(moons[k]["pulses"] > 0 and moons[k]["energy_J"] > 0 for k in ("erm", "bayesmulti"))


def test_reliability_benchmark_quick(tmp_path):
    out = tmp_path / "reliability.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "reliability.py"), "--out", str(out), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    rows = json.loads(out.read_text())["scenarios"]
    assert [r["fault"] for r in rows] == ["none", "byte corruption", "board reset mid-program"]
    assert all(r["completed"] == r["attempted"] and r["undetected"] == 0 for r in rows)
    assert rows[1]["retries"] > 0 and rows[2]["resyncs"] == 1


def test_hal_backends_benchmark_quick(tmp_path):
    out = tmp_path / "hal_backends.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "hal_backends.py"), "--out", str(out), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    rows = {r["operation"]: r for r in json.loads(out.read_text())["rows"]}
    assert all(r["same_result"] for r in rows.values() if r["same_result"] is not None)  # same physics on both
    assert len(rows) == 5
    assert all(r["ratio"] == pytest.approx(r["chips_s"] / r["emulated_s"]) for r in rows.values())
