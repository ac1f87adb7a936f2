"""memctl build-firmware: the firmware compiled with
mpy-cross, packed with hashes, and the compiled build booted on the emulated
board."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

import memctl
import memctl_firmware
import memctl_shared
from memctl.cli import main
from memctl.firmware_image import ImageError, board_files, build, verify
from memctl_emulator import EmulatedBoard, hal_backends


def test_images_for_the_board_and_for_emulation_verify(tmp_path):
    for arch in ("rv32imc", "x64"):
        m = verify(build(tmp_path, arch))
        assert m["arch"] == arch and "main.py" in m["files"] and "controller.mpy" in m["files"]
        assert "hal/ad5676.mpy" in m["files"] and not any(f.endswith(".py") and f != "main.py" for f in m["files"])
    with pytest.raises(ImageError, match="unknown architecture"):
        build(tmp_path, "z80")


def test_a_corrupt_or_partial_image_is_refused(tmp_path):
    good = build(tmp_path, "rv32imc")
    with zipfile.ZipFile(good) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        for n, data in parts.items():
            z.writestr(n, data[:-1] + bytes([data[-1] ^ 1]) if n == "wire.mpy" else data)
    with pytest.raises(ImageError, match="wire.mpy does not match"):
        verify(bad)
    with zipfile.ZipFile(bad, "w") as z:
        for n, data in parts.items():
            if n != "xbar.mpy":
                z.writestr(n, data)
    with pytest.raises(ImageError, match="files differ"):
        verify(bad)
    bad.write_bytes(b"not a zip")
    with pytest.raises(ImageError, match="not a readable"):
        verify(bad)


def test_the_compiled_firmware_boots_and_programs_on_the_emulated_board(tmp_path, capsys):
    assert main(["build-firmware", "--arch", "x64", "--out", str(tmp_path)]) == 0
    assert "image hash" in capsys.readouterr().out
    manifest = verify(tmp_path / "memctl-firmware-0.1.0-x64.zip")
    with EmulatedBoard(firmware_dir=tmp_path / "x64", seed=2) as emu, memctl.Board(emu.port, progress=False) as b:
        res = b.program(np.full((4, 4), 50e-6), tolerance=1e-6)
        assert res.ok.all()
        assert b.info().image == manifest["image_hash"][:16]  # INFO names the running image
    with EmulatedBoard(seed=2) as emu, memctl.Board(emu.port, progress=False) as b:
        assert b.info().image == "source"
    assert not list((tmp_path / "x64").glob("controller.py"))  # it really ran the .mpy build


def test_the_image_ships_what_the_manifest_lists_and_nothing_of_the_emulator(tmp_path):
    files = board_files()
    fw, shared = Path(memctl_firmware.__file__).parent, Path(memctl_shared.__file__).parent
    on_board = {p.relative_to(fw).as_posix() for p in fw.rglob("*.py") if "tests" not in p.parts}
    on_board |= {p.name for p in shared.glob("*.py")}
    assert set(files) == on_board - {"__init__.py", "manifest.py"}  # every module the board runs, no host marker
    backends = {p.name for p in Path(hal_backends.__file__).parent.glob("*.py")}
    assert not backends & set(files) and {"hal_emulated.py", "hal_chips.py", "afe_bus.py"} <= backends
    names = set(verify(build(tmp_path, "x64"))["files"])
    assert names == {f if f == "main.py" else f[:-3] + ".mpy" for f in files}
    # A manifest naming a file that is not there is refused, naming it.
    bad = tmp_path / "fw"
    shutil.copytree(fw, bad, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    (bad / "xbar.py").unlink()
    with pytest.raises(ImageError, match=r"lists xbar\.py, but .*xbar\.py does not exist"):
        board_files(bad)
