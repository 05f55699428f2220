"""Synthesis: the GPT loop and SoVITS decoder over a GraphRunner (ONNX Runtime or TensorRT)."""
