"""memctl characterize end to end: emulated board -> HDF5 + PNG."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from memctl.characterize import read_hdf5
from memctl.cli import main
from memctl_emulator import EmulatedBoard


@pytest.fixture(scope="module")
def hfo2_port():
    with EmulatedBoard(rows=2, cols=2, seed=9, device="hfo2_tio2_bilayer") as emu:
        yield emu.port


def test_characterize_writes_every_pulse_and_a_plot(hfo2_port, tmp_path):
    out, png = tmp_path / "c.h5", tmp_path / "c.png"
    rc = main(
        [
            "characterize",
            "--port",
            hfo2_port,
            "--out",
            str(out),
            "--plot",
            str(png),
            "--devices",
            "0,0",
            "1,1",
            "--periods",
            "30",
            "--t-set",
            "0.1",
            "0.5",
            "--limits",
            "2.5",
            "2",
            "0.6",
            "--reset",
            "-2",
            "0.5",
            "20",
        ]
    )
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


def test_single_pulse_characterization_trains_an_inverse_predictor(tmp_path):
    """--mode pulses: single pulses across the ranges, each row its own amplitude and width;
    the file trains an inverse predictor (feature set 2) that fits the firmware's budget."""
    from memctl.export.train import fit, load
    from memctl_shared import predictor_blob

    out = tmp_path / "p.h5"
    with EmulatedBoard(rows=2, cols=2, seed=12, device="perovskite_lognormal") as emu:
        rc = main(
            [
                "characterize",
                "--port",
                emu.port,
                "--mode",
                "pulses",
                "--device",
                "perovskite_lognormal",
                "--limits",
                "6",
                "0.01",
                "0.3",
                "--devices",
                "0,0",
                "0,1",
                "1,0",
                "1,1",
                "--pulses",
                "120",
                "--out",
                str(out),
                "--plot",
                str(tmp_path / "p.png"),
            ]
        )
    assert rc == 0
    table, attrs = read_hdf5(out)
    assert attrs["mode"] == "pulses" and len(table) == 4 * 121
    pulses = table[table["N"] > 0]
    assert np.all(pulses["V_set"] != 0) and len(np.unique(pulses["t_set"])) > 100  # every pulse its own width
    assert (pulses["V_set"] > 0).mean() > 0.3 and (pulses["V_set"] < 0).mean() > 0.3  # both polarities
    data = load([out])
    assert data.feature_set == predictor_blob.FEATURES_INVERSE and data.x.shape[1] == 4
    assert np.all(data.x[:, 1] * data.x[:, 3] > 0)  # only steps in the pulse's direction
    r = fit(data)
    assert r.model.n_params <= 600 and predictor_blob.check(r.int8_blob, len(r.int8_blob))
    # The spread output: on held-out devices, after each one's own offset (what the board
    # learns online), the amplitudes scatter about as much as it predicts.
    out = r.model.predict_all(data.x[r.test_mask])
    assert out.shape[1] == 2 and np.all(np.isfinite(out))
    res = data.y[r.test_mask] - out[:, 0]
    group = data.curve[r.test_mask] * 2 + (data.x[r.test_mask, 3] > 0)
    own = {gr: res[group == gr].mean() for gr in np.unique(group)}
    seen = np.mean(np.abs(res - np.array([own[gr] for gr in group]))) * np.sqrt(np.pi / 2)
    assert 0.5 < np.mean(out[:, 1]) / seen < 2, (np.mean(out[:, 1]), seen)
    # Exported and cross-checked like paper 004's predictors: the board's int8 is the integer truth.
    from memctl.export.check import cross_check, export

    rows = {row.runtime: row for row in cross_check(export(r, data, tmp_path / "model"))}
    assert rows["firmware int8 (MicroPython)"].max_deviation == 0 and rows["TFLite Micro int8"].max_deviation == 0
    assert rows["onnxruntime float"].max_deviation < 1e-4 * float(np.abs(data.y).max())
    assert "MISMATCH" not in {row.verdict for row in rows.values()}


def _write(path, *, mode=None, version=1, rows=4, nan=False):
    from memctl.characterize import FORMAT

    table = np.zeros(rows, dtype=[(k, "f8") for k in ("curve", "N", "t_set", "V_set", "I_r")])
    table["N"] = np.arange(rows)
    table["I_r"] = np.linspace(1e-6, 2e-6, rows)
    if nan:
        table["I_r"][2] = np.nan
    with h5py.File(path, "w") as f:
        f.attrs["format"], f.attrs["format_version"] = FORMAT, version
        if mode:
            f.attrs["mode"] = mode
        f.create_dataset("pulses", data=table)
    return path


@pytest.mark.parametrize(
    "kind, match",
    [
        ("nan", r"bad\.h5: 1 rows with a non-finite I_r \(first at row 2\)"),
        ("empty", r"bad\.h5 holds no pulses"),
        ("version", r"bad\.h5 has format version 9; this memctl reads 1\.\.1"),
        ("mode", r"bad\.h5 has mode 'bursts'; expected one of trains, pulses"),
    ],
)
def test_bad_characterization_data_names_the_file_and_the_problem(tmp_path, kind, match):
    from memctl.export.train import load

    p = _write(
        tmp_path / "bad.h5",
        nan=kind == "nan",
        rows=0 if kind == "empty" else 4,
        version=9 if kind == "version" else 1,
        mode="bursts" if kind == "mode" else None,
    )
    with pytest.raises(ValueError, match=match):
        load([p])


def test_files_of_different_modes_do_not_train_one_predictor(tmp_path):
    from memctl.export.train import load

    a = _write(tmp_path / "trains.h5")
    b = _write(tmp_path / "pulses.h5", mode="pulses")
    with pytest.raises(ValueError, match=r"different modes .*trains: .*trains\.h5; pulses: .*pulses\.h5"):
        load([a, b])


def test_a_second_output_is_refused_where_the_feature_set_has_none():
    """Only inverse models carry a spread output; a paper-004 blob with two is refused."""
    from memctl_shared.predictor_blob import ACT_NONE, FEATURES_P004_I, BlobError, check, encode

    layers = [([[0.1] * 7, [0.2] * 7], [0.0, 0.0], ACT_NONE)]
    blob = encode(layers, [0.0] * 7, [1.0] * 7, 0.0, 1.0, FEATURES_P004_I)
    with pytest.raises(BlobError, match="more outputs than its feature set takes"):
        check(blob, len(blob))
