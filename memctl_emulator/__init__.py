"""The emulated memctl board: crossbar physics, analog front end, launcher."""

from memctl.devices import PRESETS, DeviceModel, load_device
from memctl_emulator.afe import AFEConfig
from memctl_emulator.crossbar import Crossbar
from memctl_emulator.launcher import EmulatedBoard, micropython_executable

__all__ = [
    "PRESETS",
    "AFEConfig",
    "Crossbar",
    "DeviceModel",
    "EmulatedBoard",
    "load_device",
    "micropython_executable",
]
