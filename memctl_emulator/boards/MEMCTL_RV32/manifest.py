# Frozen into the emulated RV32 board's MicroPython: its "ROM". The board's own backend first (UART
# multiplexer, analog bus client, flash over the UART), never in a firmware image; then the firmware's modules
# (all but the boot stub main.py, which stays on the flash): bytecode and names in ROM, not compiled onto the heap
# at every boot. A firmware update installs an image into a flash slot, whose modules main.py puts ahead of these.
module("uart_mux.py", base_path="../../hal_backends")
module("hal_port.py", base_path="../../hal_backends")
module("afe_link.py", base_path="../../hal_backends")
module("bus_front_end.py", base_path="../../hal_backends")
module("afe_bus.py", base_path="../../hal_backends")
include("../../../memctl_firmware/manifest.py", frozen=True)
