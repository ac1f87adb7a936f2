# The emulated board's analog bus: how the firmware's emulated HAL talks to
# the analog front end process (memctl_emulator/afe_server.py). Shared by both
# sides, like wire.py, so the two ends cannot drift. Written in the subset
# MicroPython and CPython both run.
#
# One transaction = one message each way, so a whole pulse sequence (set
# lines, pulse, release) costs one round trip, like a queued SPI burst.
#   request:  <H length, then ops back to back
#   reply:    <IB length, status, then each op's result in order
# status 0 = ok; otherwise the reply body is a UTF-8 error message.
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


MSG_HEAD = "<H"
REPLY_HEAD = "<IB"
REPLY_HEAD_SIZE = const(5)

# Line groups: the HAL's own codes (memctl_firmware/hal/__init__.py), passed through.
ROWS = const(0)
COLS = const(1)
BOTH = const(2)
ALL_LINES = const(0xFFFF)

# opcode: args (struct after the opcode byte) -> result
OP_FILL = const(1)  # <Bh group, DAC code: drive every line of the group -> nothing
OP_SET = const(2)  # <BHh group, line, DAC code: drive one line -> nothing
OP_LINES = const(3)  # <BHH group, first, n, then n x <h codes -> nothing
OP_PULSE = const(4)  # <I width ns: connect lines to the array -> nothing
OP_SAMPLE = const(5)  # <BI current range, integration ns (0 = default): every column -> cols x <i
OP_INFO = const(6)  # -> the board description: INFO_FMT, range count x <f, name (board_wiring.encode_info)
OP_CLOCK = const(7)  # -> <q simulated nanoseconds (an integer: differences stay exact on a 32-bit float board)
OP_TRUTH = const(8)  # debug port, not for firmware: -> <I pulses, rows*cols x <d S
OP_FLOAT = const(9)  # <BH group, line (ALL_LINES = all): disconnect (high impedance) -> nothing
OP_WAIT = const(10)  # <I microseconds with lines released -> nothing
OP_GATE = const(11)  # <BH on, row (ALL_LINES = all): 1T1R word lines -> nothing
OP_STATS = const(12)  # debug port: <B clear peaks after reporting -> STATS_FMT
OP_RANGES = const(13)  # debug port: -> rows*cols x <dd each device's lowest and highest reachable G
OP_FAULT = const(14)  # debug port: <BHHf kind, row, col, value (FAULT_*) -> <I brown-outs so far
FAULT_QUERY = const(0)  # change nothing
FAULT_STUCK = const(1)  # device (row, col) sticks at its present conductance
FAULT_SATURATE = const(2)  # column col's ADC pins at full scale (value 1) or recovers (0); col ALL_LINES: all
FAULT_BROWNOUT = const(3)  # after row more pulses, the next gets value x its width, then the bus stalls (power lost)
FAULT_ADC_MISO = const(4)  # chips board: ADC row's data-out line stuck at value (0 or 255); value -1 mends it
# The chips backend's wires (memctl_emulator/hal_backends/hal_chips.py -> memctl_emulator/chips/front_end.py):
OP_PIN = const(15)  # <HB GPIO number, level -> nothing
OP_SPI = const(16)  # <H n, then n bytes clocked out to the selected chip -> nothing
OP_XFER = const(17)  # <H n, then n bytes out -> the n bytes clocked in
OP_STROBE = const(18)  # <I ns: the pulse gate's one-shot -> nothing
OP_FRAME = const(19)  # <HH GPIO, n, then n bytes: that pin low, the bytes written, the pin high -> nothing
OP_PEAKS = const(20)  # debug port: -> rows*cols x <d largest |V_row - V_col| each device saw in a pulse (since cleared)

OP_ARGS = {
    OP_FILL: "<Bh",
    OP_SET: "<BHh",
    OP_LINES: "<BHH",
    OP_PULSE: "<I",
    OP_SAMPLE: "<BI",
    OP_INFO: "",
    OP_CLOCK: "",
    OP_TRUTH: "",
    OP_FLOAT: "<BH",
    OP_WAIT: "<I",
    OP_GATE: "<BH",
    OP_STATS: "<B",
    OP_RANGES: "",
    OP_FAULT: "<BHHf",
    OP_PIN: "<HB",
    OP_SPI: "<H",
    OP_XFER: "<H",
    OP_STROBE: "<I",
    OP_FRAME: "<HH",
    OP_PEAKS: "",
}

# rows, cols, DAC bits, DAC full scale V, ADC bits, sample time s, 1T1R (0/1), range count: board_wiring's layout
INFO_FMT = "<HHBfBfBB"
INFO_SIZE = const(16)

# Counts since start: pulses, conversions, chip frames and gate windows (chips backend traffic); peaks since the
# last clear: largest |V_row - V_col| across any device in a pulse, longest pulse (s), largest in a conversion.
STATS_FMT = "<IIIIddd"
