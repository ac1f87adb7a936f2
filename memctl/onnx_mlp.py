"""MLPs in and out of ONNX: the layer list memctl deploys and trains."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DeployError(ValueError):
    """The model cannot be deployed as asked; nothing was programmed."""


@dataclass
class Layer:
    weight: np.ndarray  # outputs x inputs
    bias: np.ndarray  # outputs
    activation: str | None  # Relu, Tanh, Sigmoid, Softmax or None


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


ACTIVATIONS = {
    "Relu": lambda z: np.maximum(z, 0),
    "Tanh": np.tanh,
    "Sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "Softmax": _softmax,
    None: lambda z: z,
}


def forward(layers: list[Layer], x: np.ndarray) -> np.ndarray:
    """The digital reference: what the deployed network should compute."""
    a = np.atleast_2d(np.asarray(x, float))
    for layer in layers:
        a = ACTIVATIONS[layer.activation](a @ layer.weight.T + layer.bias)
    return a


def read_onnx(path_or_model) -> list[Layer]:
    """An MLP from ONNX: Gemm, or MatMul + Add, each optionally followed by
    Relu / Tanh / Sigmoid / Softmax. Anything else is refused by name."""
    import onnx
    from onnx import numpy_helper

    if isinstance(path_or_model, str | Path):
        try:
            model = onnx.load(str(path_or_model))
        except Exception as e:  # protobuf raises its own DecodeError
            raise DeployError(f"{path_or_model}: not a readable ONNX model: {e}") from e
    else:
        model = path_or_model
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
    check_layers(layers)
    return layers


def check_layers(layers: list[Layer], chained: list[bool] | None = None) -> None:
    """chained[k]: layer k reads layer k - 1's outputs as they are (not through a Conv's patches)."""
    for k, layer in enumerate(layers):
        if layer.weight.ndim != 2 or layer.bias.shape != (layer.weight.shape[0],):
            raise DeployError(f"layer {k}: weight {layer.weight.shape} and bias {layer.bias.shape} do not match")
        if not (np.all(np.isfinite(layer.weight)) and np.all(np.isfinite(layer.bias))):
            raise DeployError(f"layer {k}: weights or bias contain NaN or inf")
        if k and (chained is None or chained[k]) and layer.weight.shape[1] != layers[k - 1].weight.shape[0]:
            raise DeployError(
                f"layer {k}: {layer.weight.shape[1]} inputs, previous layer has {layers[k - 1].weight.shape[0]} outputs"
            )


def to_onnx(layers: list[Layer], name: str = "mlp"):
    """An ONNX model (Gemm + activation per layer) memctl deploy reads back."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, x = [], [], "x"
    for k, layer in enumerate(layers):
        inits += [
            numpy_helper.from_array(layer.weight.astype(np.float32), f"w{k}"),
            numpy_helper.from_array(layer.bias.astype(np.float32), f"b{k}"),
        ]
        nodes.append(helper.make_node("Gemm", [x, f"w{k}", f"b{k}"], [f"h{k}"], transB=1, name=f"gemm{k}"))
        x = f"h{k}"
        if layer.activation:
            nodes.append(helper.make_node(layer.activation, [x], [f"a{k}"], name=f"act{k}"))
            x = f"a{k}"
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, layers[0].weight.shape[1]])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [None, layers[-1].weight.shape[0]])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
