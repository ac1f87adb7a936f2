"""The emulated memctl board: crossbar physics, analog front end, launcher."""

from memctl_emulation.afe import AFEConfig
from memctl_emulation.crossbar import Crossbar, DeviceParams
from memctl_emulation.launcher import EmulatedBoard, micropython_executable

__all__ = ["AFEConfig", "Crossbar", "DeviceParams", "EmulatedBoard", "micropython_executable"]
