# memctl firmware entry point: bring up the HAL and serve the host forever.
import gc

import hal
from controller import Controller


def heap_size():
    gc.collect()
    return gc.mem_free() + gc.mem_alloc()


def main():
    name, uart, fe, storage = hal.connect()
    ctl = Controller(uart, fe, name, heap_size(), storage)
    gc.collect()
    print("memctl firmware ready", ctl.array.rows, "x", ctl.array.cols)
    ctl.serve_forever()


main()
