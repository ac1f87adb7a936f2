"""Partition an ONNX graph between the host and the crossbar, the way inference runtimes split work between
devices.

The crossbar takes the matrix products with constant weights: MatMul, Gemm (transA/transB, alpha/beta) and
Conv (1-D or 2-D, any stride/padding/dilation, group 1, as im2col: one patch per crossbar read), each with a
following Add of a constant bias and an activation the firmware runs (Relu, Tanh, Sigmoid; Softmax after a
dense layer). Everything before the first of them (Cast, Scaler, Sub/Div normalization, Flatten, ...) and
after the last (Softmax, ArgMax, label lookup, ...) runs on the host with onnxruntime, in sub-models cut from
the original with onnx's own Extractor. Between two matrix products the host runs only operations that never
grow a value (Flatten, Reshape, Transpose, pooling, ...): each layer's read voltages are scaled by the
largest input it can get, and these keep that bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from memctl.onnx_mlp import DeployError, Layer, check_layers, forward

DENSE = ("MatMul", "Gemm")
FIRMWARE_ACTIVATIONS = ("Relu", "Tanh", "Sigmoid")
# Between two matrix products: operations whose outputs never exceed their inputs' largest magnitude.
GLUE = {
    "Identity",
    "Flatten",
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "MaxPool",
    "AveragePool",
    "GlobalMaxPool",
    "GlobalAveragePool",
    "Dropout",
    "Relu",
}
# Folded when every input is a constant (exporters wrap weights in these).
FOLD = {"Identity", "Transpose", "Cast", "Reshape", "Squeeze", "Unsqueeze", "Flatten"}


@dataclass(frozen=True)
class ConvShape:
    """A Conv's geometry: its matrix product runs once per output position on a patch of the input."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]  # begin of each spatial axis, then end of each
    dilations: tuple[int, ...]
    channels: int

    def patches(self, x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
        """im2col: (N, C, *spatial) -> (N * positions, C * prod(kernel)) rows, the output's spatial shape."""
        d = len(self.kernel)
        if x.ndim != d + 2 or x.shape[1] != self.channels:
            raise ValueError(f"Conv input must be (N, {self.channels}, {d} spatial axes), got {x.shape}")
        pad = [(0, 0), (0, 0)] + [(self.pads[i], self.pads[i + d]) for i in range(d)]
        xp = np.pad(x, pad)
        out = tuple(
            (xp.shape[2 + i] - self.dilations[i] * (self.kernel[i] - 1) - 1) // self.strides[i] + 1 for i in range(d)
        )
        if min(out) < 1:
            raise ValueError(f"Conv kernel {self.kernel} does not fit the padded input {xp.shape[2:]}")
        cols = []
        for offs in np.ndindex(*self.kernel):  # kernel position by position: channels x kernel order
            sl = tuple(
                slice(o * dl, o * dl + s * (n - 1) + 1, s)
                for o, dl, s, n in zip(offs, self.dilations, self.strides, out, strict=True)
            )
            cols.append(xp[(slice(None), slice(None), *sl)])
        p = np.stack(cols, axis=2)  # N, C, K, *out
        p = p.reshape(x.shape[0], self.channels * len(cols), -1)  # N, C*K, positions
        return p.transpose(0, 2, 1).reshape(-1, self.channels * len(cols)), out


@dataclass
class MatrixOp:
    """One crossbar layer in the graph: the nodes it replaces, the tensor it reads and the one it writes."""

    input: str
    output: str
    nodes: list[str]
    conv: ConvShape | None = None
    trans_input: bool = False  # Gemm transA: the layer reads the input transposed


@dataclass
class Partition:
    model: object  # onnx.ModelProto, shapes inferred
    layers: list[Layer]
    ops: list[MatrixOp]
    pre: object | None  # host sub-model: graph inputs -> ops[0].input (None: the input itself)
    glue: list  # glue[k]: host sub-model ops[k].output -> ops[k + 1].input (None: the same tensor)
    post: object | None  # host sub-model: ops[-1].output (+ graph inputs) -> graph outputs (None: that output)
    inputs: list[str]
    outputs: list[str]
    post_inputs: list[str] = field(default_factory=list)
    _sessions: dict = field(default_factory=dict, repr=False)

    @property
    def stages(self) -> list[tuple[int, int]]:
        """Runs of layers the crossbar takes in one go: consecutive dense layers with nothing between them;
        a Conv alone (its patches are formed on the host)."""
        out: list[tuple[int, int]] = []
        for k, op in enumerate(self.ops):
            joined = out and not op.conv and not self.ops[k - 1].conv and self.glue[k - 1] is None
            if joined:
                out[-1] = (out[-1][0], k)
            else:
                out.append((k, k))
        return out

    @property
    def input_shape(self) -> list:
        return _dims(next(i for i in self.model.graph.input if i.name == self.inputs[0]))

    @property
    def input_features(self) -> int:
        """Features per sample of a (samples, features) input; 0 for images and other shapes."""
        dims = self.input_shape
        return (dims[1] or 0) if len(dims) == 2 else 0

    @property
    def chained(self) -> list[bool]:
        """Per layer: whether it reads the previous layer's outputs one for one (not a Conv's patches)."""
        return [True] + [a.conv is None and b.conv is None for a, b in zip(self.ops, self.ops[1:], strict=False)]

    def summary(self) -> dict:
        """What runs where, for the manifest and for people."""

        def names(m: object | None) -> list[str]:
            return [f"{n.op_type} {n.name}".strip() for n in m.graph.node] if m is not None else []

        return {
            "host_before": names(self.pre),
            "crossbar": [op.nodes for op in self.ops],
            "host_between": [names(g) for g in self.glue],
            "host_after": names(self.post),
            "outputs": self.outputs,
        }

    def _session(self, key: str, m: object):
        s = self._sessions.get(key)
        if s is None:
            import onnxruntime as ort

            s = self._sessions[key] = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return s

    def _host(self, key: str, m: object, feeds: dict) -> list[np.ndarray]:
        s = self._session(key, m)
        typed = {i.name: np.asarray(feeds[i.name]).astype(_np_type(i.type)) for i in s.get_inputs()}
        return s.run(None, typed)

    def before(self, x: np.ndarray) -> np.ndarray:
        """The host's part up to the first crossbar layer's input."""
        if self.pre is None:
            return np.asarray(x, float)
        return np.asarray(self._host("pre", self.pre, {self.inputs[0]: x})[0], float)

    def forward(
        self,
        x: np.ndarray,
        stage: Callable[[int, int, np.ndarray], np.ndarray],
        first: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """The model's outputs for inputs x, the crossbar layers run by stage(first, last, rows): (samples,
        inputs of layer first) -> (samples, outputs of layer last), activations applied. first: before(x)
        already computed."""
        t = self.before(x) if first is None else first
        for lo, hi in self.stages:
            if lo:
                g = self.glue[lo - 1]
                if g is not None:
                    t = np.asarray(self._host(f"glue{lo - 1}", g, {self.ops[lo - 1].output: t})[0], float)
            op = self.ops[lo]
            if op.conv is not None:
                rows, out = op.conv.patches(t)
                y = stage(lo, hi, rows)
                t = y.reshape(t.shape[0], int(np.prod(out)), -1).transpose(0, 2, 1).reshape(t.shape[0], -1, *out)
            else:
                a = t.T if op.trans_input else t
                y = stage(lo, hi, a.reshape(-1, a.shape[-1]))
                t = y.reshape(*a.shape[:-1], y.shape[-1])
        if self.post is None:
            return [t]
        feeds = {self.ops[-1].output: t, **{n: x for n in self.post_inputs}}
        return [np.asarray(o) for o in self._host("post", self.post, feeds)]

    def digital(self, x: np.ndarray) -> list[np.ndarray]:
        """The partitioned model computed digitally: what the original model returns (a test of the cut)."""

        return self.forward(x, lambda lo, hi, a: forward(self.layers[lo : hi + 1], a))

    def serialized(self) -> bytes:
        return self.model.SerializeToString()


def _np_type(ort_type: str) -> type:
    return {
        "tensor(float)": np.float32,
        "tensor(double)": np.float64,
        "tensor(int64)": np.int64,
        "tensor(int32)": np.int32,
    }.get(ort_type, np.float32)


def _dims(value_info) -> list:
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def load_model(path_or_model):
    import onnx

    if not isinstance(path_or_model, bytes | str | Path):
        return path_or_model
    try:
        if isinstance(path_or_model, bytes):
            return onnx.load_from_string(path_or_model)
        return onnx.load(str(path_or_model))
    except Exception as e:  # protobuf raises its own DecodeError
        what = "the model bytes" if isinstance(path_or_model, bytes) else path_or_model
        raise DeployError(f"{what}: not a readable ONNX model: {e}") from e


def _fold(node, vals: list[np.ndarray], attrs: dict) -> np.ndarray:
    from onnx import helper

    op, a = node.op_type, vals[0]
    if op == "Identity":
        return a
    if op == "Transpose":
        return np.transpose(a, attrs.get("perm"))
    if op == "Cast":
        return a.astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))
    if op == "Reshape":
        shape = [a.shape[i] if s == 0 else s for i, s in enumerate(vals[1].astype(int))]
        return a.reshape(shape)
    if op == "Flatten":
        ax = attrs.get("axis", 1)
        return a.reshape(int(np.prod(a.shape[:ax])), -1)
    axes = attrs.get("axes", list(vals[1]) if len(vals) > 1 else None)
    if op == "Squeeze":
        return np.squeeze(a, axis=tuple(axes) if axes is not None else None)
    return np.expand_dims(a, axis=tuple(axes))  # Unsqueeze


def _where(node) -> str:
    return f"{node.op_type} node {node.name!r}" if node.name else f"{node.op_type} node (output {node.output[0]!r})"


def partition(path_or_model) -> Partition:
    """Cut a model into host sub-models and crossbar layers; refuse what cannot map, naming the node."""
    import onnx
    from onnx import helper, numpy_helper

    if isinstance(path_or_model, Partition):
        return path_or_model
    model = load_model(path_or_model)
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as e:  # noqa: BLE001  (onnx raises several kinds)
        raise DeployError(f"ONNX shape inference failed on the model: {e}") from e
    g = model.graph
    nodes = list(g.node)  # one wrapper per node, so identities hold (protobuf makes new ones per access)
    consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    attrs_of = {id(n): {a.name: helper.get_attribute_value(a) for a in n.attribute} for n in nodes}
    for n in nodes:
        at = attrs_of[id(n)]
        if n.op_type == "Constant" and "value" in at:
            consts[n.output[0]] = numpy_helper.to_array(at["value"])
        elif n.op_type in FOLD and n.input and all(i in consts for i in n.input if i):
            consts[n.output[0]] = _fold(n, [consts[i] for i in n.input if i], at)
    consumers: dict[str, list] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    graph_outputs = {o.name for o in g.output}
    producer = {o: n for n in nodes for o in n.output}

    def only_consumer(t: str):
        c = consumers.get(t, [])
        return c[0] if len(c) == 1 and t not in graph_outputs else None

    layers: list[Layer] = []
    ops: list[MatrixOp] = []
    taken: set[int] = set()
    for n in nodes:
        if id(n) in taken or n.op_type not in (*DENSE, "Conv") or n.output[0] in consts:
            continue
        at = attrs_of[id(n)]
        x, w_name = n.input[0], n.input[1]
        if x in consts and n.op_type == "MatMul" and w_name not in consts:
            raise DeployError(
                f"{_where(n)}: the constant is its first operand (x @ W expected, got W @ x): transpose the "
                "product in the model, or run it on the host"
            )
        if w_name not in consts:
            src = producer.get(w_name)
            made = f"computed at run time by {_where(src)}" if src else f"the model input {w_name!r}"
            raise DeployError(
                f"{_where(n)}: its weights are {made}; a crossbar holds fixed weights. Make them an initializer "
                "(or a Constant), or run this product on the host"
            )
        w = np.asarray(consts[w_name], float)
        op = MatrixOp(x, n.output[0], [n.name or n.op_type])
        if n.op_type == "Conv":
            if at.get("group", 1) != 1:
                raise DeployError(f"{_where(n)}: group = {at['group']}; memctl maps Conv with group 1 only")
            d = w.ndim - 2
            if d not in (1, 2):
                raise DeployError(f"{_where(n)}: {d}-D convolution; memctl maps 1-D and 2-D Conv")
            if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
                raise DeployError(f"{_where(n)}: auto_pad {at['auto_pad']!r}; give explicit pads in the model")
            kernel = tuple(w.shape[2:])
            op.conv = ConvShape(
                kernel,
                tuple(at.get("strides", [1] * d)),
                tuple(at.get("pads", [0] * 2 * d)),
                tuple(at.get("dilations", [1] * d)),
                w.shape[1],
            )
            weight = w.reshape(w.shape[0], -1)
            bias = np.asarray(consts[n.input[2]], float).reshape(-1) if len(n.input) > 2 and n.input[2] else None
        elif n.op_type == "Gemm":
            if w.ndim != 2:
                raise DeployError(f"{_where(n)}: weights of shape {w.shape}; Gemm takes a matrix")
            weight = (w if at.get("transB", 0) else w.T) * at.get("alpha", 1.0)
            op.trans_input = bool(at.get("transA", 0))
            c = n.input[2] if len(n.input) > 2 and n.input[2] else None
            if c is not None and c not in consts:
                raise DeployError(f"{_where(n)}: its C (bias) input is computed at run time; make it a constant")
            bias = None if c is None else np.broadcast_to(consts[c] * at.get("beta", 1.0), (weight.shape[0],))
        else:
            if w.ndim != 2:
                raise DeployError(f"{_where(n)}: weights of shape {w.shape}; the crossbar holds a matrix")
            weight, bias = w.T, None
        bias = np.zeros(weight.shape[0]) if bias is None else np.asarray(bias, float).copy()
        layer = Layer(np.asarray(weight, float), bias, None)
        taken.add(id(n))
        nxt = only_consumer(op.output)
        if nxt is not None and nxt.op_type == "Add":
            other = nxt.input[1] if nxt.input[0] == op.output else nxt.input[0]
            b = consts.get(other)
            if b is not None and _bias_fits(b, weight.shape[0], op.conv):
                layer.bias = layer.bias + np.asarray(b, float).reshape(-1)
                op.output = nxt.output[0]
                op.nodes.append(nxt.name or "Add")
                taken.add(id(nxt))
                nxt = only_consumer(op.output)
        if nxt is not None and (
            nxt.op_type in FIRMWARE_ACTIVATIONS
            or (nxt.op_type == "Softmax" and op.conv is None and attrs_of[id(nxt)].get("axis", -1) in (-1, 1))
        ):
            layer.activation = nxt.op_type
            op.output = nxt.output[0]
            op.nodes.append(nxt.name or nxt.op_type)
            taken.add(id(nxt))
        layers.append(layer)
        ops.append(op)
    if not ops:
        raise DeployError("no MatMul, Gemm or Conv with constant weights in the model: nothing to map onto crossbars")
    glue = [_between(ops[k], ops[k + 1], producer, consts) for k in range(len(ops) - 1)]
    check_layers(layers, [True] + [a.conv is None and b.conv is None for a, b in zip(ops, ops[1:], strict=False)])
    for k, op in enumerate(ops[:-1]):  # nothing else reads a hidden layer's output
        on_path = {id(n) for n in glue[k] or ()}
        for c in consumers.get(op.output, []):
            if id(c) not in taken and id(c) not in on_path:
                raise DeployError(
                    f"{_where(c)} reads the output of crossbar layer {k} ({op.output!r}) outside the chain of "
                    "matrix products (a skip connection): memctl deploys a chain; run this model on the host"
                )
    inputs = [i.name for i in g.input if i.name not in consts]
    extractor = onnx.utils.Extractor(model)
    pre = None if ops[0].input in inputs else extractor.extract_model(inputs, [ops[0].input])
    cut = [
        None if glue_nodes is None else extractor.extract_model([ops[k].output], [ops[k + 1].input])
        for k, glue_nodes in enumerate(glue)
    ]
    outputs = [o.name for o in g.output]
    post, post_inputs = None, []
    if outputs != [ops[-1].output]:
        after = {o: _ancestors(o, ops[-1].output, producer, consts) for o in outputs}
        read = set(outputs) | {i for nodes in after.values() for n in nodes for i in n.input}
        post_inputs = [i for i in inputs if i in read]  # graph inputs the host's part after reads too
        for o, nodes in after.items():
            _check_after(o, nodes, ops)
        post = extractor.extract_model([ops[-1].output, *post_inputs], outputs)
    return Partition(model, layers, ops, pre, cut, post, inputs, outputs, post_inputs)


def _bias_fits(b: np.ndarray, n: int, conv: ConvShape | None) -> bool:
    """An Add of b is this layer's bias: one value per output, along the output axis (channels for Conv)."""
    if b.size != n:
        return False
    if conv is None:
        return b.ndim <= 1 or b.shape[-1] == n
    d = len(conv.kernel)
    return b.ndim <= 1 or (b.ndim >= d + 1 and b.shape[-(d + 1)] == n)


def _ancestors(t: str, stop: str, producer: dict, consts: dict) -> list:
    """The nodes that compute t from stop (stop excluded), nearest first; constants are leaves."""
    out, todo, seen = [], [t], set()
    while todo:
        u = todo.pop()
        if u == stop or u in consts or u in seen or u not in producer:
            continue
        seen.add(u)
        n = producer[u]
        out.append(n)
        todo.extend(i for i in n.input if i)
    return out


def _between(a: MatrixOp, b: MatrixOp, producer: dict, consts: dict) -> list | None:
    """The host nodes from a's output to b's input (None: b reads it directly); refused unless they are all
    value-bounded reshaping/pooling fed by a alone."""
    if b.input == a.output:
        return None
    nodes = _ancestors(b.input, a.output, producer, consts)
    for n in nodes:
        if n.op_type not in GLUE:
            raise DeployError(
                f"{_where(n)} sits between crossbar layers ({a.nodes[0]!r} -> {b.nodes[0]!r}) and the firmware "
                f"cannot run {n.op_type}: move it before the first or after the last matrix product, fold it into "
                "the weights (e.g. BatchNormalization into the Conv before it), or run the model on the host "
                "(a round trip per layer)"
            )
        for i in n.input:
            if i and i != a.output and i not in consts and i not in producer:
                raise DeployError(
                    f"{_where(n)} between crossbar layers also reads {i!r}: memctl deploys a chain of layers"
                )
    reached = {i for n in nodes for i in n.input}
    if a.output not in reached:
        raise DeployError(
            f"crossbar layers {a.nodes[0]!r} and {b.nodes[0]!r} are not one after the other (parallel branches): "
            "memctl deploys a chain of layers"
        )
    return nodes


def _check_after(output: str, nodes: list, ops: list[MatrixOp]) -> None:
    """A graph output computed (by nodes) from a hidden layer, not the last, cannot be delivered."""
    hidden = {op.output: k for k, op in enumerate(ops[:-1])}
    for n in nodes:
        for i in n.input:
            if i in hidden:
                raise DeployError(
                    f"output {output!r} reads crossbar layer {hidden[i]}'s output {i!r} through {_where(n)}: "
                    "memctl delivers the outputs computed from the last crossbar layer"
                )
