"""Chip drivers against chip models (issue 8, first slice): the bytes each
driver puts on the bus match the datasheet's command tables (golden
vectors), the models act on them, and malformed sequences raise."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from memctl_emulation.chips import ChipProtocolError, Pin, SPIBus
from memctl_emulation.chips.ad5676 import AD5676Model
from memctl_emulation.chips.adg1408 import ADG1408Model
from memctl_emulation.launcher import FIRMWARE_DIR, micropython_executable
from memctl_firmware.hal.ad5676 import AD5676, POWER_1K, POWER_100K, POWER_NORMAL, POWER_TRISTATE
from memctl_firmware.hal.adg1408 import ADG1408

# AD5676R datasheet, command table: 24-bit frame = C3..C0 | A3..A0 | D15..D0.
GOLDEN_AD5676 = [
    ("write and update DAC 3 to midscale", lambda d: d.write(3, 0x8000), b"\x33\x80\x00"),
    ("write input register 7, full scale", lambda d: d.stage(7, 0xFFFF), b"\x17\xff\xff"),
    ("update DAC register 0", lambda d: d.update(0), b"\x20\x00\x00"),
    ("power down: 0 1k, 1 100k, 7 three-state",
     lambda d: d.power([POWER_1K, POWER_100K] + [POWER_NORMAL] * 5 + [POWER_TRISTATE]), b"\x40\xc0\x09"),
    ("software reset", lambda d: d.reset(), b"\x60\x00\x00"),
]  # fmt: skip


def dac():
    bus, sync = SPIBus(), Pin("SYNC")
    model = AD5676Model("dac0", sync)
    bus.attach(model)
    return bus, sync, model, AD5676(bus, sync)


@pytest.mark.parametrize("what,op,frame", GOLDEN_AD5676, ids=[g[0] for g in GOLDEN_AD5676])
def test_ad5676_driver_sends_the_datasheet_frames(what, op, frame):
    bus, _, _, drv = dac()
    op(drv)
    assert bus.log == [("dac0", frame)]


def test_ad5676_model_acts_on_them_and_reads_back():
    bus, _, model, drv = dac()
    drv.write(3, 0x8000)
    assert model.volts(3) == pytest.approx(2.5)  # midscale of 0..2 x 2.5 V
    drv.stage(5, 0x4000)
    assert model.volts(5) == 0.0  # staged only
    assert drv.readback(5) == 0x4000
    assert bus.log[-2:] == [("dac0", b"\x95\x00\x00"), ("dac0", b"\x00\x00\x00")]  # readback, then a NOP frame
    drv.update(5)
    assert model.volts(5) == pytest.approx(1.25)
    drv.power([POWER_1K] + [POWER_NORMAL] * 7)
    assert model.volts(0) is None and model.volts(3) == pytest.approx(2.5)


def test_malformed_sequences_raise_in_the_model():
    bus, sync, _, drv = dac()
    with pytest.raises(ChipProtocolError, match="exactly one chip-select"):
        bus.write(b"\x33\x80\x00")  # SYNC still high
    sync(0)
    bus.write(b"\x33\x80")
    with pytest.raises(ChipProtocolError, match="16 bits"):
        sync(1)
    with pytest.raises(ChipProtocolError, match="reserved"):
        drv.command(0xA, 0, 0)
    with pytest.raises(ChipProtocolError, match="channel 9"):
        drv.write(9, 1)


def test_adg1408_driver_breaks_before_it_makes():
    pins = [Pin(n, 0) for n in ("A0", "A1", "A2", "EN")]
    model = ADG1408Model("mux0", *pins)
    drv = ADG1408(*pins)
    assert model.connected is None
    drv.select(5)
    assert model.connected == 5
    drv.select(2)
    assert model.connected == 2
    drv.select(None)
    assert model.connected is None
    with pytest.raises(ValueError, match="0..7"):
        drv.select(8)
    pins[3](1)  # a driver that changes the address with the switches closed
    with pytest.raises(ChipProtocolError, match="EN high"):
        pins[0](1)


RUNNER = """
import sys
sys.path.insert(0, "hal")
from ad5676 import AD5676, POWER_1K, POWER_100K, POWER_NORMAL, POWER_TRISTATE
class Pin:
    def __call__(self, v=None):
        pass
class SPI:
    def write(self, b):
        print(bytes(b).hex())
d = AD5676(SPI(), Pin())
d.write(3, 0x8000); d.stage(7, 0xFFFF); d.update(0)
d.power([POWER_1K, POWER_100K] + [POWER_NORMAL] * 5 + [POWER_TRISTATE]); d.reset()
"""


def test_the_same_driver_under_micropython_sends_the_same_frames():
    out = subprocess.run([micropython_executable(), "-c", RUNNER], cwd=Path(FIRMWARE_DIR), capture_output=True,
                         text=True, timeout=30)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [g[2].hex() for g in GOLDEN_AD5676]
