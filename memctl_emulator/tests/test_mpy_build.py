"""memctl build-mpy and the rv32 target's checks, without building anything."""

from __future__ import annotations

import tarfile

import pytest

from memctl.cli import main
from memctl.firmware_image import board_files, manifest_files
from memctl_emulator import EmulatedBoard
from memctl_emulator.mpy_build import TARGETS, BuildError, build, frozen_hash


def test_a_missing_or_foreign_source_is_refused_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMCTL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("memctl_emulator.mpy_build.missing_tools", lambda t: [])
    with pytest.raises(BuildError, match="no MicroPython source at .*nowhere"):
        build(tmp_path / "nowhere")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "README").write_text("not micropython")
    with tarfile.open(tmp_path / "x.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "x", arcname="x")
    with pytest.raises(BuildError, match="not a MicroPython source tree"):
        build(tmp_path / "x.tar.gz")
    with pytest.raises(BuildError, match="unknown target 'z80'"):
        build(tmp_path / "x.tar.gz", target="z80")
    assert main(["build-mpy", "--src", str(tmp_path / "nowhere")]) == 2


def test_the_board_freezes_its_backend_and_the_firmware_but_its_boot_stub():
    backend = {"hal_port.py", "uart_mux.py", "afe_link.py", "bus_front_end.py", "afe_bus.py"}
    for target in ("rv32", "rp2"):
        frozen = manifest_files(TARGETS[target].board_dir / "manifest.py")
        firmware = set(board_files()) - {"main.py"}  # the boot stub stays on the flash
        assert set(frozen) == firmware | (backend if target == "rv32" else set())
        assert len(frozen_hash(TARGETS[target])) == 64


def test_the_rv32_board_refuses_options_it_does_not_have():
    with pytest.raises(ValueError, match="its own front end backend"):
        EmulatedBoard(target="rv32", hal="chips")
    with pytest.raises(ValueError, match="for the unix and rp2 targets"):
        EmulatedBoard(target="rv32", bare=True)
    with pytest.raises(ValueError, match="target must be one of unix, rv32"):
        EmulatedBoard(target="z80")
