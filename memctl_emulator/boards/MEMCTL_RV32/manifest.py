# Frozen into the emulated RV32 board's MicroPython: its "ROM", never in a firmware image.
module("uart_mux.py", base_path="../../hal_backends")
module("hal_port.py", base_path="../../hal_backends")
module("afe_link.py", base_path="../../hal_backends")
module("bus_front_end.py", base_path="../../hal_backends")
module("afe_bus.py", base_path="../../hal_backends")
