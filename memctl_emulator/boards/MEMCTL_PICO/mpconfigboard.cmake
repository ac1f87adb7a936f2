# The memctl controller board on a Raspberry Pi Pico (RP2040): MicroPython's rp2 port, built by
# `memctl build-mpy --target rp2` with BOARD_DIR pointing here. The firmware's modules are frozen (manifest.py);
# its boot stub main.py is a file on the flash (`memctl flash`), and updates install into flash slots.
set(PICO_BOARD "pico")
set(PICO_PLATFORM "rp2040")
set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
