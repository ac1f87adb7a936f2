# On-board predictor (paper 004): an MLP that predicts the increment of the
# min-max scaled read current for one pulse, from the pulse features and the
# present scaled read current. float32 or int8 (TFLite-style integer
# arithmetic, bit-exact with the host reference, memctl/export/fixedpoint.py). Weights
# live in arrays. int8 inference takes no float past storing the features: they go
# to fixed point, the layers' MACs run in the port's assembler, the requantization
# in viper on machine words (on a 32-bit MicroPython its 64-bit products and
# multipliers >= 2^30 would otherwise be heap-allocated long ints).
import array
import struct
import sys

import micropython
from micropython import const
from predictor_blob import ACT_RELU, DTYPE_I8, N_FEATURES, decode, input_fixed_point

_WIDEST = 256


# int8 inference is one kernel call over one buffer, `net` (little-endian int32 words, built by
# Predictor.load): the number of sections, then per section a header (n_in, n_out, zp_out, lowest
# output) and per output a record (c, m0, shift, E), then the section's weights (n_out x n_in bytes,
# stored + 128, padded to a word). Section 0 (n_in 0) quantizes the float32 features: output o is
# F - M (c = M: the feature in fixed point, E its scale; memctl_shared/predictor_blob.py); the other
# sections are the layers: acc = c + sum w' x' - 128 sum x', with the constant c computed at load.
# Each output is then requantized (gemmlowp's MultiplyByQuantizedMultiplier, memctl.export.fixedpoint.mbqm)
# and clamped; activations are offset binary (x + 128, unsigned), alternating between the halves of
# `act`. The port's assembler runs it where it has one (a few instructions per MAC); the same steps in
# viper elsewhere. The assembler's source is compiled on the board (exec): a port without it refuses the
# decorator at compile time, which selects viper (mpy-cross cannot compile it for another architecture).
_SECTION = const(16)  # header bytes; a record is 16 bytes too
_RV32 = """
@micropython.asm_rv32
def network(a0, a1, a2):
    addi(sp, sp, -16)
    sw(s0, 0(sp))
    sw(s1, 4(sp))
    sw(s2, 8(sp))
    sw(s3, 12(sp))
    mv(s0, a2)
    addi(t5, a2, 256)
    lw(a2, 0(a1))
    addi(a1, a1, 4)
    label(SECTION)
    beq(a2, zero, END)
    lw(a3, 0(a1))
    lw(a4, 4(a1))
    lw(a5, 8(a1))
    lw(a6, 12(a1))
    addi(a1, a1, 16)
    slli(t0, a4, 4)
    add(a7, a1, t0)
    mv(t6, s0)
    li(t4, 0)
    mv(t1, t5)
    add(t2, t5, a3)
    label(SX)
    bgeu(t1, t2, SXEND)
    lbu(t3, 0(t1))
    add(t4, t4, t3)
    addi(t1, t1, 1)
    jal(zero, SX)
    label(SXEND)
    slli(t4, t4, 7)
    label(OUTPUT)
    beq(a4, zero, NEXT)
    lw(t0, 0(a1))
    bne(a3, zero, MAC)
    lw(t1, 0(a0))
    addi(a0, a0, 4)
    srli(t2, t1, 23)
    andi(t2, t2, 255)
    li(t3, 0x7FFFFF)
    and_(t3, t1, t3)
    li(s1, -149)
    beq(t2, zero, DENORM)
    li(s2, 0x800000)
    or_(t3, t3, s2)
    addi(s1, t2, -150)
    label(DENORM)
    lw(s2, 12(a1))
    add(s1, s1, s2)
    li(s2, 0)
    beq(t3, zero, SIGN)
    li(s3, -26)
    bge(s3, s1, SIGN)
    li(s3, 7)
    blt(s1, s3, NOSAT)
    li(s2, 0x3FFFFFFF)
    jal(zero, SIGN)
    label(NOSAT)
    blt(s1, zero, DOWN)
    sll(s2, t3, s1)
    jal(zero, SIGN)
    label(DOWN)
    sub(s3, zero, s1)
    addi(s1, s3, -1)
    li(s2, 1)
    sll(s2, s2, s1)
    add(s2, t3, s2)
    srl(s2, s2, s3)
    label(SIGN)
    bge(t1, zero, POS)
    sub(s2, zero, s2)
    label(POS)
    sub(t0, s2, t0)
    jal(zero, REQUANT)
    label(MAC)
    sub(t0, t0, t4)
    mv(t1, t5)
    add(t2, t5, a3)
    label(IN)
    lbu(t3, 0(t1))
    lbu(s1, 0(a7))
    mul(t3, t3, s1)
    add(t0, t0, t3)
    addi(t1, t1, 1)
    addi(a7, a7, 1)
    bne(t1, t2, IN)
    label(REQUANT)
    lw(s1, 8(a1))
    bge(zero, s1, NOLEFT)
    sll(t0, t0, s1)
    label(NOLEFT)
    lw(s2, 4(a1))
    li(s3, 0)
    bge(t0, zero, ABS)
    li(s3, 1)
    sub(t0, zero, t0)
    label(ABS)
    mul(t1, t0, s2)
    mulhu(t2, t0, s2)
    li(t3, 0x40000000)
    sub(t3, t3, s3)
    add(t3, t1, t3)
    bgeu(t3, t1, NOCARRY)
    addi(t2, t2, 1)
    label(NOCARRY)
    slli(t2, t2, 1)
    srli(t3, t3, 31)
    or_(t0, t2, t3)
    beq(s3, zero, RPOS)
    sub(t0, zero, t0)
    label(RPOS)
    bge(s1, zero, NORIGHT)
    sub(s1, zero, s1)
    li(s2, 1)
    sll(s2, s2, s1)
    addi(s2, s2, -1)
    and_(s3, t0, s2)
    srli(s2, s2, 1)
    bge(t0, zero, TPOS)
    addi(s2, s2, 1)
    label(TPOS)
    sra(t0, t0, s1)
    bge(s2, s3, NORIGHT)
    addi(t0, t0, 1)
    label(NORIGHT)
    add(t0, t0, a5)
    bge(t0, a6, GELO)
    mv(t0, a6)
    label(GELO)
    li(t1, 127)
    bge(t1, t0, LE127)
    mv(t0, t1)
    label(LE127)
    addi(t0, t0, 128)
    sb(t0, 0(t6))
    addi(t6, t6, 1)
    addi(a1, a1, 16)
    addi(a4, a4, -1)
    jal(zero, OUTPUT)
    label(NEXT)
    addi(a7, a7, 3)
    andi(a7, a7, -4)
    mv(a1, a7)
    mv(t0, t5)
    mv(t5, s0)
    mv(s0, t0)
    addi(a2, a2, -1)
    jal(zero, SECTION)
    label(END)
    lw(s0, 0(sp))
    lw(s1, 4(sp))
    lw(s2, 8(sp))
    lw(s3, 12(sp))
    addi(sp, sp, 16)
    li(a0, 0)
"""


@micropython.viper
def network_viper(feats: ptr32, net: ptr32, act: ptr8):
    """The assembler's steps (above) in viper. Word size agnostic: ptr32 reads are sign-extended with
    (v ^ 2^31) - 2^31 (a no-op on a 32-bit word); the 62-bit product of the requantization is taken
    from 16-bit halves, its rounding nudge added with a carry."""
    one = 1  # shifted at run time: 1 << 30 written as a constant is not a small int on a 32-bit build
    s = one << 31
    half = one << 30
    top = half - 1
    w8 = ptr8(net)
    out_base = 0
    in_base = 256
    sections = net[0]
    k = 1  # word index
    fi = 0  # feature index
    while sections > 0:
        n_in = net[k]
        n_out = net[k + 1]
        zp_out = (net[k + 2] ^ s) - s
        lo = (net[k + 3] ^ s) - s
        k += 4
        w = 4 * (k + 4 * n_out)  # byte index of the weights
        sx = 0
        i = 0
        while i < n_in:
            sx += act[in_base + i]
            i += 1
        sx = sx << 7
        o = 0
        while o < n_out:
            acc = (net[k] ^ s) - s
            if n_in == 0:
                u = uint(feats[fi])
                fi += 1
                e = int((u >> 23) & 0xFF)
                mant = int(u & 0x7FFFFF)
                if e:
                    mant = mant | 0x800000
                    sh = e - 150
                else:
                    sh = -149
                sh += (net[k + 3] ^ s) - s
                if mant == 0 or sh <= -26:
                    f = 0
                elif sh >= 7:
                    f = top
                elif sh >= 0:
                    f = mant << sh
                else:
                    f = (mant + (one << (-1 - sh))) >> (0 - sh)
                if (u >> 31) & 1:
                    f = 0 - f
                acc = f - acc
            else:
                acc -= sx
                i = 0
                while i < n_in:
                    acc += w8[w] * act[in_base + i]
                    w += 1
                    i += 1
            shift = (net[k + 2] ^ s) - s
            if shift > 0:
                acc = acc << shift
            # SaturatingRoundingDoublingHighMul(acc, m0), m0 in [2^30, 2^31): INT32_MIN x INT32_MIN cannot occur.
            neg = 0
            if acc < 0:
                neg = 1
                ua = uint(0 - acc)
            else:
                ua = uint(acc)
            ub = uint(net[k + 1])
            a1 = ua >> 16
            a0 = ua & 0xFFFF
            b1 = ub >> 16
            b0 = ub & 0xFFFF
            mid = a1 * b0 + a0 * b1
            lo0 = a0 * b0
            lo1 = lo0 + ((mid & 0xFFFF) << 16)
            hi = a1 * b1 + (mid >> 16)
            if lo1 < lo0:  # unsigned carry (32-bit words; a 64-bit word never wraps here)
                hi += 1
            lo2 = lo1 + uint(half - neg)
            if lo2 < lo1:
                hi += 1
            r = int((hi << 1) + (lo2 >> 31))
            if neg:
                r = 0 - r
            # RoundingDivideByPOT
            if shift < 0:
                e = 0 - shift
                mask = (1 << e) - 1
                rem = r & mask
                threshold = mask >> 1
                if r < 0:
                    threshold += 1
                r = r >> e
                if rem > threshold:
                    r += 1
            y = zp_out + r
            if y < lo:
                y = lo
            if y > 127:
                y = 127
            act[out_base + o] = y + 128
            k += 4
            o += 1
        k = (w + 3) >> 2 if n_in else k
        t = in_base
        in_base = out_base
        out_base = t
        sections -= 1


def _kernel():
    """(the int8 network kernel this port runs, its name). CPython (memctl_emulator.firmware_python) runs
    viper's source as plain Python."""
    if sys.implementation.name == "micropython":
        try:
            g = {"micropython": micropython}
            exec(_RV32, g)
            return g["network"], "asm_rv32"
        except SyntaxError:  # this port has no RV32 assembler
            pass
    return network_viper, "viper"


class Predictor:
    def __init__(self):
        self.loaded = False
        self.n_params = 0
        self.dtype = 0
        self.feature_set = 0
        self.n_features = 0
        self.n_out = 0
        # The second output of a model that has one (inverse models: the spread of the
        # amplitude a step needs), set by each predict().
        self.spread = 0.0
        # Inverse predictors: the pulse amplitude offset (V, set / reset) learned on the
        # devices programmed with this model so far: a new device starts from it.
        self.offset = [0.0, 0.0]
        self.x = array.array("f", [0.0] * N_FEATURES)
        # Where callers put the features of the next predict(): for an int8 model the float32 array the
        # kernel reads (nothing to copy), for a float one a list (full precision).
        self.feat = self.f_list = [0.0] * N_FEATURES
        self.scratch = (array.array("f", [0.0] * _WIDEST), array.array("f", [0.0] * _WIDEST))
        # int8: the network's buffer (see above), grown to the largest model loaded (a few KB for the models
        # programming uses; the largest blob's about 17 KB: boot leaves the heap packed, main.py), and its
        # activations, two halves of 256 (offset binary), taken at boot. A blob's weights are not copied on the way.
        self.net = bytearray(0)
        self.act = bytearray(2 * _WIDEST)
        self.out_at = 0  # where the last section's outputs start in act

    def load(self, buf, n):
        """Decode and install a blob; on any error the old model stays."""
        dtype, mean, std, i_min, i_max, quant, layers, fset = decode(buf, n)
        for layer in layers:
            if layer[1] > _WIDEST or layer[0] > _WIDEST:
                raise ValueError("predictor layer wider than the firmware supports")
        if dtype == DTYPE_I8:  # what can refuse the blob, before anything changes
            fixed_in = input_fixed_point(mean, std, quant[0])
            size = 4 + _SECTION * (2 + len(fixed_in))
            size += sum(_SECTION * (1 + o) + (o * i + 3) // 4 * 4 for i, o, *_ in layers)
            net = self.net if len(self.net) >= size else bytearray(size)  # a MemoryError leaves the old model
        # Keep the blob's float32 values as they are (host reference does too).
        self.mean = list(mean)
        self.std = list(std)
        self.i_min, self.i_span = i_min, (i_max - i_min) or 1.0
        if dtype == DTYPE_I8:
            self.s_in, self.zp_in = quant
            self.net = net
            self._net(fixed_in, layers)
            self.out_at = _WIDEST * (len(layers) & 1)
            self.s_out, self.zp_act = layers[-1][3], layers[-1][4] + 128  # output scale, zero point offset binary
            self.layers = [(i, o, a, s, z) for i, o, a, s, z, m0, sh, w, b in layers]
        else:
            self.layers = [(i, o, a, array.array("f", w), array.array("f", b)) for i, o, a, w, b in layers]
        self.dtype = dtype
        self.feat = self.x if dtype == DTYPE_I8 else self.f_list
        self.feature_set = fset
        self.n_features = len(self.mean)
        self.n_out = layers[-1][1]
        self.offset[0] = self.offset[1] = 0.0
        self.n_params = sum(layer[0] * layer[1] + layer[1] for layer in layers)
        self.loaded = True

    def _net(self, fixed_in, layers):
        """Write the int8 network's buffer (layout above) for input constants fixed_in and decoded layers."""
        net = self.net
        struct.pack_into("<i", net, 0, 1 + len(layers))
        struct.pack_into("<iiii", net, 4, 0, len(fixed_in), self.zp_in, -128)
        at = 4 + _SECTION
        for e, m, m0, shift in fixed_in:
            struct.pack_into("<iiii", net, at, m, m0, shift, e)
            at += _SECTION
        zp = self.zp_in
        for i, o, a, _, z, m0, sh, w, b in layers:
            struct.pack_into("<iiii", net, at, i, o, z, z if a == ACT_RELU else -128)
            at += _SECTION
            zpu = zp + 128  # the input's zero point, offset binary
            wat = at + _SECTION * o
            for k in range(o):
                sw = 0
                for j in range(i):
                    v = w[k * i + j] ^ 128  # the int8 weight + 128 (w holds its byte, unsigned)
                    net[wat + k * i + j] = v
                    sw += v
                struct.pack_into("<iiii", net, at, b[k] - zpu * sw + 128 * zpu * i, m0[k], sh[k], 0)
                at += _SECTION
            at = wat + (o * i + 3) // 4 * 4
            zp = z

    def scaled(self, current):
        return (current - self.i_min) / self.i_span

    @micropython.native
    def predict(self, f, spread=True):
        """f: the raw features of the model's feature set (predictor_blob). int8: stored as float32, then
        integers only (one kernel call, nothing allocated but the float returned); the output codes stay
        in self.act from self.out_at (offset binary: code + 128). spread=False: a caller that does not read
        self.spread saves its float (an allocation on a 32-bit board)."""
        x = self.x
        if self.dtype == DTYPE_I8:
            if f is not x:
                for i in range(self.n_features):
                    x[i] = f[i]
            network(x, self.net, self.act)
            at = self.out_at
            act = self.act
            if spread and self.n_out > 1:
                self.spread = (act[at + 1] - self.zp_act) * self.s_out
            return (act[at] - self.zp_act) * self.s_out
        return self._predict_f32(f)

    def _predict_f32(self, f):
        """A float32 model (for comparisons; what ships is int8). Bytecode: frozen native code for this loop
        crashed the rp2 board (armv6m) when it ran."""
        x = self.x
        m, s = self.mean, self.std
        for i in range(self.n_features):
            x[i] = (f[i] - m[i]) / s[i] if s[i] > 0 else 0.0
        cur = x
        k = 0
        for n_in, n_out, act, w, b in self.layers:
            out = self.scratch[k]
            k ^= 1
            for o in range(n_out):
                acc = b[o]
                base = o * n_in
                for i in range(n_in):
                    acc += w[base + i] * cur[i]
                if act == ACT_RELU and acc < 0:
                    acc = 0.0
                out[o] = acc
            cur = out
        if self.n_out > 1:
            self.spread = cur[1]
        return cur[0]


PREDICTOR = Predictor()
network, KERNEL = _kernel()
