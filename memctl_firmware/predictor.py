# On-board predictor (paper 004): an MLP that predicts the increment of the
# min-max scaled read current for one pulse, from the pulse features and the
# present scaled read current. float32 or int8 (TFLite-style integer
# arithmetic, bit-exact with the host reference, memctl/export/fixedpoint.py). Weights
# live in arrays. The int8 layers run in viper on machine words: on a 32-bit
# MicroPython the requantization's 64-bit products and multipliers >= 2^30
# would otherwise be heap-allocated long ints, several per output.
import array

import micropython
from micropython import const
from predictor_blob import ACT_RELU, DTYPE_I8, N_FEATURES, decode

_WIDEST = 256
_HEAD = const(5)  # int8 layer parameters: n_in, zp_in, n_out, zp_out, lowest output; then (bias, m0, shift) per output


@micropython.viper
def int8_layer(x: ptr8, out: ptr8, w: ptr8, p: ptr32):
    """One int8 layer: out = clamp(zp_out + MultiplyByQuantizedMultiplier(b + sum w (x - zp_in))).

    Weights are stored offset by 128 (w' = w + 128, unsigned) and an activation byte x XOR 128 is x + 128,
    so the inner loop is one unsigned multiply-add; the offsets are undone per output with a constant the
    load computed (p: c = b - zp' sum w' + 128 zp' n_in, zp' = zp_in + 128) and the inputs' sum.
    The requantization is gemmlowp's (memctl.export.fixedpoint.mbqm) in 32-bit words: the 62-bit product of
    the accumulator and m0 from 16-bit halves, the rounding nudge added with a carry, then >> 31. Word size
    agnostic: ptr32 reads are sign-extended with (v ^ 2^31) - 2^31 (a no-op on a 32-bit word)."""
    one = 1  # shifted at run time: 1 << 30 written as a constant is not a small int on a 32-bit build
    s = one << 31
    n_in = p[0]
    n_out = p[2]
    zp_out = (p[3] ^ s) - s
    lo = (p[4] ^ s) - s
    half = one << 30
    sx = 0
    i = 0
    while i < n_in:
        sx += x[i] ^ 128
        i += 1
    o = 0
    while o < n_out:
        q = _HEAD + 3 * o
        acc = ((p[q] ^ s) - s) - (sx << 7)
        base = o * n_in
        i = 0
        while i < n_in:
            acc += w[base + i] * (x[i] ^ 128)
            i += 1
        shift = (p[q + 2] ^ s) - s
        if shift > 0:
            acc = acc << shift
        # SaturatingRoundingDoublingHighMul(acc, m0), m0 in [2^30, 2^31): the INT32_MIN x INT32_MIN case cannot occur.
        neg = 0
        if acc < 0:
            neg = 1
            ua = uint(0 - acc)
        else:
            ua = uint(acc)
        ub = uint(p[q + 1])
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
        out[o] = y
        o += 1


def round_half_away(v):
    return int(v + 0.5) if v >= 0 else -int(-v + 0.5)


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
        self.feat = [0.0] * N_FEATURES
        self.scratch = (array.array("f", [0.0] * _WIDEST), array.array("f", [0.0] * _WIDEST))
        self.iscratch = (array.array("b", [0] * _WIDEST), array.array("b", [0] * _WIDEST))  # int8 activations

    def load(self, buf, n):
        """Decode and install a blob; on any error the old model stays."""
        dtype, mean, std, i_min, i_max, quant, layers, fset = decode(buf, n)
        for layer in layers:
            if layer[1] > _WIDEST or layer[0] > _WIDEST:
                raise ValueError("predictor layer wider than the firmware supports")
        # Keep the blob's float32 values as they are (host reference does too).
        self.mean = list(mean)
        self.std = list(std)
        self.i_min, self.i_span = i_min, (i_max - i_min) or 1.0
        if dtype == DTYPE_I8:
            self.s_in, self.zp_in = quant
            self.layers = []
            zp = self.zp_in
            for i, o, a, s, z, m0, sh, w, b in layers:
                p = array.array("i", [0] * (_HEAD + 3 * o))
                p[0], p[1], p[2], p[3], p[4] = i, zp, o, z, z if a == ACT_RELU else -128
                ws = array.array("b", w)  # the blob's int8 bytes, signed
                wu = bytearray(len(ws))  # w + 128: int8_layer's unsigned multiply-add
                zpu = zp + 128
                for k in range(o):
                    sw = 0
                    for j in range(i):
                        wu[k * i + j] = ws[k * i + j] + 128
                        sw += ws[k * i + j] + 128
                    p[_HEAD + 3 * k] = b[k] - zpu * sw + 128 * zpu * i
                    p[_HEAD + 3 * k + 1] = m0[k]
                    p[_HEAD + 3 * k + 2] = sh[k]
                self.layers.append((i, o, a, s, z, wu, p))
                zp = z
        else:
            self.layers = [(i, o, a, array.array("f", w), array.array("f", b)) for i, o, a, w, b in layers]
        self.dtype = dtype
        self.feature_set = fset
        self.n_features = len(self.mean)
        self.n_out = layers[-1][1]
        self.offset[0] = self.offset[1] = 0.0
        self.n_params = sum(layer[0] * layer[1] + layer[1] for layer in layers)
        self.loaded = True

    def scaled(self, current):
        return (current - self.i_min) / self.i_span

    @micropython.native
    def predict(self, f):
        """f: the raw features of the model's feature set (predictor_blob)."""
        if self.dtype == DTYPE_I8:
            return self.predict_int8(f)
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

    def quantize_input(self, f, out):
        m, s, q, z = self.mean, self.std, self.s_in, self.zp_in
        for i in range(self.n_features):
            xn = (f[i] - m[i]) / s[i] if s[i] > 0 else 0.0
            v = round_half_away(xn / q) + z
            out[i] = -128 if v < -128 else (127 if v > 127 else v)

    def run_int8(self, xq):
        """Integer inference on quantized inputs; returns the int8 outputs (scratch). Allocates nothing."""
        cur = xq
        layers = self.layers
        j = 0
        while j < len(layers):  # no iterator object
            out = self.iscratch[j & 1]
            int8_layer(cur, out, layers[j][5], layers[j][6])
            cur = out
            j += 1
        return cur

    def predict_int8(self, f):
        xq = self.iscratch[1]  # the first layer writes iscratch[0]
        self.quantize_input(f, xq)
        layer = self.layers[-1]
        out = self.run_int8(xq)
        if self.n_out > 1:
            self.spread = (out[1] - layer[4]) * layer[3]
        return (out[0] - layer[4]) * layer[3]


PREDICTOR = Predictor()
