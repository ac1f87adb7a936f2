"""ONNX export of the predictor: a float reference model and an int8 QDQ
model (QuantizeLinear / DequantizeLinear around Gemm + Relu) whose quantization
parameters are exactly those of the firmware blob. Checked with onnxruntime.

Inputs are the model's raw features (float32: 7 for paper 004's feature set,
4 for the inverse model); the graph normalizes them itself
((x - mean) / std), so every runtime sees the same input as the board.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from memctl.export.quantize import QModel
from memctl.export.train import MLP

OPSET = 19


def _normalize(nodes: list, inits: list, mean: np.ndarray, std: np.ndarray) -> str:
    inits += [
        numpy_helper.from_array(mean.astype(np.float32), "mean"),
        numpy_helper.from_array(np.where(std > 0, std, np.inf).astype(np.float32), "std"),
    ]
    nodes += [
        helper.make_node("Sub", ["features", "mean"], ["centered"]),
        helper.make_node("Div", ["centered", "std"], ["x0"]),
    ]
    return "x0"


def _model(nodes: list, inits: list, outputs: list, name: str, n_features: int) -> onnx.ModelProto:
    features = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", n_features])
    graph = helper.make_graph(nodes, name, [features], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="memctl")
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def float_model(m: MLP) -> onnx.ModelProto:
    nodes: list = []
    inits: list = []
    x = _normalize(nodes, inits, m.mean, m.std)
    for k, (w, b) in enumerate(zip(m.weights, m.biases, strict=True)):
        inits += [
            numpy_helper.from_array(w.astype(np.float32), f"w{k}"),
            numpy_helper.from_array(b.astype(np.float32), f"b{k}"),
        ]
        y = f"h{k}"
        nodes.append(helper.make_node("Gemm", [x, f"w{k}", f"b{k}"], [y], transB=1))
        if k < len(m.weights) - 1:
            nodes.append(helper.make_node("Relu", [y], [f"r{k}"]))
            y = f"r{k}"
        x = y
    nodes.append(helper.make_node("Identity", [x], ["increment"]))
    out = helper.make_tensor_value_info("increment", TensorProto.FLOAT, ["batch", len(m.biases[-1])])
    return _model(nodes, inits, [out], "memctl_predictor_float", len(m.mean))


def qdq_model(q: QModel) -> onnx.ModelProto:
    """int8 QDQ graph; outputs the dequantized increment and the int8 code."""
    nodes: list = []
    inits: list = []
    x = _normalize(nodes, inits, q.mean, q.std)

    def qparams(name: str, scale: float, zp: int) -> tuple[str, str]:
        inits.extend(
            [
                numpy_helper.from_array(np.array(scale, np.float32), f"{name}_s"),
                numpy_helper.from_array(np.array(zp, np.int8), f"{name}_z"),
            ]
        )
        return f"{name}_s", f"{name}_z"

    s, z = qparams("in", q.s_in, q.zp_in)
    nodes.append(helper.make_node("QuantizeLinear", [x, s, z], ["q_in"]))
    xq, s_prev = "q_in", q.s_in
    for k, layer in enumerate(q.layers):
        nodes.append(helper.make_node("DequantizeLinear", [xq, s, z], [f"dq{k}"]))
        inits += [
            numpy_helper.from_array(layer.w.astype(np.int8), f"wq{k}"),
            numpy_helper.from_array(layer.s_w.astype(np.float32), f"ws{k}"),
            numpy_helper.from_array(np.zeros(len(layer.s_w), np.int8), f"wz{k}"),
            numpy_helper.from_array(layer.b.astype(np.int32), f"bq{k}"),
            numpy_helper.from_array((s_prev * layer.s_w).astype(np.float32), f"bs{k}"),
            numpy_helper.from_array(np.zeros(len(layer.s_w), np.int32), f"bz{k}"),
        ]
        nodes += [
            helper.make_node("DequantizeLinear", [f"wq{k}", f"ws{k}", f"wz{k}"], [f"w{k}"], axis=0),
            helper.make_node("DequantizeLinear", [f"bq{k}", f"bs{k}", f"bz{k}"], [f"b{k}"], axis=0),
            helper.make_node("Gemm", [f"dq{k}", f"w{k}", f"b{k}"], [f"h{k}"], transB=1),
        ]
        y = f"h{k}"
        if layer.relu:
            nodes.append(helper.make_node("Relu", [y], [f"r{k}"]))
            y = f"r{k}"
        s, z = qparams(f"out{k}", layer.s_out, layer.zp_out)
        nodes.append(helper.make_node("QuantizeLinear", [y, s, z], [f"q{k}"]))
        xq, s_prev = f"q{k}", layer.s_out
    nodes += [
        helper.make_node("Identity", [xq], ["code"]),
        helper.make_node("DequantizeLinear", [xq, s, z], ["increment"]),
    ]
    n_out = len(q.layers[-1].b)
    outs = [
        helper.make_tensor_value_info("increment", TensorProto.FLOAT, ["batch", n_out]),
        helper.make_tensor_value_info("code", TensorProto.INT8, ["batch", n_out]),
    ]
    return _model(nodes, inits, outs, "memctl_predictor_int8_qdq", len(q.mean))


def run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"features": x.astype(np.float32)})
