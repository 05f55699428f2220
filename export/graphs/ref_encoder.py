"""`ref_encoder.onnx`: reference linear spectrogram [1, 1025, Tr] → speaker/style vector ge [1, gin, 1]."""

from __future__ import annotations

import logging
import os
from typing import Final

import numpy as np
import torch
from torch import Tensor, nn

from export.graphs.tracing import trace_to_onnx
from export.graphs.spec import GraphSpec
from export.reference.sovits import SynthesizerV2
from export.validate import check_parity

_LOGGER = logging.getLogger(__name__)

SPEC: Final = GraphSpec(
    name="ref_encoder",
    file="graphs/ref_encoder.onnx",
    inputs=("spectrogram",),
    outputs=("ge",),
    dynamic_axes={"spectrogram": {2: "spec_frames"}},
    atol=1e-4,
    rtol=1e-3,
)

SPEC_BINS: Final = 1025  # n_fft 2048 // 2 + 1; the graph reads the first ref_enc_bins (704 in v2)
EXPORT_FRAMES: Final = 37
VALIDATE_FRAMES: Final = 163


class RefEncoderGraph(nn.Module):
    def __init__(self, model: SynthesizerV2) -> None:
        super().__init__()
        self.model = model

    def forward(self, spectrogram: Tensor) -> Tensor:
        return self.model.reference_ge(spectrogram)


def random_inputs(frames: int, seed: int) -> dict[str, np.ndarray]:
    """Non-negative magnitudes with a speech-like spread (a few large, many small values)."""
    rng = np.random.default_rng(seed)
    return {"spectrogram": np.abs(rng.standard_normal((1, SPEC_BINS, frames)) ** 3).astype(np.float32)}


def export_graph(model: SynthesizerV2, out_path: str | os.PathLike) -> None:
    model = model.eval()
    trace_to_onnx(RefEncoderGraph(model), SPEC, random_inputs(EXPORT_FRAMES, seed=0), out_path)
    _LOGGER.info("graph exported name=%s path=%s", SPEC.name, out_path)


def validate_graph(model: SynthesizerV2, onnx_path: str | os.PathLike, seed: int) -> dict:
    """ORT vs torch on a spectrogram length unlike the export dummy; returns `check_parity`'s per-output diffs."""
    from runtime.synth.runner import OrtRunner

    inputs = random_inputs(VALIDATE_FRAMES, seed)
    with torch.no_grad():
        expected = RefEncoderGraph(model.eval())(torch.from_numpy(inputs["spectrogram"])).numpy()
    actual = OrtRunner(onnx_path, providers=["CPUExecutionProvider"]).run(inputs)
    return check_parity(SPEC, {"ge": expected}, actual)
