# The reference board's wiring (docs/hardware.md), shared by the board
# backend (hal/chips.py) and the chip-level emulation, so they cannot drift.
MIDSCALE = 32768
WRITE_MODE = 7  # range-mux source S8: feedback shorted
PIN_SWITCH_SYNC = 13
PIN_MUX_A = (20, 21, 22)
PIN_MUX_EN = 26


def wiring(rows, cols, one_t1r):
    """(DAC SYNC pins, ADC CS pins, switch chips, first column switch, first
    word-line switch). The 32x32 reference board uses GPIO 0-11; larger
    emulated arrays number further selects from 100 (DACs) and 200 (ADCs)."""
    n_dac = (rows + cols + 7) // 8
    n_adc = (cols + 7) // 8
    dac = tuple(k if k < 8 else 100 + k for k in range(n_dac))
    adc = tuple(8 + k if k < 4 else 200 + k for k in range(n_adc))
    col_sw = 8 * ((rows + 7) // 8)
    wl_sw = col_sw + 8 * ((cols + 7) // 8)
    chips = wl_sw // 8 + ((rows + 7) // 8 if one_t1r else 0)
    return dac, adc, chips, col_sw, wl_sw
