# The memctl controller board on a Raspberry Pi Pico (RP2040): MicroPython's rp2 port, built by
# `memctl build-mpy --target rp2` with BOARD_DIR pointing here. The firmware itself is not frozen: it is an image
# on the board's flash (`memctl flash`), so it updates over the memctl protocol like any board's.
set(PICO_BOARD "pico")
set(PICO_PLATFORM "rp2040")
set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
