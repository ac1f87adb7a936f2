"""The boards on real MicroPython ports: rv32 (the qemu port on a 32-bit RISC-V) and rp2 (the rp2 port on an
emulated RP2040, the firmware driving the reference board's chips through machine.SPI, Pin and PIO). A firmware
update over the protocol reboots the board into the new image from its flash, every programming algorithm
converges there, a small network deploys and runs, and a reset mid-program is resynchronized. Other suites run on
these targets where they set RV32 / RP2 or mark a test rv32 / rp2 (conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from test_algorithms import _inverse_predictor, _reachable_targets
from test_reliability import TOL, check_truthful, targets

import memctl
import memctl_firmware
from memctl import flash as fl
from memctl.deployment import deploy
from memctl.devices import PRESETS
from memctl.firmware_image import build, verify
from memctl.onnx_mlp import to_onnx
from memctl.tuning import form, settings_for
from memctl_emulator import EmulatedBoard, rp2

pytestmark = [pytest.mark.rv32(only=True), pytest.mark.rp2(only=True)]

ARCH = {"rv32": "rv32imc", "rp2": "armv6m"}


def flash_file(emu: EmulatedBoard, path: str) -> bytes:
    """A file on the board's flash as the board keeps it (rp2: inside the flash image)."""
    if emu.target == "rp2":
        return rp2.read_flash(emu.flash_image, path)
    return Path(emu.flash, path).read_bytes()


def test_an_update_over_the_protocol_reboots_the_board_into_it(tmp_path, hal):
    with EmulatedBoard(rows=4, cols=4, seed=3, hal=hal) as emu, memctl.Board(emu.port, progress=False) as b:
        info = b.info()
        assert info.arch == ARCH[hal] and info.heap_size > 200_000 and info.hal.startswith(f"{hal}:")
        image = build(tmp_path, ARCH[hal])
        want = verify(image)["image_hash"][:16]
        assert info.image == want  # the launcher installed this build on the board's flash
        g = b.read(0, 0)
        assert fl.update(b, image) == want  # streamed into slot a, checked, switched, rebooted
        assert emu.reboots == 1
        assert flash_file(emu, "fw/active") == b"a"  # the flash outlived the restart
        after = b.info()
        assert after.image == want and after.boot_id != info.boot_id and after.limits == info.limits
        assert b.read(0, 0) == pytest.approx(g, rel=0.05)


def _image_with_names(tmp_path: Path, arch: str, n: int) -> Path:
    """The firmware image with one more module, imported first by app.py, whose code names n attributes of its
    own: loading it interns n new names (qstrs), as an update that brings new code does."""
    root = Path(memctl_firmware.__file__).resolve().parents[1]
    fw = Path(shutil.copytree(root / "memctl_firmware", tmp_path / "memctl_firmware"))
    shutil.copytree(root / "memctl_shared", tmp_path / "memctl_shared")
    body = "".join(f"    o.name_{k:04d}\n" for k in range(n))
    (fw / "names.py").write_text(f"def touch(o):\n{body}")
    (fw / "manifest.py").write_text((fw / "manifest.py").read_text() + 'module("names.py")\n')
    (fw / "app.py").write_text("import names  # noqa: F401\n" + (fw / "app.py").read_text())
    return build(tmp_path / "image", arch, fw)


def test_the_heap_after_boot_holds_new_names_the_largest_blob_and_an_update(tmp_path, hal):
    """The board's buffers are taken at boot, its firmware is frozen and boot collects as it goes, so loading code
    cannot fragment the heap into failure: on a board running an update that brings 1 000 names of its own (the
    modules it changed loaded from the flash onto the heap), a predictor of the largest blob size loads and a
    full firmware update goes through; on the frozen firmware it came from, the largest predictor loads too."""
    from limits_probe import largest_predictor

    blob = largest_predictor()
    names = _image_with_names(tmp_path / "names", ARCH[hal], 1000)
    stock = build(tmp_path / "stock", ARCH[hal])
    with EmulatedBoard(rows=4, cols=4, seed=38, hal=hal) as emu, memctl.Board(emu.port, progress=False) as b:
        assert b.load_predictor(blob) > 13_000  # on the frozen firmware
        assert fl.update(b, names) == verify(names)["image_hash"][:16]
        assert b.load_predictor(blob) > 13_000
        assert fl.update(b, stock) == verify(stock)["image_hash"][:16]
        assert b.load_predictor(blob) > 13_000
        assert not any("MemoryError" in line for line in emu.log)


@pytest.fixture(scope="module")
def tio2_predictor(tmp_path_factory) -> bytes:
    """An int8 inverse predictor, characterized on another board of the family on the unix port."""
    return _inverse_predictor("tio2_4terminal", 70, tmp_path_factory.mktemp("predictor"), "1T1R", hal="emulated")


@pytest.fixture(scope="module")
def tio2_board(tio2_predictor, hal):
    name = "tio2_4terminal"
    with EmulatedBoard(rows=1, cols=1, seed=17, device=name, hal=hal) as emu:
        with memctl.Board(emu.port, progress=False) as b:
            s = settings_for(name)
            s.apply(b, min_width=1e-3)
            if PRESETS[name].v_form:
                form(b, 0.9 * PRESETS[name].v_form)
            yield name, emu, b, s


def test_every_algorithm_converges_on_the_board(tio2_board, tio2_predictor):
    """ISPP, adaptive, predictor-guided (an int8 inverse model, characterized on the unix port) and FFP (with
    the V_w table it calibrates) on one preset."""
    from memctl.ffp import calibrate

    name, emu, b, s = tio2_board
    targets = _reachable_targets(emu, name)
    for algo in (s.ispp, s.adaptive):
        res = b.program(targets, tolerance=s.tolerance, max_pulses=400, algorithm=algo)
        assert res.ok.all(), (type(algo).__name__, res.status_names())
    b.load_predictor(tio2_predictor)
    res = b.program(targets, tolerance=s.tolerance, max_pulses=1000, algorithm=s.predicted)
    assert res.ok.all(), ("predicted", res.status_names(), res.pulses)
    b.set_limits(7.0, 2.0, 0.3)
    b.configure(v_read=0.1)
    ffp = memctl.FFP(window_lo=0.1 / 800**2, window_hi=0.3 / 800**2)
    calibrate(b, 0, 0, ffp, 1 / 885, 1 / 735, sweeps=1)
    res = b.program(np.array([[1 / 820.0]]), tolerance=0.25 / 800**2, max_pulses=2000, algorithm=ffp)
    assert res.ok.all(), ("ffp", res.status_names())


def test_a_reset_mid_program_is_resynchronized_and_nothing_runs_twice(hal):
    """The board resets right after a pulse of a PROGRAM stream (its process killed and booted again); the host
    resynchronizes, resumes, and every device's result is what the array holds."""
    with EmulatedBoard(rows=4, cols=4, seed=29, hal=hal) as emu, memctl.Board(emu.port, timeout=0.5) as b:
        b.progress = False
        worker = emu.reset_at_pulse(12)
        res = b.program(targets(2, 3), tolerance=TOL, max_pulses=200)
        worker.join()
        afe = emu.afe()
        _, truth = afe.truth()
        afe.close()
    assert emu.resets == 1 and b.resets == 1, "\n".join(emu.log[-60:])
    check_truthful(res, truth)


def test_a_small_network_deploys_and_the_controller_runs_it(hal):
    """A 3-2-2 MLP in differential pairs: programmed with write-verify, then run by the controller (VMMs, gain,
    activation, the next layer's inputs) and composed on the host: both agree with the digital model."""
    from memctl.deployment import Layer

    rng = np.random.default_rng(2)
    w = [rng.normal(size=(2, 3)), rng.normal(size=(2, 2))]
    b_ = [rng.normal(size=2) * 0.2, rng.normal(size=2) * 0.2]
    model = to_onnx([Layer(w[0], b_[0], "Relu"), Layer(w[1], b_[1], None)])
    x = rng.uniform(-1, 1, (12, 3))
    want = np.maximum(x @ w[0].T + b_[0], 0) @ w[1].T + b_[1]
    with EmulatedBoard(rows=8, cols=8, seed=8, hal=hal) as emu, memctl.Board(emu.port, progress=False) as board:
        dep = deploy(model, board, tolerance=0.5e-6, max_pulses=300)
        assert dep.cost()["pulses"] > 0
        on_board = dep.run(board, x)
        host = dep.run(board, x, on_board=False)
    scale = np.abs(want).max()
    assert np.abs(on_board - want).max() < 0.15 * scale, (on_board, want)
    assert np.abs(host - want).max() < 0.15 * scale
