set(PICO_PLATFORM "rp2350-riscv")
