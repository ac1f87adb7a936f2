# On the board this folder is the filesystem root and main.py runs at boot.
# On the host it is the package memctl_firmware, so the host can import the
# shared wire format (wire.py) and the emulated analog bus (hal/afe_bus.py).
