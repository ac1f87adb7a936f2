"""Device presets and device files: clear errors that name the parameter."""

from __future__ import annotations

import json

import pytest

from memctl_emulation import EmulatedBoard
from memctl_emulation.devices import PRESETS, DeviceFileError, DeviceModel, device_from_dict, load_device


def test_presets_cite_their_sources():
    assert set(PRESETS) == {"tio2_4terminal", "hfo2_tio2_bilayer", "pt_al2o3_tio2_passive", "perovskite_lognormal"}
    for m in PRESETS.values():
        assert "paper 00" in m.source and "paper 00" in m.reproduces
        m.validate()


def test_paper_numbers_in_presets():
    tio2 = PRESETS["tio2_4terminal"]
    assert 1 / tio2.g_min == pytest.approx(880) and 1 / tio2.g_max == pytest.approx(740)  # ratio 1.19
    passive = PRESETS["pt_al2o3_tio2_passive"]
    assert (passive.g_min, passive.g_max, passive.v_read) == (10e-6, 100e-6, 0.2)
    assert 0.01 <= passive.stuck_fraction <= 0.025
    assert PRESETS["hfo2_tio2_bilayer"].v_read == 0.5


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
