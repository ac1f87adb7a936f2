"""The predictor workflow as commands: characterize a family, fit, load; export checks its extra first."""

from __future__ import annotations

import re

import h5py
import numpy as np

from memctl.characterize import read_hdf5
from memctl.cli import main
from memctl_emulator import EmulatedBoard


def test_characterize_fit_load_from_the_cli(tmp_path, capsys):
    out = tmp_path / "hfo2"
    with EmulatedBoard(rows=2, cols=4, seed=9, device="hfo2_tio2_bilayer") as emu:
        port = ["--port", emu.port, "--no-progress"]
        argv = ["predictor", "characterize", *port, "--device", "hfo2_tio2_bilayer", "--out", str(out)]
        assert main([*argv, "--pulses", "60"]) == 0
        said = " ".join(capsys.readouterr().out.split())
        table, attrs = read_hdf5(out / "pulses.h5")
        assert attrs["mode"] == "pulses" and len(table) == 4 * 61
        assert attrs["device"] == "hfo2_tio2_bilayer" and "predictor characterize" in attrs["command_line"]
        assert attrs["board.limits.width"] > 0.5 and attrs["board.limits.width.unit"] == "s"
        with h5py.File(out / "pulses.h5") as f:
            assert f["pulses"].attrs["I_r.unit"] == "A" and f["curves/read_current"].attrs["unit"] == "A"
        assert np.all(np.diff(table["t"][table["curve"] == 0]) >= 0)  # board time of each read, in order
        assert (out / "pulses.png").stat().st_size > 1000
        # What it covered of the family's window (1..25 uA at 0.5 V), as the file holds it.
        covered = re.search(r"read currents ([\d.]+)\.\.([\d.]+) uA covered, (\d+)% of the family's 1\.\.25 uA", said)
        lo, hi = table["I_r"].min() * 1e6, table["I_r"].max() * 1e6
        assert covered and float(covered[1]) == float(f"{lo:.3g}") and float(covered[2]) == float(f"{hi:.3g}"), said
        assert int(covered[3]) == round(100 * (min(hi, 25) - max(lo, 1)) / 24)
        # The printed next step is the command that works.
        fit = said.split("next: ", 1)[1].split(" && ")[0].split()
        assert fit[:3] == ["memctl", "predictor", "fit"]
        assert main(fit[1:]) == 0
        said = capsys.readouterr()
        assert covered[0] in " ".join(said.out.split())  # fit says it again
        # 60 pulses a device stop short of the top of the window: fit names the currents left out.
        gap = f"targets read at {hi:.3g}..25 uA lie outside the characterization: a model fitted on it extrapolates"
        assert hi < 25 - 1.2 and gap in " ".join(said.err.split()), said.err
        assert main(["predictor", "load", str(out / "model.mcpr"), *port]) == 0
        assert "loaded a" in capsys.readouterr().out


def test_predictor_export_without_its_extra_writes_nothing(tmp_path, capsys, monkeypatch):
    import memctl.cli.predictor as predictor_cli

    monkeypatch.setattr(predictor_cli, "EXPORT_MODULES", {"tflite_not_installed_here": "tflite"})
    target = tmp_path / "export"
    assert main(["predictor", "export", str(tmp_path / "any.h5"), "--out-dir", str(target)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "pip install 'memctl[export]'" in err and "missing: tflite" in err and "Nothing was written" in err
    assert not target.exists()
