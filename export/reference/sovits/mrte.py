"""MRTE: cross attention from the SSL stream (query) to the phone stream (key/value), plus the speaker vector."""

from __future__ import annotations

import torch
from torch import nn

from export.reference.sovits.attentions import MultiHeadAttention


class MRTE(nn.Module):
    """x = c_post(cross_attention(c_pre(ssl), text_pre(text)) + c_pre(ssl) + ge); no relative window."""

    def __init__(self, content_channels: int = 192, hidden_size: int = 512, out_channels: int = 192, n_heads: int = 4) -> None:
        super().__init__()
        self.cross_attention = MultiHeadAttention(hidden_size, hidden_size, n_heads)
        self.c_pre = nn.Conv1d(content_channels, hidden_size, 1)
        self.text_pre = nn.Conv1d(content_channels, hidden_size, 1)
        self.c_post = nn.Conv1d(hidden_size, out_channels, 1)

    def forward(self, ssl_enc: torch.Tensor, text: torch.Tensor, ge: torch.Tensor) -> torch.Tensor:
        ssl_enc = self.c_pre(ssl_enc)
        text_enc = self.text_pre(text)
        x = self.cross_attention(ssl_enc, text_enc) + ssl_enc + ge
        return self.c_post(x)
