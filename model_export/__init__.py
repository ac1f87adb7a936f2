"""Predictor training, int8 quantization and export (ONNX, TFLite, firmware blob).

The pipeline lands with the predictor issue; this package is where it lives.
"""
