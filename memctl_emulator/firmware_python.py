"""The firmware's own modules under CPython, imported as the board imports them
(from memctl_firmware/, with memctl_shared/ beside them): for the firmware's
unit tests and for studies that run its algorithms on emulated devices
without booting a board. MicroPython's `micropython` module is stood in for
by a shim that leaves code as it is (native and viper are compiler hints
there; viper's 32-bit word tricks reduce to plain arithmetic on Python ints,
except the int8 kernel's sign extension: use float predictors here)."""

from __future__ import annotations

import builtins
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "memctl_firmware"
SHARED = ROOT / "memctl_shared"


def install() -> None:
    """Make `import algorithms`, `import verify`, ... the firmware's (idempotent)."""
    if "micropython" not in sys.modules:
        shim = types.ModuleType("micropython")
        shim.const = lambda x: x
        shim.native = shim.viper = lambda f: f
        sys.modules["micropython"] = shim
        builtins.ptr8 = builtins.ptr16 = builtins.ptr32 = object
        builtins.uint = int
    # First on the path, whatever put them (or a folder with a same-named module, e.g. benchmarks/predictor.py)
    # on it before: `import predictor` must be the firmware's.
    for folder in (SHARED, FIRMWARE):
        while str(folder) in sys.path:
            sys.path.remove(str(folder))
        sys.path.insert(0, str(folder))
    mod = sys.modules.get("predictor")
    if mod is not None and not str(getattr(mod, "__file__", "")).startswith(str(FIRMWARE)):
        del sys.modules["predictor"]
