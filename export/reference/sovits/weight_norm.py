"""Convolutions that keep the legacy weight-norm parameters (`weight_g`, `weight_v`) and fold them for export."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def fold_weight(weight_g: torch.Tensor, weight_v: torch.Tensor) -> torch.Tensor:
    """w = g · v / ‖v‖, the norm taken over every dim except 0 (dim 0 is `out` for Conv1d, `in` for ConvTranspose1d)."""
    norm = weight_v.flatten(1).norm(dim=1).reshape(-1, *([1] * (weight_v.dim() - 1)))
    return weight_g * (weight_v / norm)


class WeightNormConv1d(nn.Module):
    """Conv1d with parameters `weight_g` [out,1,1], `weight_v` [out,in,k], `bias` [out]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.dilation = dilation
        self.padding = padding
        self.weight_g = nn.Parameter(torch.ones(out_channels, 1, 1))
        self.weight_v = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        nn.init.normal_(self.weight_v, 0.0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = fold_weight(self.weight_g, self.weight_v)
        return F.conv1d(x, weight, self.bias, padding=self.padding, dilation=self.dilation)

    def folded(self) -> nn.Conv1d:
        out_channels, in_channels, kernel_size = self.weight_v.shape
        conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=self.dilation, padding=self.padding)
        with torch.no_grad():
            conv.weight.copy_(fold_weight(self.weight_g, self.weight_v))
            conv.bias.copy_(self.bias)
        return conv


class WeightNormConvTranspose1d(nn.Module):
    """ConvTranspose1d with `weight_g` [in,1,1] (per input channel), `weight_v` [in,out,k], `bias` [out]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.weight_g = nn.Parameter(torch.ones(in_channels, 1, 1))
        self.weight_v = nn.Parameter(torch.empty(in_channels, out_channels, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        nn.init.normal_(self.weight_v, 0.0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = fold_weight(self.weight_g, self.weight_v)
        return F.conv_transpose1d(x, weight, self.bias, stride=self.stride, padding=self.padding)

    def folded(self) -> nn.ConvTranspose1d:
        in_channels, out_channels, kernel_size = self.weight_v.shape
        conv = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride=self.stride, padding=self.padding)
        with torch.no_grad():
            conv.weight.copy_(fold_weight(self.weight_g, self.weight_v))
            conv.bias.copy_(self.bias)
        return conv


def fold_weight_norm_in(module: nn.Module) -> int:
    """Replace every weight-norm conv below `module` by a plain conv with the folded weight; return how many."""
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, (WeightNormConv1d, WeightNormConvTranspose1d)):
            setattr(module, name, child.folded())
            count += 1
        else:
            count += fold_weight_norm_in(child)
    return count
