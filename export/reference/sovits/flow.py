"""Mean-only residual coupling flow (run in reverse at inference) with WaveNet-style `WN` conditioning."""

from __future__ import annotations

import torch
from torch import nn

from export.reference.sovits.weight_norm import WeightNormConv1d


class WN(nn.Module):
    """Gated dilated convs: acts = tanh(a[:h])·sigmoid(a[h:]), a = in_layer(x) + cond slice; residual and skip halves."""

    def __init__(self, hidden_channels: int, kernel_size: int, dilation_rate: int, n_layers: int, gin_channels: int) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.n_layers = n_layers
        self.cond_layer = WeightNormConv1d(gin_channels, 2 * hidden_channels * n_layers, 1)
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            dilation = dilation_rate**i
            padding = (kernel_size * dilation - dilation) // 2
            self.in_layers.append(WeightNormConv1d(hidden_channels, 2 * hidden_channels, kernel_size, dilation, padding))
            res_skip_channels = 2 * hidden_channels if i < n_layers - 1 else hidden_channels
            self.res_skip_layers.append(WeightNormConv1d(hidden_channels, res_skip_channels, 1))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        hidden = self.hidden_channels
        g = self.cond_layer(g)
        output = torch.zeros_like(x)
        for i, (in_layer, res_skip_layer) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            a = in_layer(x) + g[:, 2 * hidden * i : 2 * hidden * (i + 1), :]
            acts = torch.tanh(a[:, :hidden]) * torch.sigmoid(a[:, hidden:])
            res_skip = res_skip_layer(acts)
            if i < self.n_layers - 1:
                x = x + res_skip[:, :hidden]
                output = output + res_skip[:, hidden:]
            else:
                output = output + res_skip
        return output


class ResidualCouplingLayer(nn.Module):
    """Mean-only affine coupling: reverse is x1 ← x1 − post(WN(pre(x0)))."""

    def __init__(self, channels: int, hidden_channels: int, kernel_size: int, dilation_rate: int, n_layers: int, gin_channels: int) -> None:
        super().__init__()
        self.half_channels = channels // 2
        self.pre = nn.Conv1d(self.half_channels, hidden_channels, 1)
        self.enc = WN(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels)
        self.post = nn.Conv1d(hidden_channels, self.half_channels, 1)

    def reverse(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        x0, x1 = x[:, : self.half_channels], x[:, self.half_channels :]
        mean = self.post(self.enc(self.pre(x0), g))
        return torch.cat([x0, x1 - mean], dim=1)


class Flip(nn.Module):
    """Reverse the channel order (its own inverse; no parameters)."""

    def reverse(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return torch.flip(x, dims=[1])


class ResidualCouplingBlock(nn.Module):
    """`flows` = [coupling, Flip] × n_flows; inference applies them in reversed order."""

    def __init__(
        self, channels: int, hidden_channels: int, kernel_size: int = 5, dilation_rate: int = 1, n_layers: int = 4,
        n_flows: int = 4, gin_channels: int = 512,
    ) -> None:
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(ResidualCouplingLayer(channels, hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels))
            self.flows.append(Flip())

    def reverse(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        for flow in reversed(self.flows):
            x = flow.reverse(x, g)
        return x
