"""Predictor training, int8 quantization and export (ONNX, TFLite, firmware blob).

Host-only: the board runs what this package writes (memctl_shared.predictor_blob).
"""
