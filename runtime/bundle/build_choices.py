"""The choices `skyvoice build` offers, in one torch-free place: the CLI lists them without importing export/
(torch), export/build.py validates against them, scripts/bench.py builds with them."""

from __future__ import annotations

from typing import Final

PRECISIONS: Final = ("fp32", "fp16", "int8", "auto")
TARGETS: Final = ("jetson", "cpu")  # jetson: every graph TensorRT-loadable; cpu: ONNX Runtime's CPU INT8 forms allowed
# The INT8 forms of both GPT graphs on a `cpu` bundle that can be named (`auto` times them on the build machine):
# block-wise `int8_block` was faster with VNNI, `int8_dynamic` on AVX2-only x86; `int8_column` runs the prefill as
# integer GEMMs and the decode step as `int8_block` does, over one set of per-column weights.
GPT_CPU_FORMS: Final = ("int8_block", "int8_dynamic", "int8_column")
# The INT8 forms of the SoVITS decoder on a `cpu` bundle that can be named: `int8_cpu` (uint8 QLinearConv) and
# `int8_cpu_residual` (its ResBlock residual adds in uint8 too: faster, further from FP32).
DECODER_CPU_FORMS: Final = ("int8_cpu", "int8_cpu_residual")
