"""TFLite export of the int8 predictor: three FULLY_CONNECTED ops with
per-channel int8 weights, int32 bias and the blob's exact scales and zero
points, written as a flatbuffer through the `tflite` schema package (no
TensorFlow). Input and output are int8 tensors: the features are quantized
by the caller exactly as the firmware does (QModel.quantize_input).
"""

from __future__ import annotations

import flatbuffers
import numpy as np
import tflite

from memctl.export.quantize import QModel

FC_VERSION = 5  # int8 FULLY_CONNECTED with per-channel weights


def _ints(b: flatbuffers.Builder, start, values, prepend) -> int:
    start(b, len(values))
    for v in reversed(list(values)):
        prepend(v)
    return b.EndVector()


def _quant(b: flatbuffers.Builder, scales, zero_points, dim: int = 0) -> int:
    sc = b.CreateNumpyVector(np.asarray(scales, np.float32))
    zp = b.CreateNumpyVector(np.asarray(zero_points, np.int64))
    tflite.QuantizationParametersStart(b)
    tflite.QuantizationParametersAddScale(b, sc)
    tflite.QuantizationParametersAddZeroPoint(b, zp)
    tflite.QuantizationParametersAddQuantizedDimension(b, dim)
    return tflite.QuantizationParametersEnd(b)


def to_tflite(q: QModel) -> bytes:
    b = flatbuffers.Builder(4096)
    # Buffers: 0 is the empty sentinel, then weights and biases of each layer.
    datas = [b""]
    tensors = []  # (name, shape, type, buffer index, quantization args)
    s_prev, zp_prev = q.s_in, q.zp_in
    tensors.append(("features_q", [1, len(q.mean)], tflite.TensorType.INT8, 0, ([s_prev], [zp_prev])))
    ops = []
    for k, layer in enumerate(q.layers):
        n_out, n_in = layer.w.shape
        datas.append(layer.w.astype(np.int8).tobytes())
        w_idx = len(tensors)
        tensors.append((f"w{k}", [n_out, n_in], tflite.TensorType.INT8, len(datas) - 1, (layer.s_w, [0] * n_out)))
        datas.append(layer.b.astype("<i4").tobytes())
        b_idx = len(tensors)
        tensors.append(
            (
                f"b{k}",
                [n_out],
                tflite.TensorType.INT32,
                len(datas) - 1,
                (np.float32(s_prev) * np.asarray(layer.s_w, np.float32), [0] * n_out),
            )
        )
        out_idx = len(tensors)
        tensors.append((f"h{k}", [1, n_out], tflite.TensorType.INT8, 0, ([layer.s_out], [layer.zp_out])))
        ops.append(([out_idx - 3 if k == 0 else out_idx - 3, w_idx, b_idx], [out_idx], layer.relu))
        s_prev, zp_prev = layer.s_out, layer.zp_out
    # Fix op inputs: each op reads the previous op's output (or the model input).
    fixed, prev = [], 0
    for inputs, outputs, relu in ops:
        fixed.append(([prev, inputs[1], inputs[2]], outputs, relu))
        prev = outputs[0]

    buf_offs = []
    for data in datas:
        vec = b.CreateNumpyVector(np.frombuffer(data, np.uint8)) if data else None
        tflite.BufferStart(b)
        if vec is not None:
            tflite.BufferAddData(b, vec)
        buf_offs.append(tflite.BufferEnd(b))
    ten_offs = []
    for name, shape, ttype, buf, (scales, zps) in tensors:
        nm = b.CreateString(name)
        shp = b.CreateNumpyVector(np.asarray(shape, np.int32))
        qp = _quant(b, scales, zps)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shp)
        tflite.TensorAddType(b, ttype)
        tflite.TensorAddBuffer(b, buf)
        tflite.TensorAddName(b, nm)
        tflite.TensorAddQuantization(b, qp)
        ten_offs.append(tflite.TensorEnd(b))
    op_offs = []
    for inputs, outputs, relu in fixed:
        tflite.FullyConnectedOptionsStart(b)
        act = tflite.ActivationFunctionType.RELU if relu else tflite.ActivationFunctionType.NONE
        tflite.FullyConnectedOptionsAddFusedActivationFunction(b, act)
        opts = tflite.FullyConnectedOptionsEnd(b)
        ins = b.CreateNumpyVector(np.asarray(inputs, np.int32))
        outs = b.CreateNumpyVector(np.asarray(outputs, np.int32))
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, 0)
        tflite.OperatorAddInputs(b, ins)
        tflite.OperatorAddOutputs(b, outs)
        tflite.OperatorAddBuiltinOptionsType(b, tflite.BuiltinOptions.FullyConnectedOptions)
        tflite.OperatorAddBuiltinOptions(b, opts)
        op_offs.append(tflite.OperatorEnd(b))
    tens_vec = _ints(b, lambda bb, n: tflite.SubGraphStartTensorsVector(bb, n), ten_offs, b.PrependUOffsetTRelative)
    ops_vec = _ints(b, lambda bb, n: tflite.SubGraphStartOperatorsVector(bb, n), op_offs, b.PrependUOffsetTRelative)
    in_vec = b.CreateNumpyVector(np.asarray([0], np.int32))
    out_vec = b.CreateNumpyVector(np.asarray([fixed[-1][1][0]], np.int32))
    name = b.CreateString("memctl_predictor_int8")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tens_vec)
    tflite.SubGraphAddInputs(b, in_vec)
    tflite.SubGraphAddOutputs(b, out_vec)
    tflite.SubGraphAddOperators(b, ops_vec)
    tflite.SubGraphAddName(b, name)
    sub = tflite.SubGraphEnd(b)
    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, tflite.BuiltinOperator.FULLY_CONNECTED)
    tflite.OperatorCodeAddBuiltinCode(b, tflite.BuiltinOperator.FULLY_CONNECTED)
    tflite.OperatorCodeAddVersion(b, FC_VERSION)
    code = tflite.OperatorCodeEnd(b)
    subs_vec = _ints(b, lambda bb, n: tflite.ModelStartSubgraphsVector(bb, n), [sub], b.PrependUOffsetTRelative)
    codes_vec = _ints(b, lambda bb, n: tflite.ModelStartOperatorCodesVector(bb, n), [code], b.PrependUOffsetTRelative)
    bufs_vec = _ints(b, lambda bb, n: tflite.ModelStartBuffersVector(bb, n), buf_offs, b.PrependUOffsetTRelative)
    desc = b.CreateString("memctl paper-004 pulse-increment predictor (int8)")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes_vec)
    tflite.ModelAddSubgraphs(b, subs_vec)
    tflite.ModelAddDescription(b, desc)
    tflite.ModelAddBuffers(b, bufs_vec)
    model = tflite.ModelEnd(b)
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())


def _per_row(xq: np.ndarray, step) -> np.ndarray:
    """Run a one-row interpreter over every row; step(row) -> its int8 outputs (rows x outputs)."""
    return np.array([np.asarray(step(row.reshape(1, -1).astype(np.int8))).reshape(-1) for row in xq], np.int64)


def run_litert(model: bytes, xq: np.ndarray, delegates: bool = False) -> np.ndarray:
    """int8 outputs of the LiteRT (TFLite) interpreter, row by row: its
    builtin kernels, or with the default (XNNPACK) delegate."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kind = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(model_content=model, experimental_op_resolver_type=kind)
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]

    def step(row: np.ndarray) -> np.ndarray:
        it.set_tensor(i, row)
        it.invoke()
        return it.get_tensor(o)[0].copy()

    return _per_row(xq, step)


def run_tflm(model: bytes, xq: np.ndarray) -> np.ndarray:
    """int8 outputs of the TFLite Micro Python interpreter (what MCUs run)."""
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(model)

    def step(row: np.ndarray) -> np.ndarray:
        it.set_input(row, 0)
        it.invoke()
        return it.get_output(0)[0].copy()

    return _per_row(xq, step)
