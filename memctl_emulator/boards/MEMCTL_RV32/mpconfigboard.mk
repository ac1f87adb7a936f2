# The emulated RV32 memctl board: MicroPython's qemu port on QEMU virt (RV32),
# built by `memctl build-mpy --target rv32` with BOARD_DIR pointing here.
# Based on the port's VIRT_RV32 board; what differs is memctl's.
QEMU_ARCH = riscv32
QEMU_MACHINE = virt

CFLAGS += -DQEMU_SOC_VIRT
CFLAGS += -DMICROPY_HW_MCU_NAME='"rv32imac"'

LDSCRIPT = mcu/rv32/virt.ld

SRC_BOARD_O += shared/runtime/gchelper_native.o shared/runtime/gchelper_rv32i.o

MPY_CROSS_FLAGS += -march=rv32imc -march-flags=zba

# The reference board's MicroPython heap (memctl_emulator.launcher.BOARD_HEAP, 256 KB),
# so memory is budgeted as on the board.
MICROPY_HEAP_SIZE = 262144

# Frozen: the emulated board's own backend (UART multiplexer, analog bus
# client, flash over the UART). The firmware itself is not frozen: it is a
# firmware image on the board's flash, as `memctl flash` installs it.
FROZEN_MANIFEST = $(BOARD_DIR)/manifest.py
