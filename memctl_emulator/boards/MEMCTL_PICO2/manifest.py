# Frozen: the port's own boot modules (_boot.py mounts the flash filesystem) and the firmware's modules (all but
# the boot stub main.py, which stays on the flash, so a board without it comes up bare for `memctl flash`):
# bytecode and names in flash, not compiled onto the heap at every boot. A firmware update installs an image into
# a flash slot, whose modules main.py puts ahead of these. micropython-lib's drivers the stock Pico build freezes
# are not needed.
freeze("$(PORT_DIR)/modules")
include("../../../memctl_firmware/manifest.py", frozen=True)
