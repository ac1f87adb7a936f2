"""Chip drivers against chip models: the bytes each
driver puts on the bus match the datasheet's command tables (golden
vectors), the models act on them, and malformed sequences raise."""

from __future__ import annotations

import subprocess

import pytest

from memctl.firmware_image import staged
from memctl_emulator.chips import ChipProtocolError, Pin, SPIBus
from memctl_emulator.chips.ad5676 import AD5676Model
from memctl_emulator.chips.adg1408 import ADG1408Model
from memctl_emulator.launcher import micropython_executable
from memctl_firmware.hal.ad5676 import AD5676, POWER_1K, POWER_100K, POWER_NORMAL, POWER_TRISTATE
from memctl_firmware.hal.adg1408 import ADG1408

# AD5676R datasheet, command table: 24-bit frame = C3..C0 | A3..A0 | D15..D0.
GOLDEN_AD5676 = [
    ("write and update DAC 3 to midscale", lambda d: d.write(3, 0x8000), b"\x33\x80\x00"),
    ("write input register 7, full scale", lambda d: d.stage(7, 0xFFFF), b"\x17\xff\xff"),
    ("update DAC register 0", lambda d: d.update(0), b"\x20\x00\x00"),
    (
        "power down: 0 1k, 1 100k, 7 three-state",
        lambda d: d.power([POWER_1K, POWER_100K] + [POWER_NORMAL] * 5 + [POWER_TRISTATE]),
        b"\x40\xc0\x09",
    ),
    ("software reset", lambda d: d.reset(), b"\x60\x00\x00"),
]


def wired(model_cls, driver_cls, name: str, select: str, *model_args):
    """A driver and its chip model on one bus: (bus, select pin, model, driver)."""
    bus, pin = SPIBus(), Pin(select)
    model = model_cls(name, pin, *model_args)
    bus.attach(model)
    return bus, pin, model, driver_cls(bus, pin)


# MicroPython side: the driver modules from memctl_firmware/hal, a bus that prints every frame it is given.
RECORDER = """
import sys
sys.path.insert(0, "hal")
class Pin:
    def __call__(self, v=None):
        pass
class SPI:
    def write(self, b):
        print(bytes(b).hex())
    def write_readinto(self, tx, rx):
        print(bytes(tx).hex())
"""


def run_micropython(script: str) -> list[str]:
    """The frames a driver script sends under the real MicroPython interpreter."""
    out = subprocess.run(
        [micropython_executable(), "-c", RECORDER + script],
        cwd=staged(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def dac():
    return wired(AD5676Model, AD5676, "dac0", "SYNC")


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
from ad5676 import AD5676, POWER_1K, POWER_100K, POWER_NORMAL, POWER_TRISTATE
d = AD5676(SPI(), Pin())
d.write(3, 0x8000); d.stage(7, 0xFFFF); d.update(0)
d.power([POWER_1K, POWER_100K] + [POWER_NORMAL] * 5 + [POWER_TRISTATE]); d.reset()
"""


def test_the_same_driver_under_micropython_sends_the_same_frames():
    assert run_micropython(RUNNER) == [g[2].hex() for g in GOLDEN_AD5676]


# ADS131M08 datasheet, command table: 16-bit command words, MSB-aligned in 24-bit words.
GOLDEN_ADS131M08 = [
    ("NULL", lambda d: d.frame(0x0000), "000000"),
    ("RESET", lambda d: d.frame(0x0011), "001100"),
    ("STANDBY", lambda d: d.frame(0x0022), "002200"),
    ("WAKEUP", lambda d: d.frame(0x0033), "003300"),
    ("LOCK", lambda d: d.frame(0x0555), "055500"),
    ("UNLOCK", lambda d: d.frame(0x0655), "065500"),
    ("RREG ID (address 0, one register)", lambda d: d.frame(0xA000), "a00000"),
    ("RREG STATUS (address 1)", lambda d: d.frame(0xA000 | 1 << 7), "a08000"),
    ("WREG address 3 = 0x1234", lambda d: d.frame(0x6000 | 3 << 7, 0x1234), "618000123400"),
]


def adc(source=None):
    from memctl_emulator.chips.ads131m08 import ADS131M08Model
    from memctl_firmware.hal.ads131m08 import ADS131M08

    return wired(ADS131M08Model, ADS131M08, "adc0", "CS", source)


@pytest.mark.parametrize("what,op,head", GOLDEN_ADS131M08, ids=[g[0] for g in GOLDEN_ADS131M08])
def test_ads131m08_driver_sends_the_datasheet_command_words(what, op, head):
    bus, _, _, drv = adc()
    op(drv)
    ((chip, frame),) = bus.log
    assert chip == "adc0" and len(frame) == 30  # ten 24-bit words
    assert frame.hex().startswith(head) and not any(frame[len(head) // 2 :])


def test_ads131m08_responses_come_one_frame_later_and_conversions_are_signed():
    codes = [0, 1, -1, 0x7FFFFF, -0x800000, 1234, -5678, 42]
    bus, _, model, drv = adc(lambda: codes)
    assert drv.reset()  # RESET, then the next frame carries 0xFF28
    assert drv.read_register(0x00) >> 8 == 0x28  # ID: an 8-channel part
    assert drv.write_register(0x03, 0x1234) == 0x4000 | 0x03 << 7
    assert drv.read_register(0x03) == 0x1234
    out = [0] * 8
    status = drv.read(out)
    assert out == codes and status & 0xFF == 0xFF  # DRDY for every channel
    drv.frame(0x0555)  # LOCK: writes are ignored until UNLOCK
    drv.write_register(0x03, 0x9999)
    assert drv.read_register(0x03) == 0x1234


def test_ads131m08_model_refuses_malformed_frames():
    bus, cs, _, drv = adc()
    cs(0)
    bus.write(bytes(24))  # eight words: too short while the ADCs convert
    with pytest.raises(ChipProtocolError, match="30 bytes"):
        cs(1)
    cs(0)
    bus.write(bytes([0, 0, 7]) + bytes(27))
    with pytest.raises(ChipProtocolError, match="must be 0"):
        cs(1)
    with pytest.raises(ChipProtocolError, match="read-only"):
        drv.write_register(0x00, 1)


RUNNER_ADC = """
from ads131m08 import ADS131M08
d = ADS131M08(SPI(), Pin())
for cmd, data in ((0x0000, 0), (0x0011, 0), (0x0022, 0), (0x0033, 0), (0x0555, 0), (0x0655, 0), (0xA000, 0),
                  (0xA080, 0), (0x6180, 0x1234)):
    d.frame(cmd, data)
"""


def test_the_adc_driver_under_micropython_sends_the_same_frames():
    got = run_micropython(RUNNER_ADC)
    want = []
    for _, op, _ in GOLDEN_ADS131M08:
        bus, _, _, drv = adc()
        op(drv)
        want.append(bus.log[0][1].hex())
    assert got == want


# ADG1414 datasheet: 8 bits per chip, D7..D0 = S8..S1 (1 = closed); in a daisy chain the first byte
# shifted out reaches the chip farthest from the controller.
def switches(chips=2):
    from memctl_emulator.chips.adg1414 import ADG1414Chain
    from memctl_firmware.hal.adg1414 import ADG1414

    bus, pin = SPIBus(), Pin("SYNC")
    model = ADG1414Chain("sw", pin, chips)
    bus.attach(model)
    return bus, pin, model, ADG1414(bus, pin, chips)


def test_adg1414_chain_gets_the_datasheet_frame_and_closes_those_switches():
    bus, _, model, drv = switches()
    drv.set(0, True)  # chip 0 S1
    drv.set(15, True)  # chip 1 S8
    drv.set(9, True)
    drv.set(9, False)
    assert not any(model.closed)  # nothing moves before the latch
    drv.latch()
    assert bus.log == [("sw", b"\x80\x01")]
    assert [i for i, c in enumerate(model.closed) if c] == [0, 15]
    sync = bus.chips[0]
    with pytest.raises(ChipProtocolError, match="framed 8 bits; a frame is 16 bits"):
        sync._select(0)
        bus.write(b"\x00")
        sync._select(1)


def test_the_board_model_refuses_what_the_reference_board_cannot_do():
    from memctl_emulator.afe import AFEConfig, AnalogFrontEnd
    from memctl_emulator.chips.front_end import ChipFrontEndModel

    board = ChipFrontEndModel(AnalogFrontEnd(AFEConfig(rows=4, cols=4), seed=0))
    with pytest.raises(ChipProtocolError, match="GPIO99 is not wired"):
        board.set_pin(99, 0)
    board.set_pin(26, 0)  # range mux EN low: the TIAs' feedback is open
    with pytest.raises(ChipProtocolError, match="TIA feedback open"):
        board.strobe(1000)
    assert board.afe.pulses == 0


RUNNER_BOARD = """
sys.path.insert(0, ".")
from hal.chips import ChipFrontEnd
class ResetAckSPI(SPI):
    def write_readinto(self, tx, rx):
        rx[0], rx[1] = 0xFF, 0x28  # every ADC frame answers as a freshly reset ADS131M08
pins = {}
def pin(n):
    return pins.setdefault(n, Pin())
timer = type("T", (), {"pulse": lambda s, ns: print("gate", ns), "sync": lambda s: None})()
fe = ChipFrontEnd(ResetAckSPI(), pin, timer, (2, 2, 16, 2.5, 24, 1e-4, 0, (1e-5, 1e-4), "x"))
fe.pulse(1e-6)  # the first gate writes every channel
print("--")
fe.set_line(0, 1, 1.25)
fe.set_line(0, 0, 0.5)
fe.set_line(0, 0, 0.0)  # back where it was before any gate: no frame for row 0
fe.float_line(1, 0)
fe.pulse(1e-6)
"""


def test_the_board_backend_under_micropython_writes_only_what_changes():
    """At the gate: one DAC frame per line whose voltage differs from what its channel holds (none for a line set
    and set back), one switch-chain frame, then the gate."""
    out = run_micropython(RUNNER_BOARD)
    after = out[out.index("--") + 1 :]
    v = round(1.25 / (2.5 / 32767)) + 32768  # code 32768 = 0 V
    # DAC0 channel 1 write-and-update; the chain (column chip first): column 1 only, rows 0 and 1
    assert after == [f"31{v:04x}", "0203", "gate", "1000"]
