"""`SynthesizerV2`: the SoVITS v2 inference path (decode, reference `ge`, prompt-token extraction)."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional, Union

import torch
from torch import nn
from torch.nn import functional as F

from export.reference.sovits.attentions import Encoder
from export.reference.sovits.flow import ResidualCouplingBlock
from export.reference.sovits.generator import Generator
from export.reference.sovits.hparams import (
    FULL_SOVITS_HPARAMS,
    MRTE_HEADS,
    RELATIVE_WINDOW,
    TINY_SOVITS_HPARAMS,
    SovitsDims,
)
from export.reference.sovits.mrte import MRTE
from export.reference.sovits.quantizer import ResidualVectorQuantizer
from export.reference.sovits.ref_encoder import MelStyleEncoder
from export.reference.sovits.weight_norm import WeightNormConv1d, WeightNormConvTranspose1d, fold_weight_norm_in
from runtime.synth.sovits_decoder import FRAMES_PER_TOKEN, decoded_frames

_LOGGER = logging.getLogger(__name__)

__all__ = ["FULL_SOVITS_HPARAMS", "TINY_SOVITS_HPARAMS", "SovitsDims", "SynthesizerV2", "TextEncoder", "make_random_state_dict"]


class TextEncoder(nn.Module):
    """enc_p: SSL frames and target phones → 50 Hz features (before `proj`)."""

    def __init__(self, model: Mapping[str, Any], dims: SovitsDims) -> None:
        super().__init__()
        hidden, filt = model["hidden_channels"], model["filter_channels"]
        heads, layers, kernel = model["n_heads"], model["n_layers"], model["kernel_size"]
        self.out_channels = model["inter_channels"]
        self.ssl_proj = nn.Conv1d(dims.ssl_dim, hidden, 1)
        self.encoder_ssl = Encoder(hidden, filt, heads, layers // 2, kernel, RELATIVE_WINDOW)
        self.text_embedding = nn.Embedding(dims.n_phone_symbols, hidden)
        self.encoder_text = Encoder(hidden, filt, heads, layers, kernel, RELATIVE_WINDOW)
        self.mrte = MRTE(hidden, dims.mrte_hidden, hidden, MRTE_HEADS)
        self.encoder2 = Encoder(hidden, filt, heads, layers // 2, kernel, RELATIVE_WINDOW)
        self.proj = nn.Conv1d(hidden, 2 * self.out_channels, 1)

    def encode(self, ssl_frames: torch.Tensor, phones: torch.Tensor, ge: torch.Tensor) -> torch.Tensor:
        """ssl_frames [1, ssl_dim, T] (50 Hz), phones [1, Xt] → [1, hidden, T] (encoder2 output)."""
        y = self.encoder_ssl(self.ssl_proj(ssl_frames))
        text = self.encoder_text(self.text_embedding(phones).transpose(1, 2))
        return self.encoder2(self.mrte(y, text, ge))

    def stats(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[1, hidden, T'] → mean and log-std, each [1, inter, T']."""
        stats = self.proj(y)
        return stats[:, : self.out_channels], stats[:, self.out_channels :]


def stretched_length(frames: int, speed: float) -> int:
    """Length after the speed change: T when speed == 1, else floor(T / speed) + 1.

    Official code divides in float64; the graph (and so this reference) divides in float32, the type of its `speed`
    input. The two agree except when T/speed lands within float32 rounding of an integer (e.g. 16/0.8: float32 gives
    20 like float64 on the decimal 0.8, whereas float64 on float32(0.8) gives 19.99…).
    """
    if frames % FRAMES_PER_TOKEN:
        raise ValueError(f"frames={frames} is not a whole number of semantic tokens")
    return decoded_frames(frames // FRAMES_PER_TOKEN, speed)


class SynthesizerV2(nn.Module):
    """SoVITS v2 with the official parameter names (every s2 v2 key except the training-only `enc_q.*`)."""

    def __init__(self, hparams: Mapping[str, Any], dims: Optional[SovitsDims] = None) -> None:
        super().__init__()
        model = hparams["model"]
        data = hparams["data"]
        self.dims = dims or SovitsDims.defaults_for(hparams)
        self.sample_rate_hz = int(data["sampling_rate"])
        self.hop_length = int(data["hop_length"])
        self.inter_channels = int(model["inter_channels"])
        self.gin_channels = int(model["gin_channels"])
        if model.get("resblock", "1") != "1":
            raise ValueError(f"resblock={model['resblock']!r} is not supported; SoVITS v2 uses resblock '1'")
        upsample = 1
        for rate in model["upsample_rates"]:
            upsample *= int(rate)
        if upsample != self.hop_length:
            raise ValueError(f"upsample_rates product {upsample} differs from hop_length {self.hop_length}")
        self.enc_p = TextEncoder(model, self.dims)
        self.dec = Generator(
            self.inter_channels, model["resblock_kernel_sizes"], model["resblock_dilation_sizes"], model["upsample_rates"],
            model["upsample_initial_channel"], model["upsample_kernel_sizes"], self.gin_channels,
        )
        self.flow = ResidualCouplingBlock(self.inter_channels, model["hidden_channels"], 5, 1, 4, gin_channels=self.gin_channels)
        self.ref_enc = MelStyleEncoder(self.dims.ref_enc_bins, self.gin_channels, self.dims.ref_enc_hidden)
        self.ssl_proj = nn.Conv1d(self.dims.ssl_dim, self.dims.ssl_dim, 2, stride=2)
        self.quantizer = ResidualVectorQuantizer(self.dims.ssl_dim, self.dims.codebook_bins, n_q=1)

    @classmethod
    def from_state_dict(cls, hparams: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> "SynthesizerV2":
        """Build with dims read from the tensor shapes, load strictly (no `enc_q.*`), cast to float32, eval mode."""
        weights = {k: v.float() for k, v in state_dict.items() if not k.startswith("enc_q.")}
        model = cls(hparams, SovitsDims.from_state_dict(weights))
        model.load_state_dict(weights, strict=True)
        return model.eval()

    # ---- the pieces the ONNX graphs reuse -------------------------------------------------------------------------
    def semantic_frames(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [1, N] → codebook vectors at 50 Hz [1, ssl_dim, 2N] (each 25 Hz token duplicated: nearest ×2)."""
        doubled = codes.unsqueeze(-1).repeat(1, 1, 2).flatten(1)
        return self.quantizer.decode(doubled.unsqueeze(0))

    def synthesize_from_stats(
        self, m_p: torch.Tensor, logs_p: torch.Tensor, noise: torch.Tensor, noise_scale: Union[float, torch.Tensor], ge: torch.Tensor
    ) -> torch.Tensor:
        """z_p = m + noise·exp(logs)·noise_scale → reverse flow → Generator → audio [1, 1, hop·T']."""
        z_p = m_p + noise * torch.exp(logs_p) * noise_scale
        z = self.flow.reverse(z_p, ge)
        return self.dec(z, ge)

    # ---- public inference API -------------------------------------------------------------------------------------
    def decode(
        self,
        codes: torch.Tensor,
        phones: torch.Tensor,
        ge: torch.Tensor,
        noise: Optional[torch.Tensor] = None,
        noise_scale: float = 0.5,
        speed: float = 1.0,
    ) -> torch.Tensor:
        """codes [1, N] (target tokens), phones [1, Xt] (target phones), ge [1, gin, 1] → audio [1, 1, hop·T'].

        `noise` [1, inter, ≥T'] is standard normal (sliced to T'); None draws it with torch.randn.
        """
        y = self.enc_p.encode(self.semantic_frames(codes), phones, ge)
        frames = stretched_length(y.shape[-1], float(speed))
        if frames != y.shape[-1]:
            y = F.interpolate(y, size=frames, mode="linear")
        m_p, logs_p = self.enc_p.stats(y)
        if noise is None:
            noise = torch.randn_like(m_p)
        if noise.shape[-1] < frames:
            raise ValueError(f"noise has {noise.shape[-1]} frames, decode needs at least {frames}")
        return self.synthesize_from_stats(m_p, logs_p, noise[:, :, :frames], noise_scale, ge)

    def reference_ge(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """Linear-magnitude spectrogram [1, 1025, Tr] → ge [1, gin, 1]."""
        return self.ref_enc(spectrogram)

    def extract_prompt_tokens(self, ssl: torch.Tensor) -> torch.Tensor:
        """HuBERT features [1, ssl_dim, T50] → prompt tokens [T25] (ssl_proj, nearest codebook entry)."""
        return self.quantizer.encode(self.ssl_proj(ssl))[0, 0]

    def fold_weight_norm(self) -> int:
        """Turn every weight_g/weight_v pair into a plain weight (for export); returns how many convs were folded."""
        count = fold_weight_norm_in(self)
        _LOGGER.debug("weight norm folded convs=%d", count)
        return count


def make_random_state_dict(hparams: Mapping[str, Any], seed: int) -> dict[str, torch.Tensor]:
    """Random float32 weights with the official key layout (weight_g/weight_v, quantizer buffers), scaled so that
    decoding gives audible, unclipped audio."""
    generator = torch.Generator().manual_seed(seed)
    cpu_rng = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = SynthesizerV2(hparams)
    finally:
        torch.random.set_rng_state(cpu_rng)
    decoder_modules = {id(m) for m in model.dec.modules()}
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (WeightNormConv1d, WeightNormConvTranspose1d)):
                fan_in = module.weight_v.shape[1] * module.weight_v.shape[2]
                if isinstance(module, WeightNormConvTranspose1d):
                    fan_in = module.weight_v.shape[0] * module.weight_v.shape[2] // module.stride
                module.weight_v.normal_(0.0, 1.0, generator=generator)
                norm = module.weight_v.flatten(1).norm(dim=1).reshape(-1, 1, 1)
                gain = 0.5 if id(module) in decoder_modules else 0.3
                # g = ‖v‖·gain/√fan_in makes the effective weight std ≈ gain/√fan_in
                module.weight_g.copy_(norm * gain / fan_in**0.5)
                module.bias.normal_(0.0, 0.01, generator=generator)
        codebook = model.quantizer.vq.layers[0]._codebook
        codebook.embed.normal_(0.0, 1.0, generator=generator)
        codebook.embed_avg.copy_(codebook.embed)
        codebook.cluster_size.fill_(1.0)
        codebook.inited.fill_(1.0)
        _calibrate_output_level(model, generator)
    return {k: v.detach().clone().float().contiguous() for k, v in model.state_dict().items()}


def _calibrate_output_level(model: SynthesizerV2, generator: torch.Generator, target_std: float = 0.35) -> None:
    """Scale `dec.conv_post` so the pre-tanh signal has std ≈ target on a random utterance (audible, not clipped)."""
    model.eval()
    codes = torch.randint(0, model.dims.codebook_bins, (1, 12), generator=generator)
    phones = torch.randint(0, model.dims.n_phone_symbols, (1, 9), generator=generator)
    spectrogram = torch.rand(1, 1025, 40, generator=generator)
    ge = model.reference_ge(spectrogram)
    y = model.enc_p.encode(model.semantic_frames(codes), phones, ge)
    m_p, logs_p = model.enc_p.stats(y)
    z = model.flow.reverse(m_p + torch.randn(m_p.shape, generator=generator) * torch.exp(logs_p) * 0.5, ge)
    std = float(model.dec.pre_tanh(z, ge).std())
    if std > 0:
        model.dec.conv_post.weight.mul_(target_std / std)
