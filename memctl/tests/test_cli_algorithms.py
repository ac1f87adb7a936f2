"""The algorithm workflows from the command line, as a user runs them."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import memctl
from memctl.cli import main
from memctl_emulator import EmulatedBoard


def test_characterize_fit_load_program_predicted(tmp_path, capsys):
    """The README's workflow: single-pulse characterization of a few devices, an
    inverse predictor, export and cross-check, load, predictor-guided programming."""
    with EmulatedBoard(rows=5, cols=5, seed=40, device="hfo2_tio2_bilayer") as emu:
        port = ["--port", emu.port, "--no-progress"]
        data = tmp_path / "p.h5"
        rc = main(
            [
                "characterize",
                *port,
                "--mode",
                "pulses",
                "--device",
                "hfo2_tio2_bilayer",
                "--pulses",
                "150",
                "--devices",
                "0,0",
                "0,1",
                "1,0",
                "1,1",
                "--limits",
                "3",
                "1",
                "0.75",
                "--out",
                str(data),
            ]
        )
        assert rc == 0
        model = tmp_path / "model.mcpr"
        assert main(["predictor", "fit", str(data), "--int8", "--out", str(model)]) == 0
        assert "386 parameters" in " ".join(capsys.readouterr().out.split())
        model_dir = tmp_path / "exported"
        assert main(["predictor", "export", str(data), "--out-dir", str(model_dir)]) == 0
        capsys.readouterr()
        assert main(["predictor", "check", str(model_dir)]) == 0  # every runtime agrees
        report = " ".join(capsys.readouterr().out.split())
        assert "TFLite Micro" in report and "exact" in report and "MISMATCH" not in report
        assert main(["predictor", "load", str(model), *port]) == 0
        assert "386-parameter" in capsys.readouterr().out
        targets = np.array([[12e-6, 16e-6]])
        np.save(tmp_path / "t.npy", targets)
        settings = ["--algorithm", "predicted", "--device", "hfo2_tio2_bilayer", "--tolerance", "0.5e-6"]
        rc = main(["program", str(tmp_path / "t.npy"), *port, *settings, "--max-pulses", "300", "--origin", "2", "0"])
        assert rc == 0, capsys.readouterr()
        assert "2 within" in " ".join(capsys.readouterr().out.split())
        # The spread-aware rule: an overshoot penalty backs off by the model's spread.
        np.save(tmp_path / "t2.npy", targets.T)
        program = ["program", str(tmp_path / "t2.npy"), *port, *settings, "--max-pulses", "300"]
        assert main([*program, "--origin", "1", "2", "--overshoot", "1"]) == 0
        assert "2 within" in " ".join(capsys.readouterr().out.split())
        assert main([*program, "--overshoot", "-1"]) == 2
        assert "--overshoot must be 0..100, got -1" in capsys.readouterr().err
        # Its overshoot penalty tuned on the characterized devices, then used from the settings file.
        from memctl.tune import TunedSettings

        out = tmp_path / "predicted.json"
        tune = ["tune", *port, "--device", "hfo2_tio2_bilayer", "--algorithm", "predicted", "--out", str(out)]
        small = ["--iterations", "1", "--init-points", "1"]
        assert main([*tune, "--devices", "0,0", "0,1", "1,0", "1,1", *small]) == 2  # 4 devices, 11 evaluations
        assert "needs 44 fresh devices" in " ".join(capsys.readouterr().err.split())
        assert main([*tune, *small, "--per-trial", "2"]) == 0
        assert "pulses per device against the starting settings" in " ".join(capsys.readouterr().out.split())
        s = TunedSettings.load(out)
        assert s.algorithm == "predicted" and len(s.trials) == 3 + 3 and 0 < s.success <= 1
        assert {t[0]["overshoot"] for t in s.trials[:3]} != {0.0}  # the search left the start
        assert isinstance(s.to_algorithm(), memctl.Predicted) and 0 <= s.to_algorithm().overshoot <= 10
        assert (
            main(
                [
                    "program",
                    str(tmp_path / "t2.npy"),
                    *port,
                    "--settings",
                    str(out),
                    "--origin",
                    "1",
                    "1",
                    "--tolerance",
                    "0.5e-6",
                    "--max-pulses",
                    "300",
                ]
            )
            == 0
        )


def test_ffp_calibrate_then_program(tmp_path, capsys):
    with EmulatedBoard(rows=1, cols=1, seed=3, device="tio2_4terminal") as emu:
        port = ["--port", emu.port, "--no-progress"]
        assert main(["set-limits", *port, "7", "2", "0.3"]) == 0
        window = ["--window", str(0.1 / 800**2), str(0.3 / 800**2)]
        assert (
            main(
                [
                    "ffp-calibrate",
                    *port,
                    *window,
                    "--g-range",
                    str(1 / 885),
                    str(1 / 735),
                    "--sweeps",
                    "2",
                    "--out",
                    str(tmp_path / "table.npz"),
                ]
            )
            == 0
        )
        assert "bins learned" in capsys.readouterr().out
        table = np.load(tmp_path / "table.npz")
        assert (table["v_set"] > 0).sum() > 10
        np.save(tmp_path / "t.npy", np.array([[1 / 810.0]]))
        rc = main(
            [
                "program",
                str(tmp_path / "t.npy"),
                *port,
                "--algorithm",
                "ffp",
                *window,
                "--tolerance",
                str(0.25 / 800**2),
                "--max-pulses",
                "2000",
            ]
        )
        assert rc == 0


def test_tune_without_its_extra_names_the_install_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "bayes_opt", None)  # as if bayesian-optimization were not installed
    rc = main(["tune", "--port", "/dev/null", "--device", "hfo2_tio2_bilayer", "--out", str(tmp_path / "s.json")])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 2 and "needs bayes_opt, which is not installed: pip install 'memctl[train]'" in err
    assert "Traceback" not in err and not (tmp_path / "s.json").exists()


def test_ffp_without_window_is_a_clear_error(tmp_path, capsys):
    np.save(tmp_path / "t.npy", np.array([[1e-3]]))
    assert main(["program", str(tmp_path / "t.npy"), "--port", "/dev/null", "--algorithm", "ffp"]) == 2
    assert "needs --window" in capsys.readouterr().err


def test_tune_writes_settings_that_program_reads(tmp_path, capsys):
    from memctl.tune import TunedSettings

    out = tmp_path / "settings.json"
    with EmulatedBoard(rows=4, cols=4, seed=14, device="perovskite_lognormal") as emu:
        rc = main(
            [
                "tune",
                "--port",
                emu.port,
                "--device",
                "perovskite_lognormal",
                "--per-trial",
                "1",
                "--iterations",
                "1",
                "--init-points",
                "1",
                "--out",
                str(out),
            ]
        )
        assert rc == 0 and "against" in capsys.readouterr().out
        s = TunedSettings.load(out)
        # the probe of the starting settings, 1 random and 1 guided trial, then the final comparison of three
        assert s.algorithm == "adaptive" and len(s.trials) == 3 + 3 and 0 < s.success <= 1
        # One device per evaluation, each used once: 3 trials, then 3 contenders on 2 each.
        assert s.devices_used == 3 + 3 * 2 and s.gain_se >= 0
        # The start is kept unless a trial beat it by more than twice the standard error of the saving.
        assert s.kept_start == (s.params == s.trials[0][0]) and s.kept_start == (not s.gain > 2 * s.gain_se)
        assert memctl.Adaptive(**s.params) == s.to_algorithm()
        np.save(tmp_path / "t.npy", np.full((2, 2), 10e-6))
        rc = main(
            [
                "program",
                str(tmp_path / "t.npy"),
                "--port",
                emu.port,
                "--settings",
                str(out),
                "--origin",
                "2",
                "2",
                "--tolerance",
                "0.5e-6",
                "--max-pulses",
                "300",
            ]
        )
        assert rc == 0
        # Predictor-guided tuning without an inverse predictor on the board: refused, nothing pulsed.
        rc = main(
            [
                "tune",
                "--port",
                emu.port,
                "--device",
                "perovskite_lognormal",
                "--algorithm",
                "predicted",
                "--out",
                str(tmp_path / "p.json"),
            ]
        )
        assert rc == 2 and "needs an inverse predictor on the board" in " ".join(capsys.readouterr().err.split())
        assert not (tmp_path / "p.json").exists()
    # The limits it was tuned under travel with the settings: a fresh board (2 V / 1 ms) takes them.
    from memctl.tuning import settings_for

    want = settings_for("perovskite_lognormal").limits
    lim = {"v_pulse": want.v_pulse, "width": want.width, "v_read": want.v_read, "v_disturb": want.v_disturb}
    assert s.limits == pytest.approx(lim, rel=1e-6)
    with EmulatedBoard(rows=2, cols=2, seed=15, device="perovskite_lognormal") as emu:
        assert main(["set-limits", "--port", emu.port, "--settings", str(out)]) == 0
        with memctl.Board(emu.port, progress=False) as b:
            lim = b.info().limits
            assert (lim.v_pulse, lim.width, lim.v_read) == pytest.approx(
                (want.v_pulse, want.width, want.v_read), rel=1e-6
            )
    assert main(["set-limits", "--port", "/dev/null", "1", "1e-3"]) == 2
    assert "one of them" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a memctl settings file"):
        TunedSettings.load(bad)


def test_device_sets_up_a_fresh_board_and_refuses_what_it_cannot_do(tmp_path, capsys):
    """The README's `program --algorithm adaptive --device hfo2_tio2_bilayer` on a board fresh from
    `memctl emulate --device hfo2_tio2_bilayer` (provisioned with 2 V / 1 ms / 0.3 V): the family's limits and
    read voltage go on the board first, so its 0.1 s pulses are allowed. A family the board's DAC cannot
    drive is refused with the values, before any pulse."""
    with EmulatedBoard(rows=2, cols=2, seed=8, device="hfo2_tio2_bilayer") as emu:
        afe = emu.afe()
        lo, hi = afe.ranges()
        targets = lo + (hi - lo) * np.random.default_rng(3).uniform(0.2, 0.45, lo.shape)
        np.save(tmp_path / "map.npy", targets)
        # Without --device the board's 1 ms width limit is 100x too short for this family: the stop
        # names the limits (at-safety-limit, with their values), not the devices (stuck).
        out_file = tmp_path / "first.npz"
        argv = ["program", str(tmp_path / "map.npy"), "--port", emu.port, "--no-progress", "--algorithm", "adaptive"]
        assert main([*argv, "--out", str(out_file)]) == 3
        out = " ".join(capsys.readouterr().out.split())
        assert "4 at-safety-limit" in out and "+-2 V, 0.001 s wide" in out and "memctl set-limits" in out, out
        with np.load(out_file) as f:
            assert list(f["status"].ravel()) == ["at-safety-limit"] * 4
        rc = main(
            ["program", str(tmp_path / "map.npy"), "--port", emu.port, "--no-progress", "--algorithm", "adaptive"]
            + ["--device", "hfo2_tio2_bilayer", "--max-pulses", "300"]
        )
        out = capsys.readouterr().out
        assert rc == 0, out
        assert "hfo2_tio2_bilayer: limits +-3 V, 1 s" in out and "4 within" in out
        with memctl.Board(emu.port, progress=False) as b:
            assert b.info().limits.width == pytest.approx(1.0)
        afe.close()
    with EmulatedBoard(rows=2, cols=2, seed=8) as emu:  # a default board: +-2.5 V DAC
        afe = emu.afe()
        before = afe.stats().pulses
        np.save(tmp_path / "one.npy", np.full((1, 1), 1.2e-3))
        assert main(["program", str(tmp_path / "one.npy"), "--port", emu.port, "--device", "tio2_4terminal"]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert re.search(r"tio2_4terminal needs pulse voltages up to 7 V; .* reaches \+-2.5 V", err), err
        assert afe.stats().pulses == before
        afe.close()


def test_deploy_with_device_sets_up_a_fresh_board_of_that_family(tmp_path, capsys):
    """`deploy --device`: the family's limits go on a board fresh from `memctl emulate --device` (whose
    1 ms width limit its pulses exceed), its conductance window and write-verify settings are used."""
    import onnx

    from memctl.deployment import Deployment, Layer
    from memctl.devices import load_device
    from memctl.onnx_mlp import forward, to_onnx

    rng = np.random.default_rng(2)
    layers = [Layer(rng.normal(size=(3, 4)), 0.3 * rng.normal(size=3), None)]
    onnx.save(to_onnx(layers), tmp_path / "m.onnx")
    x = rng.uniform(-1, 1, (12, 4))
    np.save(tmp_path / "x.npy", x)
    with EmulatedBoard(rows=6, cols=8, seed=21, device="hfo2_tio2_bilayer") as emu:
        port = ["--port", emu.port, "--no-progress"]
        manifest = ["--manifest", str(tmp_path / "m.json")]
        assert main(["deploy", str(tmp_path / "m.onnx"), *port, *manifest, "--device", "hfo2_tio2_bilayer"]) == 0
        assert "hfo2_tio2_bilayer: limits +-3 V, 1 s" in capsys.readouterr().out
        assert main(["infer", str(tmp_path / "x.npy"), *port, *manifest, "--out", str(tmp_path / "y.npy")]) == 0
    d = load_device("hfo2_tio2_bilayer")
    dep = Deployment.load(tmp_path / "m.json")
    targets = np.concatenate([np.ravel(p.targets) for p in dep.placements])
    assert d.g_min <= targets.min() and targets.max() <= d.g_max  # the family's window, not the default 10-100 uS
    y, want = np.load(tmp_path / "y.npy"), forward(layers, x)
    assert np.mean(np.argmax(y, 1) == np.argmax(want, 1)) >= 0.8, (y, want)
