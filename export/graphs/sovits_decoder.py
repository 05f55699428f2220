"""`sovits_decoder.onnx`: target semantic tokens + target phones + ge + noise → 32 kHz waveform (speed in-graph)."""

from __future__ import annotations

import logging
import math
import os
from typing import Final

import numpy as np
import torch
from torch import Tensor, nn

from export.errors import ExportError
from export.graphs.tracing import trace_to_onnx
from export.graphs.spec import GraphSpec
from export.reference.sovits import SynthesizerV2
from export.reference.sovits.synthesizer import stretched_length
from export.validate import check_parity

_LOGGER = logging.getLogger(__name__)

SPEC: Final = GraphSpec(
    name="sovits_decoder",
    file="graphs/sovits_decoder.onnx",
    inputs=("semantic_tokens", "phones", "ge", "noise", "noise_scale", "speed"),
    outputs=("audio",),
    dynamic_axes={
        "semantic_tokens": {1: "token_len"},
        "phones": {1: "phone_len"},
        "noise": {2: "noise_len"},
        "audio": {2: "audio_len"},
    },
    atol=5e-4,  # waveform in [-1, 1]; 60 dB SNR on speech-level audio is an RMS error of ~3e-4
    rtol=1e-3,
)

MIN_SNR_DB: Final = 60.0
EXPORT_TOKENS: Final = 6  # dummy shapes for tracing; validation uses other lengths
EXPORT_PHONES: Final = 5
VALIDATE_CASES: Final = (  # (tokens, phones, noise_scale, speed)
    (9, 13, 0.0, 1.0),
    (11, 7, 0.5, 1.25),
    (8, 10, 0.5, 0.8),
)


def stretch_frames(y: Tensor, speed: Tensor) -> Tensor:
    """In-graph speed change: T' = T when speed == 1 else floor(T/speed)+1 (float32), linear interpolation with
    half-pixel centres as `F.interpolate(mode="linear", align_corners=False)`; exactly the identity at speed 1."""
    positions = torch.arange(y.shape[-1], device=y.device)
    length = (positions[-1:] + 1).to(torch.float32)  # [1], traced from the shape
    stretched = torch.where(speed == 1.0, length, torch.floor(length / speed) + 1.0)
    out_positions = torch.arange(stretched[0].to(torch.int64), device=y.device)
    scale = length / stretched
    source = ((out_positions.to(torch.float32) + 0.5) * scale - 0.5).clamp(min=0.0)
    left = source.floor()
    weight = (source - left).to(y.dtype)
    left_index = left.to(torch.int64)
    right_index = torch.minimum(left_index + 1, positions[-1:])
    return y.index_select(2, left_index) * (1.0 - weight) + y.index_select(2, right_index) * weight


class SovitsDecoderGraph(nn.Module):
    """Adapter from `SynthesizerV2` to the graph I/O of docs/architecture.md (weight norm folded beforehand)."""

    def __init__(self, model: SynthesizerV2) -> None:
        super().__init__()
        self.model = model

    def forward(self, semantic_tokens: Tensor, phones: Tensor, ge: Tensor, noise: Tensor, noise_scale: Tensor, speed: Tensor) -> Tensor:
        model = self.model
        y = model.enc_p.encode(model.semantic_frames(semantic_tokens), phones, ge)
        y = stretch_frames(y, speed)
        m_p, logs_p = model.enc_p.stats(y)
        frames = torch.arange(m_p.shape[-1], device=m_p.device)
        return model.synthesize_from_stats(m_p, logs_p, noise.index_select(2, frames), noise_scale, ge)


def random_inputs(model: SynthesizerV2, tokens: int, phones: int, noise_scale: float, speed: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = stretched_length(2 * tokens, float(np.float32(speed)))
    return {
        "semantic_tokens": rng.integers(0, model.dims.codebook_bins, size=(1, tokens), dtype=np.int64),
        "phones": rng.integers(0, model.dims.n_phone_symbols, size=(1, phones), dtype=np.int64),
        "ge": (0.3 * rng.standard_normal((1, model.gin_channels, 1))).astype(np.float32),
        "noise": rng.standard_normal((1, model.inter_channels, frames + 3)).astype(np.float32),
        "noise_scale": np.array([noise_scale], dtype=np.float32),
        "speed": np.array([speed], dtype=np.float32),
    }


def _prepared(model: SynthesizerV2) -> SynthesizerV2:
    model = model.eval()
    model.fold_weight_norm()
    return model


def export_graph(model: SynthesizerV2, out_path: str | os.PathLike) -> None:
    """Fold weight norm (in place, on `model`) and trace the decoder with the legacy exporter (opset 17, named
    dynamic axes). The speed branch is tensor arithmetic (Where), so the graph has no Loop/If."""
    model = _prepared(model)
    dummy = random_inputs(model, EXPORT_TOKENS, EXPORT_PHONES, 0.5, 1.0, seed=0)
    trace_to_onnx(SovitsDecoderGraph(model), SPEC, dummy, out_path)
    _LOGGER.info("graph exported name=%s path=%s", SPEC.name, out_path)


def snr_db(expected: np.ndarray, actual: np.ndarray) -> float:
    """10·log10(Σe² / Σ(a−e)²); inf when identical."""
    error = float(np.sum((actual.astype(np.float64) - expected) ** 2))
    signal = float(np.sum(expected.astype(np.float64) ** 2))
    return math.inf if error == 0.0 else 10.0 * math.log10(signal / error)


def validate_graph(model: SynthesizerV2, onnx_path: str | os.PathLike, seed: int) -> dict:
    """ORT vs the torch reference `decode` (F.interpolate speed path) on shapes unlike the export dummies, with and
    without noise and at speeds ≠ 1; returns {"audio": {max_abs, max_rel, snr_db}} (worst case). Raises ExportError
    when any case is out of the SPEC tolerance or the noise-free waveform SNR is below 60 dB. Folds weight norm in place."""
    from runtime.synth.runner import OrtRunner

    model = _prepared(model)
    runner = OrtRunner(onnx_path, providers=["CPUExecutionProvider"])
    worst = {"max_abs": 0.0, "max_rel": 0.0, "snr_db": math.inf}
    for case, (tokens, phones, noise_scale, speed) in enumerate(VALIDATE_CASES):
        inputs = random_inputs(model, tokens, phones, noise_scale, speed, seed + case)
        with torch.no_grad():
            expected = model.decode(
                torch.from_numpy(inputs["semantic_tokens"]), torch.from_numpy(inputs["phones"]), torch.from_numpy(inputs["ge"]),
                noise=torch.from_numpy(inputs["noise"]), noise_scale=noise_scale, speed=float(inputs["speed"][0]),
            ).numpy()
        actual = runner.run(inputs)["audio"]
        diffs = check_parity(SPEC, {"audio": expected}, {"audio": actual})["audio"]
        snr = snr_db(expected, actual)
        if noise_scale == 0.0 and snr < MIN_SNR_DB:
            raise ExportError(f"graph {SPEC.name}: waveform SNR {snr:.1f} dB vs the PyTorch reference is below {MIN_SNR_DB} dB")
        worst = {
            "max_abs": max(worst["max_abs"], diffs["max_abs"]),
            "max_rel": max(worst["max_rel"], diffs["max_rel"]),
            "snr_db": min(worst["snr_db"], snr),
        }
        _LOGGER.info("decoder parity tokens=%d speed=%.3g noise_scale=%.2g snr_db=%.1f", tokens, speed, noise_scale, snr)
    return {"audio": worst}
