// The memctl controller board on a Raspberry Pi Pico (RP2040); pins: docs/hardware.md.
#define MICROPY_HW_BOARD_NAME                   "memctl controller (Raspberry Pi Pico)"
// 1408 KB of the 2 MB flash hold the filesystem (firmware images, settings, tiles), as on a stock Pico.
#define MICROPY_HW_FLASH_STORAGE_BYTES          (1408 * 1024)
