"""`prompt_encoder.onnx`: HuBERT features (50 Hz) → prompt semantic tokens (25 Hz): SoVITS `ssl_proj` + codebook.

Only `skyvoice voice add` uses it (on the workstation, beside HuBERT), so voices can be added to a bundle without the
SoVITS checkpoint; the box never runs it.
"""

from __future__ import annotations

import logging
import os
from typing import Final

import numpy as np
import torch
from torch import Tensor, nn

from export.graphs.spec import GraphSpec
from export.graphs.tracing import trace_to_onnx
from export.reference.sovits import SynthesizerV2
from export.validate import check_parity

_LOGGER = logging.getLogger(__name__)

SPEC: Final = GraphSpec(
    name="prompt_encoder",
    file="graphs/prompt_encoder.onnx",
    inputs=("ssl_features",),
    outputs=("prompt_tokens",),
    dynamic_axes={"ssl_features": {2: "ssl_frames"}, "prompt_tokens": {1: "prompt_len"}},
    atol=0.0,
    rtol=0.0,
)

EXPORT_FRAMES: Final = 40
VALIDATE_FRAMES: Final = 58


class PromptEncoderGraph(nn.Module):
    def __init__(self, model: SynthesizerV2) -> None:
        super().__init__()
        self.model = model

    def forward(self, ssl_features: Tensor) -> Tensor:
        return self.model.extract_prompt_tokens(ssl_features).unsqueeze(0)


def random_inputs(model: SynthesizerV2, frames: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"ssl_features": rng.standard_normal((1, model.dims.ssl_dim, frames)).astype(np.float32)}


def export_graph(model: SynthesizerV2, out_path: str | os.PathLike) -> None:
    trace_to_onnx(PromptEncoderGraph(model), SPEC, random_inputs(model, EXPORT_FRAMES, 0), out_path)
    _LOGGER.info("graph exported name=%s path=%s", SPEC.name, out_path)


def validate_graph(model: SynthesizerV2, onnx_path: str | os.PathLike, seed: int) -> dict:
    """Tokens must be identical: the codebook search is an argmax, so compare exactly (ties are measure-zero)."""
    from runtime.synth.runner import OrtRunner

    inputs = random_inputs(model, VALIDATE_FRAMES, seed)
    with torch.no_grad():
        expected = PromptEncoderGraph(model.eval())(torch.from_numpy(inputs["ssl_features"])).numpy()
    actual = OrtRunner(onnx_path, providers=["CPUExecutionProvider"]).run(inputs)
    return check_parity(SPEC, {"prompt_tokens": expected}, actual)
