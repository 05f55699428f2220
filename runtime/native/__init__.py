"""Native CPU kernels (plain C, loaded with ctypes; no Python API): the one-token GPT decode step (`gpt_step.c`).

`build.py` compiles them for the machine it runs on (`scripts/setup` does); `library.py` loads the result. A box
without a C compiler, or whose CPU changed since the build, runs the decode step on ONNX Runtime instead.
"""
