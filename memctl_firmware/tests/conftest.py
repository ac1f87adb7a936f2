"""Firmware logic under CPython: the firmware's own modules (imported as the
board imports them, from memctl_firmware/) against a small fake front end, so a bug
in an algorithm, the verify loop or a limit check shows up without booting a
board. MicroPython's `micropython` module is stood in for by a shim that
leaves code as it is (native/viper are compiler hints there)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[1]
SHARED = FIRMWARE.parent / "memctl_shared"  # on the board these sit beside the firmware's modules

if "micropython" not in sys.modules:
    shim = types.ModuleType("micropython")
    shim.const = lambda x: x
    shim.native = shim.viper = lambda f: f
    sys.modules["micropython"] = shim
    # viper's types: Python ints are wide enough that its 32-bit word tricks reduce to plain arithmetic.
    import builtins

    builtins.ptr8 = builtins.ptr16 = builtins.ptr32 = object
    builtins.uint = int
# First on the path, whatever put them (or a folder with a same-named module, e.g. benchmarks/predictor.py)
# on it before: `import predictor` must be the firmware's.
for folder in (SHARED, FIRMWARE):
    while str(folder) in sys.path:
        sys.path.remove(str(folder))
    sys.path.insert(0, str(folder))
