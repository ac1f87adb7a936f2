# On-board predictor (paper 004): an MLP that predicts the increment of the
# min-max scaled read current for one pulse, from the pulse features and the
# present scaled current. Float32 for now; weights live in array('f') so an
# inference allocates nothing but its result.
import array

from predictor_blob import ACT_RELU, N_FEATURES, decode

_WIDEST = 256


class Predictor:
    def __init__(self):
        self.loaded = False
        self.n_params = 0
        self.x = array.array("f", [0.0] * N_FEATURES)
        self.feat = [0.0] * N_FEATURES
        self.scratch = (array.array("f", [0.0] * _WIDEST), array.array("f", [0.0] * _WIDEST))

    def load(self, buf, n):
        """Decode and install a blob; on any error the old model stays."""
        mean, std, i_min, i_max, layers = decode(buf, n)
        for _, n_out, _, _, _ in layers:
            if n_out > _WIDEST:
                raise ValueError("predictor layer wider than the firmware supports")
        self.mean = array.array("f", mean)
        self.inv_std = array.array("f", [1.0 / s if s > 1e-12 else 0.0 for s in std])
        self.i_min, self.i_span = i_min, (i_max - i_min) or 1.0
        self.layers = [(i, o, a, array.array("f", w), array.array("f", b)) for i, o, a, w, b in layers]
        self.n_params = sum(i * o + o for i, o, _, _, _ in layers)
        self.loaded = True

    def scaled(self, current):
        return (current - self.i_min) / self.i_span

    def predict(self, f):
        """f: the 7 raw features (N, t_set, V_set, t_off, t_r, V_anti, I_n)."""
        x = self.x
        m, s = self.mean, self.inv_std
        for i in range(N_FEATURES):
            x[i] = (f[i] - m[i]) * s[i]
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
        return cur[0]


PREDICTOR = Predictor()
