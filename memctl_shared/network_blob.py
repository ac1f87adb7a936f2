# The deployed-network blob: how a deployment's tiles sit on one board, so
# the controller can run the whole MLP per request. One codec for
# the host (writes it) and the firmware (reads it), in the subset both run.
#
#   "MNET" | <BBH version, layers, tiles
#   | per layer: <HHBf inputs, outputs, activation, v_in (read volts per unit input)
#     | outputs x <f gain | outputs x <f offset
#   | per tile:  <BHHHHf layer, in0, in1, out0, out1, scale (weight units per S)
#     | (in1 - in0) x <H physical row of each input (input == inputs: the bias row)
#     | 2 (out1 - out0) x <H physical columns: G+ then G- of each output
#   | <I crc32 of everything before
#
# A layer computes z = gain * sum_tiles (I+ - I-) * scale / v_in + offset and
# then its activation; the bias is one more input held at 1.
import struct
from binascii import crc32

MAGIC = b"MNET"
VERSION = 1
HEAD = "<BBH"
LAYER = "<HHBf"
TILE = "<BHHHHf"
HEAD_SIZE = 8  # magic + HEAD
LAYER_SIZE = 9
TILE_SIZE = 13
MAX_BLOB = 8192
MAX_WIDTH = 512  # widest layer (inputs or outputs) the firmware buffers
ACT_NONE = 0
ACT_RELU = 1
ACT_TANH = 2
ACT_SIGMOID = 3
ACT_SOFTMAX = 4
ACTIVATIONS = {None: ACT_NONE, "Relu": ACT_RELU, "Tanh": ACT_TANH, "Sigmoid": ACT_SIGMOID, "Softmax": ACT_SOFTMAX}


class BlobError(ValueError):
    pass


def encode(layers, tiles):
    """layers: (inputs, outputs, activation code, v_in, gains, offsets);
    tiles: (layer, in0, in1, out0, out1, scale, rows, cols)."""
    out = bytearray(MAGIC)
    out += struct.pack(HEAD, VERSION, len(layers), len(tiles))
    for n_in, n_out, act, v_in, gain, offset in layers:
        out += struct.pack(LAYER, n_in, n_out, act, v_in)
        for v in list(gain) + list(offset):
            out += struct.pack("<f", v)
    for k, i0, i1, o0, o1, scale, rows, cols in tiles:
        out += struct.pack(TILE, k, i0, i1, o0, o1, scale)
        for v in list(rows) + list(cols):
            out += struct.pack("<H", v)
    out += struct.pack("<I", crc32(out) & 0xFFFFFFFF)
    return bytes(out)


def _finite(v):
    return v == v and -3e38 < v < 3e38


def decode(buf, n, rows, cols):
    """(layers, tiles) as in encode, checked against an array of
    rows x cols: CRC, shapes that chain, tiles inside their layer and the
    array, finite numbers. Raises BlobError naming the problem."""
    if n < HEAD_SIZE + 4 or n > MAX_BLOB:
        raise BlobError("network blob size out of range")
    if bytes(buf[0:4]) != MAGIC:
        raise BlobError("not a memctl network blob")
    (want,) = struct.unpack_from("<I", buf, n - 4)
    if crc32(memoryview(buf)[: n - 4]) & 0xFFFFFFFF != want:
        raise BlobError("network blob CRC mismatch")
    version, n_layers, n_tiles = struct.unpack_from(HEAD, buf, 4)
    if version != VERSION:
        raise BlobError("network blob version not supported")
    if n_layers < 1 or n_tiles < n_layers:
        raise BlobError("network blob header out of range")
    end = n - 4
    off = HEAD_SIZE
    layers = []
    prev = -1
    for _ in range(n_layers):
        if off + LAYER_SIZE > end:
            raise BlobError("network blob truncated")
        n_in, n_out, act, v_in = struct.unpack_from(LAYER, buf, off)
        off += LAYER_SIZE
        if n_in < 1 or n_out < 1 or n_in > MAX_WIDTH or n_out > MAX_WIDTH or act > ACT_SOFTMAX:
            raise BlobError("network layer shape or activation out of range")
        if not (_finite(v_in) and v_in > 0):
            raise BlobError("network layer v_in must be a positive voltage")
        if prev >= 0 and n_in != prev:
            raise BlobError("network layer shapes do not chain")
        if off + 8 * n_out > end:
            raise BlobError("network blob truncated")
        go = struct.unpack_from("<" + str(2 * n_out) + "f", buf, off)
        off += 8 * n_out
        for v in go:
            if not _finite(v):
                raise BlobError("network gains and offsets must be finite")
        layers.append((n_in, n_out, act, v_in, go[:n_out], go[n_out:]))
        prev = n_out
    tiles = []
    for _ in range(n_tiles):
        if off + TILE_SIZE > end:
            raise BlobError("network blob truncated")
        k, i0, i1, o0, o1, scale = struct.unpack_from(TILE, buf, off)
        off += TILE_SIZE
        if k >= n_layers:
            raise BlobError("network tile names a missing layer")
        n_in, n_out = layers[k][0], layers[k][1]
        if not (0 <= i0 < i1 <= n_in + 1 and 0 <= o0 < o1 <= n_out and _finite(scale)):
            raise BlobError("network tile outside its layer")
        m = i1 - i0 + 2 * (o1 - o0)
        if off + 2 * m > end:
            raise BlobError("network blob truncated")
        idx = struct.unpack_from("<" + str(m) + "H", buf, off)
        off += 2 * m
        r, c = idx[: i1 - i0], idx[i1 - i0 :]
        if len(set(r)) != len(r) or len(set(c)) != len(c):
            raise BlobError("network tile uses a row or column twice")
        for v in r:
            if v >= rows:
                raise BlobError("network tile row outside the array")
        for v in c:
            if v >= cols:
                raise BlobError("network tile column outside the array")
        tiles.append((k, i0, i1, o0, o1, scale, r, c))
    if off != end:
        raise BlobError("network blob length does not match its layers and tiles")
    for k in range(n_layers):
        found = False
        for t in tiles:
            if t[0] == k:
                found = True
        if not found:
            raise BlobError("network layer without a tile")
    return layers, tiles
