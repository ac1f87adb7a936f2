# Settings that survive a reset, kept in the board's flash filesystem: the
# safety limits (a board with none refuses to drive its array) and the read
# configuration. One codec for the firmware and the host, which provisions
# emulated boards with it. Written to a temporary file and renamed, so a
# reset mid-write leaves the old settings, never a torn file.
import struct
from binascii import crc32

try:
    import os
except ImportError:  # pragma: no cover
    import uos as os

NAME = "memctl_settings.bin"
MAGIC = b"MSET"
# pulse limit V, width limit s, read limit V, read V, disturb limit V (0: none known; was a spare, so older
# files read as 0), bias scheme, read mode
FMT = "<fffffBB"
SIZE = 4 + 22 + 4


def encode(v_pulse, width, v_read_limit, v_read, scheme, mode, v_disturb=0.0):
    out = bytearray(MAGIC)
    out += struct.pack(FMT, v_pulse, width, v_read_limit, v_read, v_disturb, scheme, mode)
    out += struct.pack("<I", crc32(out) & 0xFFFFFFFF)
    return bytes(out)


def decode(data):
    """(v_pulse, width, v_read_limit, v_read, scheme, mode, v_disturb), or None
    when the file is missing, torn or corrupt."""
    if data is None or len(data) != SIZE or bytes(data[:4]) != MAGIC:
        return None
    (want,) = struct.unpack_from("<I", data, SIZE - 4)
    if crc32(memoryview(data)[: SIZE - 4]) & 0xFFFFFFFF != want:
        return None
    f = struct.unpack_from(FMT, data, 4)
    return f[0], f[1], f[2], f[3], f[5], f[6], f[4]


def path(folder):
    return folder + "/" + NAME if folder else NAME


def fw_dir(folder):
    """Where firmware image slots live (fw/a, fw/b, fw/active); main.py's boot stub looks there too."""
    return folder + "/fw" if folder else "fw"


def load(folder):
    try:
        with open(path(folder), "rb") as fh:
            return decode(fh.read())
    except OSError:
        return None


BOOT = "memctl_boot.bin"


def _random4(last):
    try:
        return os.urandom(4)
    except AttributeError:  # a port without a hardware RNG (MicroPython's qemu port): a PRNG, seeded so that
        import random  # successive boots differ even though each starts in the same state
        import time

        random.seed(last * 40503 + time.ticks_us())
        return bytes([random.getrandbits(8) for _ in range(4)])


def next_boot_id(folder):
    """A random 32-bit boot id whose low byte (the session tag) is nonzero
    and differs from the previous boot's, so a reset always changes the tag
    (a random byte alone would repeat once in 128 resets)."""
    p = path(folder).replace(NAME, BOOT)
    last = 0
    try:
        with open(p, "rb") as fh:
            b = fh.read(1)
            last = b[0] if b else 0
    except OSError:
        pass
    r = _random4(last)
    tag = r[0] | 1
    if tag == last:
        tag = (tag + 2) & 0xFF or 1
    try:
        with open(p, "wb") as fh:
            fh.write(bytes([tag]))
    except OSError:
        pass  # a read-only filesystem: the id is still random
    return tag | r[1] << 8 | r[2] << 16 | (r[3] & 0x7F) << 24


def save(folder, values):
    p = path(folder)
    with open(p + ".tmp", "wb") as fh:
        fh.write(encode(*values))
    os.rename(p + ".tmp", p)


# Deployment fingerprints, one record per tile: rows r0..r1, columns c0..c1 (inclusive), fingerprint, valid.
TILES_NAME = "memctl_tiles.bin"
TILES_MAGIC = b"MTIL"
TILE_FMT = "<HHHHIB"
TILE_SIZE = 13


def encode_tiles(tiles):
    out = bytearray(TILES_MAGIC)
    out += struct.pack("<B", len(tiles))
    for t in tiles:
        out += struct.pack(TILE_FMT, t[0], t[1], t[2], t[3], t[4], t[5])
    out += struct.pack("<I", crc32(out) & 0xFFFFFFFF)
    return bytes(out)


def decode_tiles(data):
    """[[r0, c0, r1, c1, fingerprint, valid], ...]; [] when the file is missing, torn or corrupt (the
    board then holds no deployment it can vouch for)."""
    if data is None or len(data) < 9 or bytes(data[:4]) != TILES_MAGIC:
        return []
    n = data[4]
    if len(data) != 9 + n * TILE_SIZE:
        return []
    (want,) = struct.unpack_from("<I", data, len(data) - 4)
    if crc32(memoryview(data)[: len(data) - 4]) & 0xFFFFFFFF != want:
        return []
    return [list(struct.unpack_from(TILE_FMT, data, 5 + k * TILE_SIZE)) for k in range(n)]


def load_tiles(folder):
    try:
        with open(path(folder).replace(NAME, TILES_NAME), "rb") as fh:
            return decode_tiles(fh.read())
    except OSError:
        return []


def save_tiles(folder, tiles):
    p = path(folder).replace(NAME, TILES_NAME)
    with open(p + ".tmp", "wb") as fh:
        fh.write(encode_tiles(tiles))
    os.rename(p + ".tmp", p)
