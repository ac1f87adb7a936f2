# Boot stub, never replaced by an update: run the image fw/active names
# (memctl flash writes it), else the modules beside this file. An image
# that fails to import falls back to the other slot, then to those modules,
# so a bad update cannot leave the board without firmware.
import gc
import sys

# Booting allocates far more than it keeps (loading code, compiling a kernel): collecting every 16 KB while it runs
# keeps what it keeps packed at the bottom of the heap instead of scattered through it among temporaries, which would
# leave no large free block behind (every 4 KB packs a little more and costs 0.3 s of rv32 boot). app.main() turns
# this off once the board is ready.
gc.threshold(16384)

if sys.platform == "rp2":
    # The USB serial port is both MicroPython's console and the memctl link: a 0x03 in a host frame arriving while
    # the firmware loads (after a reset or an update's reboot) would be a Ctrl-C and stop the boot at the REPL. A
    # firmware that fails still ends at the REPL, where Ctrl-C works again (docs/hardware.md).
    import micropython

    micropython.kbd_intr(-1)


def flash_root():
    try:
        import os

        return os.getenv("MEMCTL_FLASH") or ""
    except (ImportError, AttributeError):  # a real board: the filesystem root is the cwd
        return ""


def boot():
    root = flash_root()
    fw = root + "/fw" if root else "fw"
    try:
        with open(fw + "/active") as fh:
            first = fh.read().strip()
    except OSError:
        first = ""
    order = [first, "b" if first == "a" else "a", None] if first in ("a", "b") else [None]
    for slot in order:
        before = set(sys.modules)
        if slot:
            sys.path.insert(0, fw + "/" + slot)
        try:
            import app

            return app, slot
        except Exception as e:  # a missing, partial or foreign image
            print("memctl boot: image", slot, "does not load:", repr(e))
            for name in set(sys.modules) - before:
                del sys.modules[name]
            if slot:
                sys.path.pop(0)
    raise SystemExit("memctl boot: no firmware to run")


app, slot = boot()
app.main(slot)
