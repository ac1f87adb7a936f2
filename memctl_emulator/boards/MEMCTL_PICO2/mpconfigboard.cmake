# The memctl controller board on a Raspberry Pi Pico 2 (RP2350): `memctl build-mpy --target rp2350` (Cortex-M33)
# or `--target rp2350-riscv` (Hazard3). Built as a compile check: rp2040js does not emulate the RP2350.
set(PICO_BOARD "pico2")
set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
