# The firmware proper: bring up the HAL and serve the host forever. main.py
# (the boot stub) picks which image's app to import.
import gc

import hal
from controller import Controller


def heap_size():
    gc.collect()
    return gc.mem_free() + gc.mem_alloc()


def main(slot=None):
    """slot: the image slot ("a"/"b") this code was loaded from, None for files beside main.py."""
    name, uart, fe, storage = hal.connect()
    ctl = Controller(uart, fe, name, heap_size(), storage, slot)
    gc.collect()
    print("memctl firmware ready", ctl.array.rows, "x", ctl.array.cols, "front end", name, "image", ctl.image)
    ctl.serve_forever()
