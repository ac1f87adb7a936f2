"""Firmware logic under CPython: the firmware's own modules (imported as the
board imports them, from memctl_firmware/) against a small fake front end, so a bug
in an algorithm, the verify loop or a limit check shows up without booting a
board. MicroPython's `micropython` module is stood in for by a shim that
leaves code as it is (native/viper are compiler hints there)."""

from __future__ import annotations

from memctl_emulator.firmware_python import install

install()
