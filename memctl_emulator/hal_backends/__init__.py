# MicroPython modules the emulated board provides in place of hardware: the
# HAL backends hal_emulated (semantic front-end operations) and hal_chips
# (SPI and GPIO for the reference board's chip drivers), and afe_bus, the
# protocol both speak with the analog front end process (which imports
# afe_bus from here under CPython). They are on the emulated board's module
# path, never in a board image.
