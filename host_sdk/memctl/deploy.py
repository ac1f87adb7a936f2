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


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


ACTIVATIONS = {"Relu": lambda z: np.maximum(z, 0), "Tanh": np.tanh,
               "Sigmoid": lambda z: 1 / (1 + np.exp(-z)), "Softmax": _softmax, None: lambda z: z}  # fmt: skip


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
    """One tile: a block of a layer's inputs x outputs on one board."""

    layer: int
    board: int  # index into the deployment's boards
    origin: tuple[int, int]  # row, column of the tile's first device
    inputs: tuple[int, int]  # input rows [start, stop) of the layer's mapped matrix (bias = last row)
    outputs: tuple[int, int]  # outputs [start, stop)
    scale: float  # weight units per siemens of G+ - G-
    targets: list = field(default_factory=list)
    achieved: list = field(default_factory=list)
    weight_rms_error: float = 0.0
    pulses: int = 0  # programming cost of this tile
    board_time: float = 0.0  # s
    energy: float = 0.0  # J (estimate)

    @property
    def rows(self) -> int:
        return self.inputs[1] - self.inputs[0]

    @property
    def cols(self) -> int:
        return 2 * (self.outputs[1] - self.outputs[0])


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


def plan_tiles(layers: list[Layer], shapes: list[tuple[int, int]], g_range: tuple[float, float]) -> list:
    """Split every layer into tiles and place them in column bands, board
    after board. Row blocks are as tall as the smallest board; their partial
    sums add up on the host. Raises DeployError, before any pulse, when the
    model does not fit."""
    block = min(r for r, _ in shapes)
    mapped = [map_layer(layer, *g_range) for layer in layers]
    need = sum(t.shape[1] * -(-t.shape[0] // block) for t, _ in mapped)
    have = sum(c - c % 2 for _, c in shapes)
    if need > have:
        raise DeployError(
            f"the model needs {need} columns of {block}-row tiles; {len(shapes)} board(s) {shapes} offer {have}: "
            "give more boards (ports) or a smaller model"
        )
    free = [0] * len(shapes)
    plans = []
    for k, (t, scale) in enumerate(mapped):
        n_in, n_out = t.shape[0], t.shape[1] // 2
        for r0 in range(0, n_in, block):
            r1 = min(n_in, r0 + block)
            o0 = 0
            while o0 < n_out:
                bi = next(i for i, (_, c) in enumerate(shapes) if c - free[i] >= 2)
                o1 = min(n_out, o0 + (shapes[bi][1] - free[bi]) // 2)
                plans.append((k, bi, (0, free[bi]), (r0, r1), (o0, o1), scale, t[r0:r1, 2 * o0 : 2 * o1]))
                free[bi] += 2 * (o1 - o0)
                o0 = o1
    return plans


@dataclass
class Deployment:
    layers: list[Layer]
    placements: list[Placement]
    v_in: float
    ports: list[str] = field(default_factory=list)
    gain: list = field(default_factory=list)  # per layer, per output (empty: uncalibrated)
    offset: list = field(default_factory=list)

    def cost(self) -> dict:
        """Programming pulses, board time and energy of the whole deployment."""
        return {
            "pulses": sum(p.pulses for p in self.placements),
            "board_time_s": sum(p.board_time for p in self.placements),
            "energy_J": sum(p.energy for p in self.placements),
        }

    def manifest(self) -> dict:
        return {
            "format": "memctl-deployment", "version": 1, "ports": self.ports, "v_in": self.v_in,
            "layers": [{"weight": lay.weight.tolist(), "bias": lay.bias.tolist(), "activation": lay.activation}
                       for lay in self.layers],
            "placements": [asdict(p) for p in self.placements], "gain": self.gain, "offset": self.offset,
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
        placements = [
            Placement(
                **{**p, "origin": tuple(p["origin"]), "inputs": tuple(p["inputs"]), "outputs": tuple(p["outputs"])}
            )
            for p in m["placements"]
        ]
        return cls(layers, placements, m["v_in"], m.get("ports", []), m.get("gain", []), m.get("offset", []))

    def layer_output(self, boards: list[Board], k: int, a: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """W a + b of layer k: the sum of its tiles' crossbar products."""
        x = np.append(a, 1.0)  # the bias row
        z = np.zeros(self.layers[k].weight.shape[0])
        for p in self.placements:
            if p.layer != k:
                continue
            b = boards[p.board]
            rows, _ = b.shape
            lim = b.read_limit
            v = np.zeros(rows)
            v[p.origin[0] : p.origin[0] + p.rows] = np.clip(x[p.inputs[0] : p.inputs[1]] * self.v_in, -lim, lim)
            i = b.vmm(v)[p.origin[1] : p.origin[1] + p.cols]
            z[p.outputs[0] : p.outputs[1]] += (i[0::2] - i[1::2]) * p.scale / self.v_in
        if calibrated and self.gain:
            z = np.asarray(self.gain[k]) * z + np.asarray(self.offset[k])
        return z

    def calibrate(self, boards: Board | list[Board], samples: int = 16, seed: int = 0) -> None:
        """Per-output gain and offset (paper 002's model-driven calibration):
        run random inputs, fit measured against the layer's own weights."""
        boards = boards if isinstance(boards, list) else [boards]
        rng = np.random.default_rng(seed)
        self.gain, self.offset = [], []
        for k, layer in enumerate(self.layers):
            x = rng.uniform(-1, 1, (samples, layer.weight.shape[1]))
            want = x @ layer.weight.T + layer.bias
            got = np.array([self.layer_output(boards, k, xi, calibrated=False) for xi in x])
            fits = [np.linalg.lstsq(np.stack([got[:, j], np.ones(samples)], 1), want[:, j], rcond=None)[0]
                    for j in range(want.shape[1])]  # fmt: skip
            self.gain.append([float(f[0]) for f in fits])
            self.offset.append([float(f[1]) for f in fits])

    def run(self, boards: Board | list[Board], x: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """Forward pass with every matrix product on the crossbar(s)."""
        boards = boards if isinstance(boards, list) else [boards]
        out = []
        for sample in np.atleast_2d(np.asarray(x, float)):
            a = sample
            for k, layer in enumerate(self.layers):
                a = ACTIVATIONS[layer.activation](self.layer_output(boards, k, a, calibrated))
            out.append(a)
        return np.array(out)


def deploy(
    model, boards: Board | list[Board], *, algorithm: Algorithm | None = None, tolerance: float | None = None,
    max_pulses: int = 200, v_in: float = 0.1, g_range: tuple[float, float] = (10e-6, 100e-6),
) -> Deployment:  # fmt: skip
    """Map every layer, tile it over the boards, check everything fits, then
    program tile by tile (progress bar per tile) and record a manifest."""
    boards = boards if isinstance(boards, list) else [boards]
    layers = read_onnx(model) if not isinstance(model, list) else model
    for b in boards:
        if not 0 < v_in <= b.read_limit:
            raise DeployError(f"v_in {v_in} V must be within the read limit {b.read_limit} V of {b.link.port}")
    plans = plan_tiles(layers, [b.shape for b in boards], g_range)
    g_lo, g_hi = g_range
    tol = tolerance if tolerance is not None else 0.01 * (g_hi - g_lo)
    placements = []
    for k, bi, origin, ins, outs, scale, t in plans:
        res = boards[bi].program(t, tolerance=tol, max_pulses=max_pulses, origin=origin, algorithm=algorithm)
        w_target = (t[:, 0::2] - t[:, 1::2]) * scale
        w_real = (res.final[:, 0::2] - res.final[:, 1::2]) * scale
        placements.append(Placement(
            layer=k, board=bi, origin=origin, inputs=ins, outputs=outs, scale=scale, targets=t.tolist(),
            achieved=res.final.tolist(), weight_rms_error=float(np.sqrt(np.mean((w_real - w_target) ** 2))),
            pulses=int(res.pulses.sum()), board_time=float(res.board_time), energy=float(res.energy.sum()),
        ))  # fmt: skip
    return Deployment(layers, placements, v_in, [b.link.port for b in boards])
