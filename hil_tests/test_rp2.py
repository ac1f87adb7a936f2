"""What only the rp2 board has: a pulse gate counted in PIO cycles, chips on a real SPI bus that can answer
wrongly, and a flash that the board itself writes. The board's shared suites (end to end, safety limits, bad
input, test_targets.py) run here too (conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

import memctl
from memctl_emulator import EmulatedBoard, rp2
from memctl_emulator.hal_backends import afe_bus as bus
from memctl_shared import wire

pytestmark = pytest.mark.rp2(only=True)


@pytest.fixture(scope="module")
def emu(hal):
    with EmulatedBoard(rows=4, cols=4, seed=11, hal=hal) as e:
        yield e


def test_the_array_sees_each_gate_window_within_one_cycle_and_never_longer(board, afe):
    """Widths across the range the limits allow: the front end records the window the gate's edges made in
    simulated time, not the width asked for."""
    step = rp2.GATE_STEP
    limit = board.info().limits.width
    widths = np.unique(np.r_[np.geomspace(20e-9, limit, 12), 16e-9, 17e-9, 23.4e-9, limit])
    seen = []
    for w in widths:
        afe.stats(clear=True)
        board.pulse(0, 0, 0.3, float(w))  # below every threshold: nothing moves
        seen.append(afe.stats().peak_width)
    asked = np.round(np.array([np.float32(w) for w in widths], float) / 1e-9) * 1e-9  # the firmware's whole ns
    seen = np.array(seen)
    assert np.all(seen <= asked + 1e-15), (asked, seen)
    assert np.all(seen > asked - step - 1e-15), (asked, seen)
    assert np.all(np.abs(seen / step - np.round(seen / step)) < 1e-6)  # whole state-machine cycles


def test_a_window_shorter_than_the_gate_makes_is_refused_and_nothing_moves(board, afe):
    n0, _ = afe.truth()
    with pytest.raises(memctl.FirmwareError, match="shorter than the gate") as e:
        board.pulse(0, 0, 0.3, 10e-9)
    assert e.value.code == wire.E_HAL
    assert afe.truth()[0] == n0


def test_an_adc_that_answers_wrongly_is_named_and_no_pulse_follows(board, afe, emu):
    """ADC 0's data-out line stuck high (an unpowered chip): a read and a PROGRAM fail with a HAL error naming
    the chip; the program's first verify read fails before any pulse."""
    dbg = emu.afe()
    try:
        dbg.fault(bus.FAULT_ADC_MISO, row=0, value=255)
        n0, _ = afe.truth()
        with pytest.raises(memctl.FirmwareError, match=r"ADC 0 \(ADS131M08\)") as e:
            board.read(1, 1)
        assert e.value.code == wire.E_HAL
        with pytest.raises(memctl.FirmwareError, match=r"ADC 0 \(ADS131M08\)"):
            board.program(np.full((1, 1), 50e-6), tolerance=1e-6, origin=(1, 1))
        assert afe.truth()[0] == n0
    finally:
        dbg.fault(bus.FAULT_ADC_MISO, row=0, value=-1)
        dbg.close()
    assert board.read(1, 1) > 0  # mended: the board serves again


def test_what_the_board_wrote_to_its_flash_survives_a_power_cycle(board, emu):
    """Limits and the session tag live in the board's littlefs, written through MicroPython's rp2.Flash (the
    harness answers the bootrom's erase and program calls): a reset relaunches the emulator on the same image."""
    before = board.info()
    board.set_limits(1.7, 5e-4, 0.25)
    emu.reset()
    board.resync()
    after = board.info()
    assert after.boot_id != before.boot_id
    assert (after.limits.v_pulse, after.limits.width, after.limits.v_read) == pytest.approx((1.7, 5e-4, 0.25))
    assert rp2.read_flash(emu.flash_image, "memctl_settings.bin")  # the board's own file, in its flash image
    board.set_limits(*(getattr(before.limits, k) for k in ("v_pulse", "width", "v_read")))


def test_a_pico_with_micropython_only_gets_memctl_through_mpremote_then_updates(tmp_path, capsys):
    """The path a Pico owner follows: MicroPython flashed (the UF2), `memctl flash` finds its REPL and installs
    the armv6m image with mpremote, the board boots it; the next `memctl flash` updates over the protocol."""
    from memctl import flash as fl
    from memctl.cli import main
    from memctl.firmware_image import build, verify

    image = build(tmp_path / "image", "armv6m")
    want = verify(image)["image_hash"][:16]
    with EmulatedBoard(rows=4, cols=4, seed=8, hal="rp2", bare=True) as emu:
        assert fl.board_arch(emu.port) == "armv6m"  # MicroPython's REPL answers on the USB serial port
        assert main(["flash", "--port", emu.port, "--image", str(image), "--no-progress"]) == 0
        assert want in capsys.readouterr().out
        assert rp2.read_flash(emu.flash_image, "fw/active") == b"a"
        with memctl.Board(emu.port, progress=False) as b:
            info = b.info()
            assert info.image == want and info.hal.startswith("rp2:")
        assert main(["flash", "--port", emu.port, "--out", str(tmp_path / "out"), "--no-progress"]) == 0
        assert rp2.read_flash(emu.flash_image, "fw/active") == b"b"  # the update went to the other slot
        assert emu.reboots >= 2
