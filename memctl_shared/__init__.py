# The contract between board and host: the wire format, the predictor and
# network blob formats, the flash records and the reference board's wiring.
# Written in the subset MicroPython and CPython both run; on the board these
# modules sit at the filesystem root beside the firmware
# (memctl_firmware/manifest.py), on the host they are this package.
