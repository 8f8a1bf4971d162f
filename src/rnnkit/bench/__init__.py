"""Benchmark: rnnkit against PyTorch and onnxruntime on the same machine (``rnnkit bench``)."""
