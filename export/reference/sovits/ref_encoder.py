"""MelStyleEncoder: linear spectrogram bins → speaker/style vector `ge` [B, gin, 1]."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def mish(x: torch.Tensor) -> torch.Tensor:
    """x · tanh(softplus(x)), written out so opset 17 needs no Mish op."""
    return x * torch.tanh(F.softplus(x))


class LinearNorm(nn.Module):
    """A Linear under the attribute `fc` (the official key layout)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class Mish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mish(x)


class ConvNorm(nn.Module):
    """A Conv1d under the attribute `conv`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Conv1dGLU(nn.Module):
    """x + a·sigmoid(b) with [a; b] = conv1(x)."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.channels = channels
        self.conv1 = ConvNorm(channels, 2 * channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        return x + y[:, : self.channels] * torch.sigmoid(y[:, self.channels :])


class StyleAttention(nn.Module):
    """Multi-head self-attention with temperature √d_model (not √d_k), output fc(attn) + residual."""

    def __init__(self, n_head: int, d_model: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.d_k = d_model // n_head
        self.temperature = math.sqrt(d_model)
        self.w_qs = nn.Linear(d_model, n_head * self.d_k)
        self.w_ks = nn.Linear(d_model, n_head * self.d_k)
        self.w_vs = nn.Linear(d_model, n_head * self.d_k)
        self.fc = nn.Linear(n_head * self.d_k, d_model)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, H·d] → [B, H, T, d]."""
        return x.reshape(x.shape[0], x.shape[1], self.n_head, self.d_k).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._heads(self.w_qs(x)), self._heads(self.w_ks(x)), self._heads(self.w_vs(x))
        attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) / self.temperature, dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
        return self.fc(out) + x


class MelStyleEncoder(nn.Module):
    """spectral (Linear+Mish ×2) → temporal (2 Conv1dGLU) → attention → fc → mean over time."""

    def __init__(self, n_bins: int = 704, style_vector_dim: int = 512, hidden_dim: int = 128, kernel_size: int = 5, n_head: int = 2) -> None:
        super().__init__()
        self.n_bins = n_bins
        self.spectral = nn.Sequential(
            LinearNorm(n_bins, hidden_dim), Mish(), nn.Dropout(0.0), LinearNorm(hidden_dim, hidden_dim), Mish(), nn.Dropout(0.0)
        )
        self.temporal = nn.Sequential(Conv1dGLU(hidden_dim, kernel_size), Conv1dGLU(hidden_dim, kernel_size))
        self.slf_attn = StyleAttention(n_head, hidden_dim)
        self.fc = LinearNorm(hidden_dim, style_vector_dim)

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """spectrogram [B, ≥n_bins, T] (linear magnitude) → ge [B, style_vector_dim, 1]."""
        x = spectrogram[:, : self.n_bins].transpose(1, 2)
        x = self.spectral(x)
        x = self.temporal(x.transpose(1, 2)).transpose(1, 2)
        x = self.fc(self.slf_attn(x))
        return x.mean(dim=1).unsqueeze(-1)
