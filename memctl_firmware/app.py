# The firmware proper: bring up the HAL and serve the host forever. main.py
# (the boot stub) picks which image's app to import.
import gc
import sys

from network_blob import MAX_BLOB as MAX_NET_BLOB
from predictor_blob import MAX_BLOB

# Blocks the firmware keeps for its whole life, taken first, while the heap is whole: later, on a heap that loading
# code (a board without frozen firmware compiles it there) and requests have fragmented, the free bytes may far
# exceed the largest block. The staging buffer holds the largest predictor or network blob.
_staging = bytearray(MAX_BLOB if MAX_BLOB > MAX_NET_BLOB else MAX_NET_BLOB)

# Loading code can need a few KB in one piece (the interpreter's next qstr pool, allocated when the names it interns
# outgrow the pools so far): such a load is retried once with this block released.
_reserve = [bytearray(4608)]  # the interpreter's next qstr pool (640 entries) in one piece


def retry(fn, *args):
    """fn(*args); after a MemoryError once more, with the reserve released (and what the try left half loaded
    dropped)."""
    before = set(sys.modules)
    try:
        return fn(*args)
    except MemoryError:
        if not _reserve:
            raise
        for name in set(sys.modules) - before:
            del sys.modules[name]
        _reserve.pop()
        gc.collect()
        return fn(*args)


hal = retry(__import__, "hal")
Controller = retry(__import__, "controller").Controller


def heap_size():
    gc.collect()
    return gc.mem_free() + gc.mem_alloc()


def largest_block():
    """The largest block the heap holds now (bytes, to 64): what a buffer taken later could have."""
    lo, hi = 0, gc.mem_free()
    while hi - lo > 64:
        mid = (lo + hi) // 2
        try:
            bytearray(mid)
            lo = mid
        except MemoryError:
            hi = mid
    return lo


def main(slot=None):
    """slot: the image slot ("a"/"b") this code was loaded from, None for files beside main.py."""
    name, uart, fe, storage = retry(hal.connect)
    ctl = Controller(uart, fe, name, heap_size(), _staging, storage, slot, retry)
    gc.threshold(-1)  # booted (main.py): collections only when the heap runs short, as before
    gc.collect()
    free = gc.mem_free()
    print("memctl firmware ready", ctl.array.rows, "x", ctl.array.cols, "front end", name, "image", ctl.image, end="")
    print(" heap free", free, "largest block", largest_block())
    ctl.serve_forever()
