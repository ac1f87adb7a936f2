"""Device presets and device files: clear errors that name the parameter."""

from __future__ import annotations

import json

import numpy as np
import pytest

from memctl.devices import PRESETS, DeviceFileError, DeviceModel, device_from_dict, load_device
from memctl_emulator import EmulatedBoard
from memctl_emulator.array_circuit import LineDrive
from memctl_emulator.crossbar import Crossbar


def test_presets_cite_their_sources():
    assert set(PRESETS) == {"tio2_4terminal", "hfo2_tio2_bilayer", "pt_al2o3_tio2_passive", "perovskite_lognormal"}
    for m in PRESETS.values():
        assert "paper 00" in m.source and "paper 00" in m.reproduces
        m.validate()


def _drive_all(xb: Crossbar, v: float, width: float, n: int) -> None:
    """Every device sees v (rows at v, columns at 0), n times."""
    drive = LineDrive.driven(np.full(xb.rows, v), np.zeros(xb.cols))
    for _ in range(n):
        xb.apply(drive, width)


def _read(xb: Crossbar) -> np.ndarray:
    """Each device's conductance, measured row by row at the preset's read voltage through the array."""
    v = xb.device.v_read
    g = np.empty((xb.rows, xb.cols))
    for r in range(xb.rows):
        rows = np.zeros(xb.rows)
        rows[r] = v
        g[r] = xb.column_currents(LineDrive.driven(rows, np.zeros(xb.cols)), noise_scale=0.0) / v
    return g


def test_the_four_terminal_preset_switches_between_the_papers_resistances():
    """Paper 001: initialization pulses of +-6 V bring the device to HRS 880 ohm and LRS 740 ohm."""
    xb = Crossbar(8, 8, PRESETS["tio2_4terminal"], seed=1)
    _drive_all(xb, -6.0, 0.8, 10)
    hrs = np.median(1 / _read(xb))
    _drive_all(xb, 6.0, 0.8, 10)
    lrs = np.median(1 / _read(xb))
    assert hrs == pytest.approx(880, rel=0.01) and lrs == pytest.approx(740, rel=0.01)


def test_the_passive_preset_has_the_papers_range_and_unformable_share():
    """Paper 003: 10-100 uS, and 1-2.5 % of devices that a forming ramp does not
    form stay fixed; here the ramp reaches the board's 2.5 V."""
    d = PRESETS["pt_al2o3_tio2_passive"]
    shares = []
    for seed in range(3):
        xb = Crossbar(64, 64, d, seed=seed)
        _drive_all(xb, d.v_max, d.pulse_width, 1)  # forming
        _drive_all(xb, -d.v_max, d.pulse_width, 5)
        lo = _read(xb)
        _drive_all(xb, d.v_max, d.pulse_width, 5)
        hi = _read(xb)
        fixed = np.abs(hi - lo) < 0.01 * (d.g_max - d.g_min)
        shares.append(fixed.mean())
        assert np.median(lo[~fixed]) == pytest.approx(10e-6, rel=0.05)
        assert np.median(hi[~fixed]) == pytest.approx(100e-6, rel=0.05)
    assert all(0.01 <= s <= 0.025 for s in shares), shares


def test_toml_file_with_preset_base(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text('[device]\npreset = "hfo2_tio2_bilayer"\ng_max = 60e-6\nsource = "my lab"\n')
    m = load_device(p)
    assert m.g_max == 60e-6 and m.source == "my lab" and m.hardening == PRESETS["hfo2_tio2_bilayer"].hardening


def test_json_file_without_preset(tmp_path):
    p = tmp_path / "dev.json"
    p.write_text(json.dumps({"g_min": 1e-6, "g_max": 1e-5, "v_set": 0.9, "v_reset": -0.9}))
    m = load_device(p)
    assert m.name == "dev" and m.g_max == 1e-5


@pytest.mark.parametrize(
    "content, match",
    [
        ('[device]\npreset = "hfo2_tio2_bilayer"\ng_maks = 1e-5\n', "unknown parameter 'g_maks'; did you mean 'g_max'"),
        ("[device]\ng_min = 1e-6\n", "missing parameter g_max, v_set, v_reset"),
        ('[device]\npreset = "pt_al2o3_tio2_passive"\ng_max = 1e-7\n', "g_max = 1e-07 must be > g_min"),
        ('[device]\npreset = "pt_al2o3_tio2_passive"\nc2c_sigma = -1\n', "c2c_sigma = -1.0 must be >= 0"),
        ('[device]\npreset = "pt_al2o3_tio2_passive"\nv_set = "high"\n', "v_set = 'high' must be a number"),
        ('[device]\npreset = "nope"\n', "unknown preset 'nope'"),
        ("[device\n", "not a valid toml file"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, content, match):
    p = tmp_path / "bad.toml"
    p.write_text(content)
    with pytest.raises(DeviceFileError, match=match):
        load_device(p)


def test_neither_preset_nor_file():
    with pytest.raises(DeviceFileError, match="neither a preset"):
        load_device("no_such_device")


def test_emulated_board_refuses_bad_device_before_starting(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[device]\npreset = "hfo2_tio2_bilayer"\nhardening = 2\n')
    with pytest.raises(DeviceFileError, match="hardening = 2.0 must be in"):
        EmulatedBoard(device=p)


def test_nan_parameter_is_refused():
    with pytest.raises(DeviceFileError, match="must be finite"):
        device_from_dict({"preset": "tio2_4terminal", "rate_set": float("nan")})
    with pytest.raises(DeviceFileError, match="v_max"):
        DeviceModel(v_form=3.0, v_max=2.0).validate()
