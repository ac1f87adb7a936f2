# Hardware abstraction layer: the only firmware code that touches hardware.
#
# hal.connect() returns (backend name, uart, front_end, storage); a backend
# module provides connect() -> (uart, front_end, storage), storage being the
# folder of the board's flash filesystem where settings survive a reset:
#
# uart
#   readinto(buf, timeout_ms) -> n   bytes now available (0 on timeout)
#   write(buf, n)                    send buf[:n] completely
#
# front_end (DACs on every row and column line, a pulse switch, and a
# transimpedance amplifier + ADC on every column)
#   rows, cols, name
#   v_full_scale, v_lsb              DAC range and step (volts)
#   ranges                           TIA full-scale currents (amps), increasing
#   adc_max                          largest ADC code magnitude
#   quantize(v) -> v                 the voltage the DAC really produces
#   within(v, limit) -> v            the same, stepped back inside +-limit if rounding passed it
#   lsb(range_index) -> amps         current per ADC code on a range
#   fill(group, v)                   all lines of ROWS, COLS or BOTH to v
#   set_line(group, line, v)         one line to v
#   set_lines(group, values, n)      lines 0..n-1 to values[i]
#   float_line(group, line)          disconnect a line (line -1: all of group)
#   one_t1r                          True for a 1T1R array with row access transistors
#   gate(row, on)                    1T1R word line on/off (row -1: all rows)
#   pulse(width_s)                   connect the lines to the array for width
#   wait(seconds)                    let time pass with the lines released
#   sample(range_index, t_s=0)       convert every column's current (t_s: integration)
#   commit()                         run the queued operations in order
#   code(col) -> int                 ADC code of a column from the last sample
#   current(col) -> amps             the same in amperes
#   clock() -> ns                    board time, an int (exact differences on 32-bit floats; simulated in emulation)
# Operations queue until commit() so a backend may batch them (the emulated
# bus sends one message per commit; an SPI backend can act immediately).
#
# Backends: "chips" (hal/chips.py, the reference board's chip drivers) and,
# in emulation only, "emulated" (the unix port talking to the emulated analog
# front end in semantic operations). A backend's connect() lives in module
# hal_<name>: the emulated boards provide hal_emulated and hal_chips (the
# latter gives hal/chips.py's drivers SPI and GPIO that reach the chip
# models) from memctl_emulator/hal_backends/, outside the board image. On a
# bare-metal port (no environment to name a backend) the rp2 port (a Pico or
# Pico 2 on the reference board) uses hal/rp2_board.py from the image; any
# other port's MicroPython build carries its own as hal_port: the emulated
# RV32 board's reports "rv32".
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# Line groups.
ROWS = const(0)
COLS = const(1)
BOTH = const(2)

REBOOT_EXIT = 75  # emulation: the firmware process exits with this to be booted again


def reboot():
    """Restart the board into whatever main.py boots now."""
    import sys

    try:
        import machine

        machine.reset()
    except (ImportError, AttributeError):  # the unix port: the emulated board's launcher boots us again
        sys.exit(REBOOT_EXIT)


def connect():
    try:
        import os

        name = os.getenv("MEMCTL_HAL") or "emulated"  # the unix port: the launcher's choice
    except (ImportError, AttributeError):  # a bare-metal port: no environment
        import sys

        name = sys.platform
    if name == "rp2":  # a Pico / Pico 2 driving the reference board: this image carries its backend
        from hal import rp2_board

        return (rp2_board.NAME,) + rp2_board.connect()
    if name not in ("emulated", "chips"):
        name = "port"  # another bare-metal port: its build carries hal_port (the emulated RV32 board's)
    try:
        backend = __import__("hal_" + name)
    except ImportError as e:
        if name == "port":
            raise ValueError(
                "this MicroPython port has no memctl backend: the firmware drives the reference board on the rp2 "
                "port (a Pico or Pico 2); another port needs a hal_port module (docs/hardware.md)"
            ) from None
        raise ValueError("no HAL backend " + name + ": " + str(e)) from None
    return (getattr(backend, "NAME", name),) + backend.connect()
