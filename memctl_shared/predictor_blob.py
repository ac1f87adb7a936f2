# The predictor blob: one codec for the host (writes it) and the firmware
# (reads it), in the subset both interpreters run.
#
#   "MCPR" | <HBBBB version, dtype, layers, features, feature set
#   | features x <f mean | features x <f std | <ff i_min, i_max
#   dtype 0 (float32):
#   | per layer: <HHB inputs, outputs, activation | outputs*inputs <f weights (row-major) | outputs <f bias
#   dtype 1 (int8, TFLite-style):
#   | <fb input scale, input zero point
#   | per layer: <HHB inputs, outputs, activation | <fb output scale, zero point
#     | outputs x <i multiplier m0 | outputs x <b shift | outputs*inputs int8 weights | outputs x <i bias
#   | <I crc32 of everything before
#
# int8 layers: acc = bias + sum w * (x - zp_in); y = zp_out + m0 * 2^(shift-31) * acc
# (memctl/export/fixedpoint.py, the host reference), clamped to int8 (ReLU: from zp_out). Feature
# set 1 = paper 004's six pulse features (N, t_set, V_set, t_off, t_r, V_anti)
# plus the present min-max scaled read current; the output is the predicted
# increment of the scaled read current for one pulse period. Feature set 2
# (inverse) = the present scaled read current, the wanted increment of it,
# log10 of the pulse width and the polarity (+1 / -1); the output is the pulse
# amplitude |V| that gives that increment.
#
# int8 inputs are quantized in fixed point (input_fixed_point): feature i, a float32 f, becomes
# F = round_half_away(f * 2^E_i) saturated to +-FIXED_MAX, then x = zp_in + MBQM(F - M_i, m0_i, shift_i)
# clamped to int8, with M_i = round_half_away(mean_i * 2^E_i) and m0_i * 2^(shift_i - 31) = 2^-E_i /
# (std_i * s_in): (f - mean) / std / s_in in integers. Host (memctl/export/quantize.py) and board
# derive the constants here, from the blob's float32 values, in integers: the same bits on both.
import struct
from binascii import crc32

MAGIC = b"MCPR"
VERSION = 1
DTYPE_F32 = 0
DTYPE_I8 = 1
FEATURES_P004_I = 1
FEATURES_INVERSE = 2
SET_FEATURES = {FEATURES_P004_I: 7, FEATURES_INVERSE: 4}  # feature set -> inputs
# feature set -> outputs it may have: inverse models may add the spread of their amplitude
SET_OUTPUTS = {FEATURES_P004_I: (1,), FEATURES_INVERSE: (1, 2)}
N_FEATURES = 7  # the most inputs any set has
ACT_NONE = 0
ACT_RELU = 1
HEAD = "<HBBBB"
MAX_BLOB = 16384


FIXED_MAX = (1 << 30) - 1  # a feature in fixed point saturates here


class BlobError(ValueError):
    pass


def f32_parts(v):
    """(mantissa, exponent) with the float32 v == mantissa * 2**exponent exactly (|mantissa| < 2**24)."""
    (u,) = struct.unpack("<I", struct.pack("<f", v))
    e = (u >> 23) & 0xFF
    if e == 0xFF:
        raise BlobError("predictor normalization is not finite")
    m = (u & 0x7FFFFF) | (0x800000 if e else 0)
    return (-m if u >> 31 else m), (e - 150 if e else -149)


def shift_round(m, s):
    """round_half_away(m * 2**s) for an integer m."""
    if s >= 0:
        return m << s
    a = ((m if m >= 0 else -m) + (1 << (-s - 1))) >> -s
    return a if m >= 0 else -a


def input_fixed_point(mean, std, s_in):
    """Per feature (E, M, m0, shift) of the fixed-point input quantization (header comment). E puts
    max(|mean|, 8 std) just under 2^28, so features within 8 std keep 30 bits; a feature with std 0
    is ignored (m0 0: it quantizes to zp_in), as the float normalization did."""
    mq, eq = f32_parts(s_in)
    out = []
    for i in range(len(mean)):
        mm, em = f32_parts(mean[i])
        ms, es = f32_parts(std[i])
        if ms <= 0 or mq <= 0:
            out.append((0, 0, 0, 0))
            continue
        # floor(log2) of |mean| and of 8 std: bit length - 1 plus the exponent
        top = es + 3 + len(bin(ms)) - 3
        if mm:
            t = em + len(bin(mm if mm > 0 else -mm)) - 3
            top = t if t > top else top
        e = 27 - top
        prod = ms * mq
        k = len(bin(prod)) - 2 + 30
        m0 = ((1 << (k + 1)) // prod + 1) >> 1
        if m0 == 1 << 31:
            m0 >>= 1
            k -= 1
        shift = 31 - k - e - es - eq
        if not -31 <= shift <= 30:
            raise BlobError("predictor input scaling out of range")
        out.append((e, shift_round(mm, em + e), m0, shift))
    return out


def _head(dtype, n_layers, mean, std, i_min, i_max, fset):
    """Magic, header, feature normalization and current scaling: shared by both dtypes."""
    out = bytearray(MAGIC)
    out += struct.pack(HEAD, VERSION, dtype, n_layers, len(mean), fset)
    for v in list(mean) + list(std):
        out += struct.pack("<f", v)
    out += struct.pack("<ff", i_min, i_max)
    return out


def _seal(out):
    out += struct.pack("<I", crc32(out) & 0xFFFFFFFF)
    return bytes(out)


def encode(layers, mean, std, i_min, i_max, fset=FEATURES_P004_I):
    """layers: list of (weights rows of floats, bias list, activation)."""
    out = _head(DTYPE_F32, len(layers), mean, std, i_min, i_max, fset)
    for w, b, act in layers:
        n_out, n_in = len(w), len(w[0])
        out += struct.pack("<HHB", n_in, n_out, act)
        for row in w:
            for v in row:
                out += struct.pack("<f", v)
        for v in b:
            out += struct.pack("<f", v)
    return _seal(out)


def encode_int8(layers, mean, std, i_min, i_max, s_in, zp_in, fset=FEATURES_P004_I):
    """layers: list of (w rows of ints, bias ints, m0 ints, shifts, activation, s_out, zp_out)."""
    out = _head(DTYPE_I8, len(layers), mean, std, i_min, i_max, fset)
    out += struct.pack("<fb", s_in, zp_in)
    for w, b, m0, shift, act, s_out, zp_out in layers:
        n_out, n_in = len(w), len(w[0])
        out += struct.pack("<HHB", n_in, n_out, act)
        out += struct.pack("<fb", s_out, zp_out)
        for v in m0:
            out += struct.pack("<i", v)
        for v in shift:
            out += struct.pack("<b", v)
        for row in w:
            for v in row:
                out += struct.pack("<b", v)
        for v in b:
            out += struct.pack("<i", v)
    return _seal(out)


def _layer_size(dtype, n_in, n_out):
    if dtype == DTYPE_F32:
        return 5 + 4 * (n_in * n_out + n_out)
    return 5 + 5 + 5 * n_out + n_in * n_out + 4 * n_out


def check(buf, n):
    """Validate buf[:n] (magic, version, dtype, feature set, sizes, CRC)
    without allocating; raises BlobError naming the problem."""
    if n < 4 + 6 + 4 or n > MAX_BLOB:
        raise BlobError("predictor blob size out of range")
    if bytes(buf[0:4]) != MAGIC:
        raise BlobError("not a memctl predictor blob")
    (want,) = struct.unpack_from("<I", buf, n - 4)
    if crc32(memoryview(buf)[: n - 4]) & 0xFFFFFFFF != want:
        raise BlobError("predictor blob CRC mismatch")
    version, dtype, n_layers, n_feat, fset = struct.unpack_from(HEAD, buf, 4)
    if version != VERSION:
        raise BlobError("predictor blob version not supported")
    if dtype not in (DTYPE_F32, DTYPE_I8):
        raise BlobError("predictor blob dtype not supported")
    if SET_FEATURES.get(fset) != n_feat:
        raise BlobError("predictor feature set does not match this firmware")
    off = 10 + 8 * n_feat + 8 + (5 if dtype == DTYPE_I8 else 0)
    prev = n_feat
    for _ in range(n_layers):
        if off + 5 > n - 4:
            raise BlobError("predictor blob truncated")
        n_in, n_out, act = struct.unpack_from("<HHB", buf, off)
        if n_in != prev or n_out < 1 or act > ACT_RELU:
            raise BlobError("predictor layer shapes do not chain")
        off += _layer_size(dtype, n_in, n_out)
        prev = n_out
    if off != n - 4:
        raise BlobError("predictor blob length does not match its layers")
    if prev not in SET_OUTPUTS[fset]:
        raise BlobError("predictor has more outputs than its feature set takes")
    return n_layers


def decode(buf, n):
    """(dtype, mean, std, i_min, i_max, input quant, layers, feature set) as plain lists.
    float32 layers: (n_in, n_out, activation, weights flat, bias); input quant None.
    int8: input quant (scale, zero point); layers: (n_in, n_out, activation,
    s_out, zp_out, m0 list, shift list, weights flat (a view of buf: int8 as unsigned bytes), bias list).
    The weights are not copied: on the board a 16 KB layer would need a 16 KB block of a heap that may
    not hold one."""
    n_layers = check(buf, n)
    _, dtype, _, n_feat, fset = struct.unpack_from(HEAD, buf, 4)
    vals = struct.unpack_from("<" + str(2 * n_feat + 2) + "f", buf, 10)
    mean, std = list(vals[:n_feat]), list(vals[n_feat : 2 * n_feat])
    i_min, i_max = vals[-2], vals[-1]
    off = 10 + 8 * n_feat + 8
    quant = None
    if dtype == DTYPE_I8:
        quant = struct.unpack_from("<fb", buf, off)
        off += 5
    layers = []
    for _ in range(n_layers):
        n_in, n_out, act = struct.unpack_from("<HHB", buf, off)
        off += 5
        if dtype == DTYPE_F32:
            w = list(struct.unpack_from("<" + str(n_in * n_out) + "f", buf, off))
            off += 4 * n_in * n_out
            b = list(struct.unpack_from("<" + str(n_out) + "f", buf, off))
            off += 4 * n_out
            layers.append((n_in, n_out, act, w, b))
            continue
        s_out, zp_out = struct.unpack_from("<fb", buf, off)
        off += 5
        m0 = list(struct.unpack_from("<" + str(n_out) + "i", buf, off))
        off += 4 * n_out
        shift = list(struct.unpack_from("<" + str(n_out) + "b", buf, off))
        off += n_out
        w = memoryview(buf)[off : off + n_in * n_out]
        off += n_in * n_out
        b = list(struct.unpack_from("<" + str(n_out) + "i", buf, off))
        off += 4 * n_out
        layers.append((n_in, n_out, act, s_out, zp_out, m0, shift, w, b))
    return dtype, mean, std, i_min, i_max, quant, layers, fset
