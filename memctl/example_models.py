"""Example models for trying memctl without a training framework (scikit-learn only: the [train] extra)."""

from __future__ import annotations

import warnings

import numpy as np

from memctl.onnx_graph import ConvShape


def digits_cnn(x: np.ndarray, y: np.ndarray):
    """A small CNN on scikit-learn's 8x8 digits (x: (N, 64) pixels 0..16, y: labels) as torch.onnx.export
    writes one: Div normalization, Conv(1 -> 8, 3x3, stride 2, pad 1), Relu, Flatten, Gemm(transB=1). The
    filters are the leading principal components of 3x3 patches; the classifier is fitted on their features."""
    from onnx import TensorProto, helper, numpy_helper
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    geo = ConvShape((3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1)
    imgs = x.reshape(-1, 1, 8, 8) / 16
    patches, _ = geo.patches(imgs[:300])
    pca = PCA(8, random_state=0).fit(patches)
    w = pca.components_.astype(np.float32) * 2
    b = (-(pca.mean_ @ w.T)).astype(np.float32)
    rows, out = geo.patches(imgs)
    feats = np.maximum(rows @ w.T + b, 0).reshape(len(imgs), -1, 8).transpose(0, 2, 1).reshape(len(imgs), -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr = LogisticRegression(max_iter=2000, C=0.5).fit(feats, y)
    inits = [
        numpy_helper.from_array(np.array(16, np.float32), "c16"),
        numpy_helper.from_array(w.reshape(8, 1, 3, 3), "conv.weight"),
        numpy_helper.from_array(b, "conv.bias"),
        numpy_helper.from_array(lr.coef_.astype(np.float32), "fc.weight"),
        numpy_helper.from_array(lr.intercept_.astype(np.float32), "fc.bias"),
    ]
    nodes = [
        helper.make_node("Div", ["input", "c16"], ["scaled"], name="/Div"),
        helper.make_node(
            "Conv", ["scaled", "conv.weight", "conv.bias"], ["c"], name="/conv/Conv", strides=[2, 2], pads=[1] * 4
        ),
        helper.make_node("Relu", ["c"], ["r"], name="/relu/Relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="/flatten/Flatten"),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], name="/fc/Gemm", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
