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
# client, flash over the UART) and the firmware's modules but main.py
# (manifest.py says why).
FROZEN_MANIFEST = $(BOARD_DIR)/manifest.py

# MicroPython puts frozen native code (viper, native, the firmware's kernels) into .text by naming the section
# with a trailing assembler comment; with -fdata-sections GCC takes each array for the start of a section of its
# own and omits the alignment between them, so RV32 code lands at odd addresses and traps when called. The
# frozen content alone is compiled without data sections.
$(BUILD)/frozen_content.o: CFLAGS += -fno-data-sections
