# The code that runs on the board. On the board its files (and the shared
# contract, memctl_shared) form the filesystem root, as manifest.py lists
# them, and main.py runs at boot. On the host it is the package
# memctl_firmware, so tools can read its manifest and configuration.
