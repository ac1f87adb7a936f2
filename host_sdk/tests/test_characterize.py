"""memctl characterize end to end: emulated board -> HDF5 + PNG."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from memctl.characterize import read_hdf5
from memctl.cli import main
from memctl_emulation import EmulatedBoard


@pytest.fixture(scope="module")
def hfo2_port():
    with EmulatedBoard(rows=2, cols=2, seed=9, device="hfo2_tio2_bilayer") as emu:
        yield emu.port


def test_characterize_writes_every_pulse_and_a_plot(hfo2_port, tmp_path):
    out, png = tmp_path / "c.h5", tmp_path / "c.png"
    rc = main([
        "characterize", "--port", hfo2_port, "--out", str(out), "--plot", str(png), "--devices", "0,0", "1,1",
        "--periods", "30", "--t-set", "0.1", "0.5", "--limits", "2.5", "2", "0.6", "--reset", "-2", "0.5", "20",
    ])  # fmt: skip
    assert rc == 0
    table, attrs = read_hdf5(out)
    assert len(table) == 2 * 2 * 30
    assert set(np.unique(table["t_set"])) == {0.1, 0.5}
    assert table["N"].min() == 1 and table["N"].max() == 30
    assert np.all(table["V_set"] == 2.0) and np.all(table["V_r"] == 0.5)
    assert attrs["board.hal"].startswith("emulated")
    with h5py.File(out) as f:
        curves = f["curves/read_current"][()]
    assert curves.shape == (4, 30)
    # Each curve rises: the longer set pulse rises further.
    rise = curves[:, -1] - curves[:, 0]
    assert np.all(rise > 0)
    t_set = np.array([0.1, 0.1, 0.5, 0.5])  # sweep order: t_set outer, devices inner
    assert rise[t_set == 0.5].min() > rise[t_set == 0.1].max()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_characterize_refuses_pulses_beyond_limits(hfo2_port, tmp_path, capsys):
    main(["set-limits", "--port", hfo2_port, "2.0", "1e-3", "0.3"])
    rc = main(["characterize", "--port", hfo2_port, "--out", str(tmp_path / "x.h5"), "--periods", "5"])
    assert rc == 2
    assert "safety-limit" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()


def test_corrupt_hdf5_is_a_clear_error(tmp_path):
    p = tmp_path / "bad.h5"
    p.write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        read_hdf5(p)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(ValueError, match="not a memctl characterization"):
        read_hdf5(tmp_path / "other.h5")


def test_emulate_with_a_bad_device_file_is_a_clear_error(tmp_path, capsys):
    p = tmp_path / "d.toml"
    p.write_text("[device]\npreset = 'tio2_4terminal'\nv_sett = 1\n")
    assert main(["emulate", "--device", str(p)]) == 2
    assert "unknown parameter 'v_sett'" in capsys.readouterr().err
