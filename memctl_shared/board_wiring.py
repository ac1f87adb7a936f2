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


# The rp2 board's other pins (docs/hardware.md).
PIN_SCK = 18
PIN_MOSI = 19
PIN_MISO = 16
PIN_GATE = 27
PIN_ADC_CLKIN = 28
SPI_BAUD = 10_000_000  # every chip takes 25 MHz or more; 10 MHz leaves margin for the board's traces
ADC_CLKIN_HZ = 8_192_000

# The board description (the front end's info tuple): what array the board's front end drives. The analog bus
# answers OP_INFO with it in emulation; a real board keeps it in BOARD_FILE on its flash (written when the board
# is assembled), else it is the 32 x 32 reference board.
# rows, cols, DAC bits, DAC full scale V, ADC bits, sample time s, 1T1R (0/1), range count; then the ranges
# (<f each, A) and the name (length byte, UTF-8).
INFO_FMT = "<HHBfBfBB"
INFO_SIZE = 16
BOARD_FILE = "memctl_board.bin"
REFERENCE = (32, 32, 16, 5.0, 24, 100e-6, 0, (10e-6, 100e-6, 1e-3, 10e-3), "reference 32x32")


def encode_info(info):
    import struct

    rows, cols, dac_bits, vfs, adc_bits, t_sample, one_t1r, ranges, name = info
    n = len(ranges)
    name = name.encode()
    return (
        struct.pack(INFO_FMT, rows, cols, dac_bits, vfs, adc_bits, t_sample, 1 if one_t1r else 0, n)
        + struct.pack("<" + str(n) + "f", *ranges)
        + bytes([len(name)])
        + name
    )


def decode_info(buf):
    import struct

    rows, cols, dac_bits, vfs, adc_bits, t_sample, one_t1r, n = struct.unpack_from(INFO_FMT, buf, 0)
    off = INFO_SIZE
    ranges = struct.unpack_from("<" + str(n) + "f", buf, off)
    off += 4 * n
    name = bytes(buf[off + 1 : off + 1 + buf[off]]).decode()
    return rows, cols, dac_bits, vfs, adc_bits, t_sample, one_t1r, ranges, name
