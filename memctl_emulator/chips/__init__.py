"""Chip-level models of the reference board's front end: the SPI
and GPIO traffic a driver produces, checked against the datasheet's rules.
A malformed sequence raises ChipProtocolError: a driver bug is a test
failure, not silence."""

from memctl_emulator.chips.bus import ChipProtocolError, Pin, SPIBus

__all__ = ["ChipProtocolError", "Pin", "SPIBus"]
