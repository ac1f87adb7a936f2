# The deployed MLP's forward pass on the controller: every matrix
# product on the crossbar (one VMM per tile), the bias as one more input row,
# per-output gain/offset (paper 002's calibration), the activation and the
# next layer's input computed here, so a whole inference is one request.
# Buffers are allocated when a network is loaded, never per inference.
import array
import math

from network_blob import ACT_RELU, ACT_SIGMOID, ACT_SOFTMAX, ACT_TANH, MAX_WIDTH, decode


class Network:
    def __init__(self):
        self.loaded = False
        self.n_in = 0
        self.n_out = 0
        self.n_layers = 0
        self.layers = ()
        self.a = array.array("f", [0.0] * (MAX_WIDTH + 1))
        self.z = array.array("f", [0.0] * MAX_WIDTH)

    def load(self, buf, n, rows, cols):
        """Decode and install a network; on any error the old one stays."""
        layers, tiles = decode(buf, n, rows, cols)
        installed = []
        for k in range(len(layers)):
            n_in, n_out, act, v_in, gain, offset = layers[k]
            mine = []
            for t in tiles:
                if t[0] == k:
                    mine.append(t[1:6] + (array.array("H", t[6]), array.array("H", t[7])))
            installed.append((n_in, n_out, act, v_in, array.array("f", gain), array.array("f", offset), mine))
        self.layers = installed
        self.n_in = layers[0][0]
        self.n_out = layers[-1][1]
        self.n_layers = len(layers)
        self.loaded = True

    def run(self, xbar, vin, calibrated):
        """Forward pass of self.a[:n_in], in place: the result is left in
        self.a[:n_out]. Inputs beyond the read limit are clipped to it, as the
        host's own encoding does."""
        a, z = self.a, self.z
        lim = xbar.limits.v_read
        rows = xbar.rows
        fe = xbar.fe
        for n_in, n_out, act, v_in, gain, offset, tiles in self.layers:
            a[n_in] = 1.0  # the bias row
            for j in range(n_out):
                z[j] = 0.0
            for i0, i1, o0, o1, scale, r, c in tiles:
                for i in range(rows):
                    vin[i] = 0.0
                for i in range(i1 - i0):
                    v = a[i0 + i] * v_in
                    vin[r[i]] = lim if v > lim else (-lim if v < -lim else v)
                xbar.vmm(vin, rows)
                s = scale / v_in
                for j in range(o1 - o0):
                    z[o0 + j] += (fe.current(c[2 * j]) - fe.current(c[2 * j + 1])) * s
            if calibrated:
                for j in range(n_out):
                    z[j] = gain[j] * z[j] + offset[j]
            _activate(act, z, a, n_out)


def _activate(act, z, a, n):
    if act == ACT_SOFTMAX:
        m = z[0]
        for j in range(1, n):
            if z[j] > m:
                m = z[j]
        total = 0.0
        for j in range(n):
            a[j] = math.exp(z[j] - m)
            total += a[j]
        for j in range(n):
            a[j] = a[j] / total
        return
    for j in range(n):
        v = z[j]
        if act == ACT_RELU:
            v = v if v > 0 else 0.0
        elif act == ACT_TANH:
            v = math.tanh(v)
        elif act == ACT_SIGMOID:
            v = 1 / (1 + math.exp(-v)) if v > -80 else 0.0
        a[j] = v


NETWORK = Network()
