// The memctl controller board on a Raspberry Pi Pico 2 (RP2350); pins: docs/hardware.md.
#define MICROPY_HW_BOARD_NAME                   "memctl controller (Raspberry Pi Pico 2)"
#define MICROPY_HW_FLASH_STORAGE_BYTES          (PICO_FLASH_SIZE_BYTES - 1024 * 1024)
