"""The rv32 board (MicroPython's qemu port on a 32-bit RISC-V): a firmware
update over the protocol reboots QEMU into the new image from its flash, and
every programming algorithm converges there. Other suites run on rv32 where
they set RV32 or mark a test rv32 (conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
from test_algorithms import _inverse_predictor, _reachable_targets
from test_reliability import TOL, check_truthful, targets

import memctl
from memctl import flash as fl
from memctl.devices import PRESETS
from memctl.firmware_image import build, verify
from memctl.tuning import form, settings_for
from memctl_emulator import EmulatedBoard

pytestmark = pytest.mark.rv32(only=True)


def test_an_update_over_the_protocol_reboots_the_board_into_it(tmp_path):
    with EmulatedBoard(seed=3, hal="rv32") as emu, memctl.Board(emu.port, progress=False) as b:
        info = b.info()
        assert info.arch == "rv32imc" and info.heap_size > 250_000 and info.hal.startswith("rv32:")
        image = build(tmp_path, "rv32imc")
        want = verify(image)["image_hash"][:16]
        assert info.image == want  # the launcher installed this build on the board's flash
        g = b.read(0, 0)
        assert fl.update(b, image) == want  # streamed into slot a, checked, switched, rebooted
        assert emu.reboots == 1
        assert open(f"{emu.flash}/fw/active").read() == "a"  # the flash outlived the QEMU restart
        after = b.info()
        assert after.image == want and after.boot_id != info.boot_id and after.limits == info.limits
        assert b.read(0, 0) == pytest.approx(g, rel=0.05)


@pytest.fixture(scope="module")
def tio2_predictor(tmp_path_factory) -> bytes:
    """An int8 inverse predictor, characterized on another board of the family on the unix port."""
    return _inverse_predictor("tio2_4terminal", 70, tmp_path_factory.mktemp("predictor"), "1T1R", hal="emulated")


@pytest.fixture(scope="module")
def tio2_board(tio2_predictor):
    name = "tio2_4terminal"
    with EmulatedBoard(rows=1, cols=1, seed=17, device=name, hal="rv32") as emu:
        with memctl.Board(emu.port, progress=False) as b:
            s = settings_for(name)
            s.apply(b, min_width=1e-3)
            if PRESETS[name].v_form:
                form(b, 0.9 * PRESETS[name].v_form)
            yield name, emu, b, s


def test_every_algorithm_converges_on_the_32_bit_board(tio2_board, tio2_predictor):
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


def test_a_reset_mid_program_is_resynchronized_and_nothing_runs_twice():
    """The board resets right after a pulse of a PROGRAM stream (QEMU killed and booted again); the host
    resynchronizes, resumes, and every device's result is what the array holds."""
    with EmulatedBoard(seed=29, hal="rv32") as emu, memctl.Board(emu.port, timeout=0.5, progress=False) as b:
        worker = emu.reset_at_pulse(40)
        res = b.program(targets(4, 4), tolerance=TOL, max_pulses=200)
        worker.join()
        afe = emu.afe()
        _, truth = afe.truth()
        afe.close()
    assert emu.resets == 1 and b.resets == 1, "\n".join(emu.log[-60:])
    check_truthful(res, truth)
