"""Deploy a trained MLP (ONNX) onto a crossbar and run it (issue 6, first slice).

Each weight matrix W (outputs x inputs) becomes a differential pair per
output (paper 003): column 2j holds G+, column 2j+1 holds G-, and
G+ - G- = W / scale with both in [g_lo, g_hi]. Inputs drive the rows as
read voltages (x * v_in, clipped to the read limit); the bias is one more row
driven at v_in. The column currents give W x: (I+ - I-) * scale / v_in.
Every check (supported ops, finite weights, shapes, fit on the board) runs
before the first pulse.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from memctl.board import Algorithm, Board

ACTIVATIONS = {"Relu": lambda z: np.maximum(z, 0), "Tanh": np.tanh,
               "Sigmoid": lambda z: 1 / (1 + np.exp(-z)), "Softmax": None, None: lambda z: z}  # fmt: skip


class DeployError(ValueError):
    """The model cannot be deployed as asked; nothing was programmed."""


@dataclass
class Layer:
    weight: np.ndarray  # outputs x inputs
    bias: np.ndarray  # outputs
    activation: str | None  # Relu, Tanh, Sigmoid, Softmax or None


def read_onnx(path_or_model) -> list[Layer]:
    """An MLP from ONNX: Gemm, or MatMul + Add, each optionally followed by
    Relu / Tanh / Sigmoid / Softmax. Anything else is refused by name."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path_or_model) if isinstance(path_or_model, str | Path) else path_or_model
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    layers: list[Layer] = []
    pending: Layer | None = None
    for node in g.node:
        op = node.op_type
        if op == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            w = inits.get(node.input[1])
            if w is None:
                raise DeployError(f"Gemm {node.name!r}: weights must be an initializer")
            w = w.T if not attrs.get("transB", 0) else w
            b = inits.get(node.input[2]) if len(node.input) > 2 else None
            pending = Layer(np.asarray(w, float), np.zeros(w.shape[0]) if b is None else np.asarray(b, float), None)
            layers.append(pending)
        elif op == "MatMul":
            w = inits.get(node.input[1])
            if w is None:
                raise DeployError(f"MatMul {node.name!r}: weights must be an initializer")
            pending = Layer(np.asarray(w, float).T, np.zeros(w.shape[1]), None)
            layers.append(pending)
        elif op == "Add" and pending is not None and pending.activation is None:
            b = inits.get(node.input[1])
            if b is None:
                raise DeployError(f"Add {node.name!r}: bias must be an initializer")
            pending.bias = pending.bias + np.asarray(b, float).reshape(-1)
        elif op in ("Relu", "Tanh", "Sigmoid", "Softmax") and pending is not None:
            pending.activation = op
        elif op in ("Identity", "Flatten"):
            continue
        else:
            raise DeployError(f"unsupported ONNX op {op!r} (node {node.name!r}); memctl deploys Gemm/MatMul+Add MLPs")
    if not layers:
        raise DeployError("no Gemm or MatMul layer in the model")
    for k, layer in enumerate(layers):
        if not (np.all(np.isfinite(layer.weight)) and np.all(np.isfinite(layer.bias))):
            raise DeployError(f"layer {k}: weights or bias contain NaN or inf")
        if k and layer.weight.shape[1] != layers[k - 1].weight.shape[0]:
            raise DeployError(f"layer {k}: {layer.weight.shape[1]} inputs, previous layer has "
                              f"{layers[k - 1].weight.shape[0]} outputs")  # fmt: skip
    return layers


@dataclass
class Placement:
    """Where one layer lives and how it was programmed (for the manifest)."""

    layer: int
    origin: tuple[int, int]
    rows: int  # inputs + bias row
    cols: int  # 2 x outputs
    scale: float  # weight units per siemens of G+ - G-
    gain: list = field(default_factory=list)  # per-output calibration (empty: none)
    offset: list = field(default_factory=list)
    targets: list = field(default_factory=list)
    achieved: list = field(default_factory=list)
    weight_rms_error: float = 0.0


def map_layer(layer: Layer, g_lo: float, g_hi: float) -> tuple[np.ndarray, float]:
    """Targets (inputs+1) x (2 outputs) for a differential mapping, and the scale."""
    w = np.hstack([layer.weight, layer.bias[:, None]]).T  # (inputs + 1) x outputs
    span = g_hi - g_lo
    peak = float(np.abs(w).max()) or 1.0
    scale = peak / span
    d = w / scale  # G+ - G-, within +-span
    gp = np.where(d > 0, g_lo + d, g_lo)
    gm = np.where(d < 0, g_lo - d, g_lo)
    t = np.empty((w.shape[0], 2 * w.shape[1]))
    t[:, 0::2], t[:, 1::2] = gp, gm
    return t, scale


@dataclass
class Deployment:
    layers: list[Layer]
    placements: list[Placement]
    v_in: float
    port: str = ""

    def manifest(self) -> dict:
        return {
            "format": "memctl-deployment", "version": 1, "port": self.port, "v_in": self.v_in,
            "layers": [{"weight": lay.weight.tolist(), "bias": lay.bias.tolist(), "activation": lay.activation}
                       for lay in self.layers],
            "placements": [asdict(p) for p in self.placements],
        }  # fmt: skip

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.manifest(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Deployment:
        """A saved deployment: run it again without re-programming."""
        try:
            m = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DeployError(f"{path}: not a readable deployment manifest: {e}") from e
        if m.get("format") != "memctl-deployment":
            raise DeployError(f"{path}: not a memctl deployment manifest")
        layers = [Layer(np.array(d["weight"]), np.array(d["bias"]), d["activation"]) for d in m["layers"]]
        placements = [Placement(**{**p, "origin": tuple(p["origin"])}) for p in m["placements"]]
        return cls(layers, placements, m["v_in"], m.get("port", ""))

    def layer_output(self, board: Board, p: Placement, a: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """W a + b of one layer, measured on the crossbar."""
        rows, _ = board.shape
        lim = board.limits().v_read
        v = np.zeros(rows)
        v[p.origin[0] : p.origin[0] + p.rows] = np.clip(np.append(a, 1.0) * self.v_in, -lim, lim)
        i = board.vmm(v)[p.origin[1] : p.origin[1] + p.cols]
        z = (i[0::2] - i[1::2]) * p.scale / self.v_in
        if calibrated and p.gain:
            z = np.asarray(p.gain) * z + np.asarray(p.offset)
        return z

    def calibrate(self, board: Board, samples: int = 16, seed: int = 0) -> None:
        """Per-output gain and offset (paper 002's model-driven calibration):
        run random inputs, fit measured against the layer's own weights."""
        rng = np.random.default_rng(seed)
        for layer, p in zip(self.layers, self.placements, strict=True):
            x = rng.uniform(-1, 1, (samples, layer.weight.shape[1]))
            want = x @ layer.weight.T + layer.bias
            got = np.array([self.layer_output(board, p, xi, calibrated=False) for xi in x])
            gain, offset = [], []
            for j in range(want.shape[1]):
                a_mat = np.stack([got[:, j], np.ones(samples)], 1)
                (g, o), *_ = np.linalg.lstsq(a_mat, want[:, j], rcond=None)
                gain.append(float(g))
                offset.append(float(o))
            p.gain, p.offset = gain, offset

    def run(self, board: Board, x: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """Forward pass with every matrix product on the crossbar."""
        out = []
        for sample in np.atleast_2d(np.asarray(x, float)):
            a = sample
            for layer, p in zip(self.layers, self.placements, strict=True):
                z = self.layer_output(board, p, a, calibrated)
                f = ACTIVATIONS[layer.activation]
                a = np.exp(z - z.max()) / np.exp(z - z.max()).sum() if layer.activation == "Softmax" else f(z)
            out.append(a)
        return np.array(out)


def deploy(
    model, board: Board, *, algorithm: Algorithm | None = None, tolerance: float | None = None,
    max_pulses: int = 200, v_in: float = 0.1, g_range: tuple[float, float] = (10e-6, 100e-6),
) -> Deployment:  # fmt: skip
    """Map every layer, check it fits the board, then program tile by tile.
    Layers sit side by side on one array (tiling across arrays comes later)."""
    layers = read_onnx(model) if not isinstance(model, list) else model
    rows, cols = board.shape
    g_lo, g_hi = g_range
    plans, col = [], 0
    for k, layer in enumerate(layers):
        t, scale = map_layer(layer, g_lo, g_hi)
        if t.shape[0] > rows or col + t.shape[1] > cols:
            raise DeployError(
                f"layer {k} needs {t.shape[0]} rows x {t.shape[1]} columns; the {rows}x{cols} board has "
                f"{cols - col} columns left (tiling across arrays is not implemented yet)"
            )
        plans.append((k, t, scale, col))
        col += t.shape[1]
    if not 0 < v_in <= board.limits().v_read:
        raise DeployError(f"v_in {v_in} V must be within the read limit {board.limits().v_read} V")
    tol = tolerance if tolerance is not None else 0.01 * (g_hi - g_lo)
    placements = []
    for k, t, scale, c0 in plans:
        res = board.program(t, tolerance=tol, max_pulses=max_pulses, origin=(0, c0), algorithm=algorithm)
        achieved = res.final
        w_target = (t[:, 0::2] - t[:, 1::2]) * scale
        w_real = (achieved[:, 0::2] - achieved[:, 1::2]) * scale
        placements.append(Placement(
            layer=k, origin=(0, c0), rows=t.shape[0], cols=t.shape[1], scale=scale, targets=t.tolist(),
            achieved=achieved.tolist(), weight_rms_error=float(np.sqrt(np.mean((w_real - w_target) ** 2))),
        ))  # fmt: skip
    return Deployment(layers, placements, v_in, board.link.port)
