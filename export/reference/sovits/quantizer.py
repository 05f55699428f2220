"""Residual vector quantizer (n_q = 1) with the official buffer layout `vq.layers.0._codebook.*`."""

from __future__ import annotations

import torch
from torch import nn


class EuclideanCodebook(nn.Module):
    """Buffers `inited` [1], `cluster_size` [bins], `embed` [bins, dim], `embed_avg` [bins, dim]."""

    def __init__(self, dim: int, bins: int) -> None:
        super().__init__()
        self.register_buffer("inited", torch.ones(1))
        self.register_buffer("cluster_size", torch.ones(bins))
        self.register_buffer("embed", torch.randn(bins, dim))
        self.register_buffer("embed_avg", self.embed.clone())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [M, dim] → codes [M]: argmax of −(‖x‖² − 2·x·Eᵀ + ‖E‖²), i.e. nearest neighbour by L2."""
        dist = -(x.pow(2).sum(1, keepdim=True) - 2 * x @ self.embed.t() + self.embed.pow(2).sum(1)[None, :])
        return dist.argmax(dim=-1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.embed[codes]


class VectorQuantization(nn.Module):
    def __init__(self, dim: int, bins: int) -> None:
        super().__init__()
        self._codebook = EuclideanCodebook(dim, bins)


class ResidualVectorQuantization(nn.Module):
    def __init__(self, dim: int, bins: int, n_q: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(VectorQuantization(dim, bins) for _ in range(n_q))


class ResidualVectorQuantizer(nn.Module):
    """encode: [B, dim, T] → codes [n_q, B, T]; decode: codes [n_q, B, T] → [B, dim, T] (sum over quantizers)."""

    def __init__(self, dim: int = 768, bins: int = 1024, n_q: int = 1) -> None:
        super().__init__()
        self.vq = ResidualVectorQuantization(dim, bins, n_q)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        batch, dim, length = x.shape
        residual = x.transpose(1, 2).reshape(-1, dim)
        all_codes = []
        for layer in self.vq.layers:
            codes = layer._codebook.encode(residual)
            residual = residual - layer._codebook.decode(codes)
            all_codes.append(codes.reshape(batch, length))
        return torch.stack(all_codes)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        out = None
        for layer, layer_codes in zip(self.vq.layers, codes):
            quantized = layer._codebook.decode(layer_codes).transpose(1, 2)
            out = quantized if out is None else out + quantized
        return out
