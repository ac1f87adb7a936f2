# On-board predictor (paper 004): an MLP that predicts the increment of the
# min-max scaled read current for one pulse, from the pulse features and the
# present scaled read current. float32 or int8 (TFLite-style integer
# arithmetic via fixedpoint.py, bit-exact with the host reference). Weights
# live in arrays, so an inference allocates nothing but its result.
import array

import micropython
from fixedpoint import mbqm
from predictor_blob import ACT_RELU, DTYPE_I8, N_FEATURES, decode

_WIDEST = 256


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
        self.iscratch = (array.array("i", [0] * _WIDEST), array.array("i", [0] * _WIDEST))

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
            self.layers = [
                (i, o, a, s, z, array.array("i", m0), array.array("b", sh), array.array("b", w), array.array("i", b))
                for i, o, a, s, z, m0, sh, w, b in layers
            ]
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

    @micropython.native
    def run_int8(self, xq):
        """Integer inference on quantized inputs; returns the int8 outputs (scratch)."""
        cur = xq
        zp = self.zp_in
        k = 0
        for n_in, n_out, act, _, zp_out, m0, sh, w, b in self.layers:
            out = self.iscratch[k]
            k ^= 1
            lo = zp_out if act == ACT_RELU else -128
            for o in range(n_out):
                acc = b[o]
                base = o * n_in
                for i in range(n_in):
                    acc += w[base + i] * (cur[i] - zp)
                y = zp_out + mbqm(acc, m0[o], sh[o])
                out[o] = lo if y < lo else (127 if y > 127 else y)
            cur = out
            zp = zp_out
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
