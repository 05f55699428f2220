"""VITS attention blocks: channel LayerNorm, relative-position multi-head attention, conv FFN, post-norm Encoder.

Batch 1 without padding is the only inference case, so every mask of the official code is all ones and masking is
the identity; it is left out. Relative positions use gathers over a (2·window+1)-wide band, which equals the
official pad/reshape `rel_to_abs`/`abs_to_rel` tricks (offsets beyond the window have zero embeddings there) and
exports to ONNX without shape-dependent Python branches.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of [B, C, T] with parameters `gamma`/`beta`, eps 1e-5."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, -1), (self.channels,), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


def _band_offsets(length_like: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For positions i of [T] and offsets r in -window..window: key index i+r (clamped) and whether it exists."""
    positions = torch.arange(length_like.shape[-1], device=length_like.device)
    offsets = torch.arange(-window, window + 1, device=length_like.device)
    index = positions[:, None] + offsets[None, :]  # [T, 2w+1]
    valid = (index >= 0) & (index < length_like.shape[-1])
    return torch.where(valid, index, torch.zeros_like(index)), valid


def _relative_to_absolute(rel_logits: torch.Tensor, window: int) -> torch.Tensor:
    """[B,H,T,2w+1] logits per offset → [B,H,T,T] with entry (i, j) = rel_logits[i, j−i+w] for |j−i| ≤ w, else 0."""
    positions = torch.arange(rel_logits.shape[2], device=rel_logits.device)
    rel = positions[None, :] - positions[:, None] + window  # [T, T]: j − i + w
    inside = (rel >= 0) & (rel <= 2 * window)
    index = torch.where(inside, rel, torch.zeros_like(rel)).expand(rel_logits.shape[0], rel_logits.shape[1], -1, -1)
    return torch.gather(rel_logits, 3, index) * inside.to(rel_logits.dtype)


def _absolute_to_relative(p_attn: torch.Tensor, window: int) -> torch.Tensor:
    """[B,H,T,T] weights → [B,H,T,2w+1] with entry (i, r) = p[i, i+r−w] where that key exists, else 0."""
    index, valid = _band_offsets(p_attn[0, 0, 0], window)
    index = index.expand(p_attn.shape[0], p_attn.shape[1], -1, -1)
    return torch.gather(p_attn, 3, index) * valid.to(p_attn.dtype)


class MultiHeadAttention(nn.Module):
    """VITS MHA: 1×1 conv q/k/v/o; with `window_size`, heads share `emb_rel_k`/`emb_rel_v` [1, 2w+1, k_channels]."""

    def __init__(self, channels: int, out_channels: int, n_heads: int, window_size: Optional[int] = None) -> None:
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels={channels} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.window_size = window_size
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        if window_size is not None:
            rel_stddev = self.k_channels**-0.5
            self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * rel_stddev)
            self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * rel_stddev)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, T] → [B, H, T, k]."""
        return x.reshape(x.shape[0], self.n_heads, self.k_channels, x.shape[-1]).transpose(2, 3)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        query = self._heads(self.conv_q(x)) / math.sqrt(self.k_channels)
        key = self._heads(self.conv_k(context))
        value = self._heads(self.conv_v(context))
        scores = torch.matmul(query, key.transpose(-2, -1))
        if self.window_size is not None:
            rel_logits = torch.matmul(query, self.emb_rel_k[0].transpose(0, 1))  # [B,H,T,2w+1]
            scores = scores + _relative_to_absolute(rel_logits, self.window_size)
        p_attn = torch.softmax(scores, dim=-1)
        output = torch.matmul(p_attn, value)
        if self.window_size is not None:
            rel_weights = _absolute_to_relative(p_attn, self.window_size)
            output = output + torch.matmul(rel_weights, self.emb_rel_v[0])
        output = output.transpose(2, 3).reshape(x.shape[0], -1, x.shape[-1])
        return self.conv_o(output)


class FeedForward(nn.Module):
    """conv_1 (k, same padding) → ReLU → conv_2 (k, same padding)."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)
        self.pad = ((kernel_size - 1) // 2, kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(F.pad(x, self.pad)))
        return self.conv_2(F.pad(x, self.pad))


class Encoder(nn.Module):
    """Post-norm transformer encoder: x = LN1(x + MHA(x)); x = LN2(x + FFN(x)), per layer."""

    def __init__(
        self, hidden_channels: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int, window_size: int = 4
    ) -> None:
        super().__init__()
        self.attn_layers = nn.ModuleList(
            MultiHeadAttention(hidden_channels, hidden_channels, n_heads, window_size=window_size) for _ in range(n_layers)
        )
        self.norm_layers_1 = nn.ModuleList(ChannelLayerNorm(hidden_channels) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(FeedForward(hidden_channels, filter_channels, kernel_size) for _ in range(n_layers))
        self.norm_layers_2 = nn.ModuleList(ChannelLayerNorm(hidden_channels) for _ in range(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, norm_1, ffn, norm_2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2):
            x = norm_1(x + attn(x, x))
            x = norm_2(x + ffn(x))
        return x
