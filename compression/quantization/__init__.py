"""Quantization: post-training INT8/INT4 with onnxruntime, QAT, and QDQ graph rewrites."""
