# The rp2 port's backend: the reference board (docs/hardware.md) on a Raspberry
# Pi Pico (RP2040) or Pico 2 (RP2350, ARM or RISC-V). It builds machine.SPI,
# the select and mux pins and the PIO pulse gate from board_wiring.py and hands
# them to hal/chips.py's drivers; the host link is the USB CDC serial port,
# the storage the port's littlefs flash filesystem (cwd "/").
#
# The gate: a PIO state machine at the system clock raises the gate pin for a
# count of cycles the CPU puts in its FIFO and answers when it is low again,
# so a window lasts what the state machine did, whatever the CPU was doing.
# A width of n ns becomes floor(n * f / 1e9) cycles: never longer than asked
# (the width limit holds, as the DAC rounding keeps a voltage limit), at most
# one cycle shorter. The program holds the pin high for x + 2 cycles, so the
# shortest window is 2 cycles (16 ns at 125 MHz, 13.3 ns at 150 MHz) and the
# longest 2**32 + 1 cycles (34 s at 125 MHz, past HW_MAX_WIDTH). Board time
# counts those cycles and the waits: the time the array was driven or left
# to rest, as on the other backends, not the CPU's own time.
import select
import sys
import time

import machine
import micropython
import rp2

import board_wiring as w
from errors import HALError
from hal.chips import ChipFrontEnd

NAME = "rp2"
GATE_SM = 0
MIN_CYCLES = 2
SLEEP_NS = 1_000_000  # windows longer than this the CPU sleeps through (the gate keeps the time, not the CPU)
SLEEP_MARGIN_US = 200  # wake this early and poll for the gate's word


@rp2.asm_pio(set_init=rp2.PIO.OUT_LOW)
def _gate():
    pull(block)
    mov(x, osr)
    set(pins, 1)
    label("high")
    jmp(x_dec, "high")
    set(pins, 0)
    push(block)  # the window is over: the CPU's get() returns


class GateTimer:
    """The timer interface hal/chips.py drives: pulse(ns), sleep_us(us), ns(), sync()."""

    def __init__(self, pin):
        self.hz = machine.freq()
        self.khz = self.hz // 1000
        self.sm = rp2.StateMachine(GATE_SM, _gate, freq=self.hz, set_base=pin)
        self.sm.active(1)
        self.cycles = 0  # gate cycles so far
        self.waited = 0  # ns waited so far

    def window_cycles(self, ns):
        """The cycles a window of ns lasts: rounded down, never past the request."""
        return ns * self.khz // 1000000

    def pulse(self, ns):
        c = self.window_cycles(ns)
        if c < MIN_CYCLES:
            raise HALError("gate window of " + str(ns) + " ns is shorter than the gate's 2 cycles")
        self.sm.put(c - MIN_CYCLES)
        if ns > SLEEP_NS:  # a long window (paper 004's set pulses last up to 1.3 s): wait it out asleep
            time.sleep_us(ns // 1000 - SLEEP_MARGIN_US)
        self.sm.get()  # lines may change only once the window is closed
        self.cycles += c

    def sleep_us(self, us):
        if us > 0:
            time.sleep_us(us)
            self.waited += us * 1000

    def ns(self):
        return self.cycles * 1000000 // self.khz + self.waited

    def sync(self):
        pass  # pulse() returns once the gate has closed; SPI writes complete in the call


class UsbUart:
    """The host link on the USB CDC serial port (MicroPython's stdio)."""

    def __init__(self):
        micropython.kbd_intr(-1)  # 0x03 is data on this line, not Ctrl-C
        self.inp = sys.stdin.buffer
        self.out = sys.stdout.buffer
        self.poller = select.poll()
        self.poller.register(sys.stdin, select.POLLIN)
        self.one = bytearray(1)

    def _ready(self, timeout_ms):
        for _ in self.poller.ipoll(timeout_ms):
            return True
        return False

    def readinto(self, buf, timeout_ms):
        # stdin reads block for every byte asked: take what is there, a byte at a time.
        if not self._ready(timeout_ms):
            return 0
        n = 0
        size = len(buf)
        one = self.one
        while n < size:
            self.inp.readinto(one)
            buf[n] = one[0]
            n += 1
            if not self._ready(0):
                break
        return n

    def write(self, buf, n):
        self.out.write(buf if n == len(buf) else memoryview(buf)[:n])


def board_info():
    """The board description kept on the flash, else the reference board's."""
    try:
        with open(w.BOARD_FILE, "rb") as fh:
            return w.decode_info(fh.read())
    except OSError:
        return w.REFERENCE


def connect():
    """(uart, front end, flash folder) for hal.connect()."""
    spi = machine.SPI(
        0,
        baudrate=w.SPI_BAUD,
        polarity=0,
        phase=1,  # mode 1 for every chip
        sck=machine.Pin(w.PIN_SCK),
        mosi=machine.Pin(w.PIN_MOSI),
        miso=machine.Pin(w.PIN_MISO),
    )
    pins = {}

    def pin(n):
        if n > 29:
            raise HALError("GPIO " + str(n) + ": the rp2 board drives arrays up to 32 x 32")
        p = pins.get(n)
        if p is None:
            # Selects idle high; the range mux starts disabled, its enable low before any address line moves.
            idle = 0 if n == w.PIN_MUX_EN or n in w.PIN_MUX_A else 1
            p = pins[n] = machine.Pin(n, machine.Pin.OUT, value=idle)
        return p

    pin(w.PIN_MUX_EN)

    clk = machine.PWM(machine.Pin(w.PIN_ADC_CLKIN), freq=w.ADC_CLKIN_HZ, duty_u16=32768)
    timer = GateTimer(machine.Pin(w.PIN_GATE, machine.Pin.OUT, value=0))
    fe = ChipFrontEnd(spi, pin, timer, board_info())
    fe.adc_clock = clk
    return UsbUart(), fe, ""
