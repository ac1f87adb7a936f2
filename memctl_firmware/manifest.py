# What a memctl board image ships, in MicroPython's manifest calls (module,
# package). `memctl build-firmware` compiles exactly these files, the emulated
# unix board boots exactly these files, and the rv32 and rp2 boards' MicroPython
# builds freeze them (include(..., frozen=True) in memctl_emulator/boards/*):
# a module missing here fails every emulated test, not only a real board.
# Frozen, the boot stub main.py stays a file on the flash: the rp2 port would
# run a frozen main.py in preference to the flash's, so a board could never
# come up bare (MicroPython only) for `memctl flash` to install onto.
#
# The board's filesystem is flat: the shared contract (memctl_shared, also
# imported by the host) sits beside the firmware's own modules. The
# emulation-only HAL backends (memctl_emulator/hal_backends) are not listed:
# the emulated board provides them, as a real board provides machine.

# Boot and dispatch.
if not options.frozen:
    module("main.py")
module("app.py")
module("config.py")
module("errors.py")
module("controller.py")
module("update.py")
module("framing.py")  # wire.py's per-byte loops (COBS, the delimiter scan) in viper
# Programming and inference.
module("xbar.py")
module("algorithms.py")
module("verify.py")  # the verify loop (one device, or a 1T1R row)
module("predictor.py")
module("network.py")
module("tiles.py")  # deployment fingerprints
# Hardware abstraction: the only code that touches hardware.
package(
    "hal",
    files=[
        "__init__.py",
        "frontend.py",
        "chips.py",
        "ad5676.py",
        "adg1408.py",
        "adg1414.py",
        "ads131m08.py",
        "rp2_board.py",  # the rp2 port's: machine.SPI, Pins and the PIO pulse gate
    ],
)
# The contract shared with the host.
module("wire.py", base_path="../memctl_shared")
module("predictor_blob.py", base_path="../memctl_shared")
module("network_blob.py", base_path="../memctl_shared")
module("persist.py", base_path="../memctl_shared")
module("board_wiring.py", base_path="../memctl_shared")
