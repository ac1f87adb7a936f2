# Frozen: the port's own boot modules (_boot.py mounts the flash filesystem) and nothing of memctl's: the firmware
# is an image on the flash. micropython-lib's drivers the stock Pico build freezes are not needed.
freeze("$(PORT_DIR)/modules")
