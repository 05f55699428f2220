"""The s1 GPT (text + prompt tokens → semantic tokens) as our own PyTorch module, written from the fact sheet.

Parameter names give exactly the official state-dict keys once the `model.` prefix is stripped, so a real `.ckpt`
loads with `strict=True`. The math is the official inference path: post-norm transformer layers with ReLU FFN, packed
`in_proj` rows [q; k; v], heads split as view(B, L, H, hd) with scale 1/sqrt(hd), and `alpha`-scaled sinusoid positions
with separate position spaces for text and audio. Two entry points serve the exported graphs:

* `prefill(phones, bert, prompt_tokens)`: the whole prefix with the official mask (text rows see all text and no audio;
  audio rows see all text and earlier audio) → last-position logits and every layer's K/V rows.
* `decode_step(token, audio_position, kv_len, k_caches, v_caches)`: one new token against per-layer caches whose rows
  >= kv_len are masked → logits and the new token's K/V rows (the caller appends them).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Final, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

BERT_DIM: Final = 1024
LAYER_NORM_EPS: Final = 1e-5
MASKED_SCORE: Final = torch.finfo(torch.float32).min
# A prefix's scores lower than their row's largest minus this are raised to it before the softmax. exp() of anything
# below -87.3 is subnormal or zero in float32, and ONNX Runtime's exp takes a ~10x slower path there: the prefill's
# masked scores (~40 % of them) made its 24 softmaxes ~5x slower (2.2 vs 0.48 ms each at 184 rows, one thread).
# A raised score weighs e^-80 ~ 1.8e-35 of the row's largest instead of (at most) that: the attention output moves
# by ~1e-35 relative per such score, some thirty orders of magnitude below float32 rounding.
SOFTMAX_FLOOR: Final = 80.0

# The official configs/s1longer-v2.yaml, as embedded under "config" in every v2 GPT checkpoint.
FULL_GPT_CONFIG: Final[Mapping[str, Any]] = {
    "train": {
        "seed": 1234,
        "epochs": 20,
        "batch_size": 8,
        "save_every_n_epoch": 1,
        "precision": "16-mixed",
        "gradient_clip": 1.0,
    },
    "optimizer": {"lr": 0.01, "lr_init": 0.00001, "lr_end": 0.0001, "warmup_steps": 2000, "decay_steps": 40000},
    "data": {"max_eval_sample": 8, "max_sec": 54, "num_workers": 4, "pad_val": 1024},
    "model": {
        "vocab_size": 1025,
        "phoneme_vocab_size": 732,
        "embedding_dim": 512,
        "hidden_dim": 512,
        "head": 16,
        "linear_units": 2048,
        "n_layer": 24,
        "dropout": 0,
        "EOS": 1024,
        "random_bert": 0,
    },
    "inference": {"top_k": 15},
}

# Same layout and vocabularies, small enough to export and run in well under a second.
TINY_GPT_CONFIG: Final[Mapping[str, Any]] = {
    **copy.deepcopy(dict(FULL_GPT_CONFIG)),
    "model": {
        **FULL_GPT_CONFIG["model"],
        "embedding_dim": 64,
        "hidden_dim": 64,
        "head": 4,
        "linear_units": 256,
        "n_layer": 2,
    },
}


def sinusoid(positions: Tensor, dim: int) -> Tensor:
    """[L] int64 positions → [L, dim] float32 with pe[p, 2i] = sin(p·d_i), pe[p, 2i+1] = cos(p·d_i)."""
    rates = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    angles = positions.to(torch.float32).unsqueeze(-1) * rates
    return torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).flatten(-2)


class TokenEmbedding(nn.Module):
    def __init__(self, vocab: int, dim: int) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)

    def forward(self, ids: Tensor) -> Tensor:
        return self.word_embeddings(ids)


class SinePosition(nn.Module):
    """x·1 + alpha·pe[positions]; `alpha` is the learned scalar of the official SinePositionalEmbedding."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.alpha = nn.Parameter(torch.ones(1))

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        return x + self.alpha * sinusoid(positions, self.dim)


class PackedSelfAttention(nn.Module):
    """Multi-head attention with the packed [q; k; v] projection of torch.nn.MultiheadAttention."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"GPT hidden_dim {dim} is not a multiple of head {heads}; fix the checkpoint config")
        self.dim = dim
        self.heads = heads
        self.head_dim = dim // heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.out_proj = nn.Linear(dim, dim)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        return q, k, v

    def attend(self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor, floor: bool = False) -> Tensor:
        """q [1,Lq,D], k/v [1,Lk,D], bias [Lq,Lk] (`attention_bias`: 0 = may attend) → [1,Lq,D] after out_proj.
        `floor`: raise scores to `SOFTMAX_FLOOR` below their row's largest first (a prefix's many masked scores)."""
        qh = q.reshape(1, -1, self.heads, self.head_dim).transpose(1, 2)
        kh = k.reshape(1, -1, self.heads, self.head_dim).transpose(1, 2)
        vh = v.reshape(1, -1, self.heads, self.head_dim).transpose(1, 2)
        scores = torch.matmul(qh, kh.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        scores = scores + bias
        if floor:
            scores = torch.maximum(scores, scores.amax(dim=-1, keepdim=True) - SOFTMAX_FLOOR)
        out = torch.matmul(torch.softmax(scores, dim=-1), vh)
        return self.out_proj(out.transpose(1, 2).reshape(1, -1, self.dim))


class DecoderLayer(nn.Module):
    """Post-norm block: x = LN1(x + MHA(x)); x = LN2(x + W2·relu(W1·x))."""

    def __init__(self, dim: int, heads: int, ffn_dim: int) -> None:
        super().__init__()
        self.self_attn = PackedSelfAttention(dim, heads)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)

    def forward(
        self, x: Tensor, bias: Tensor, k_past: Tensor | None = None, v_past: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Returns the block output and the K/V rows of `x` alone (what a cache stores)."""
        q, k, v = self.self_attn.project(x)
        k_all = k if k_past is None else torch.cat([k_past, k], dim=1)
        v_all = v if v_past is None else torch.cat([v_past, v], dim=1)
        x = self.norm1(x + self.self_attn.attend(q, k_all, v_all, bias, floor=k_past is None))
        x = self.norm2(x + self.linear2(F.relu(self.linear1(x))))
        return x, k, v


class LayerStack(nn.Module):
    def __init__(self, n_layer: int, dim: int, heads: int, ffn_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, ffn_dim) for _ in range(n_layer))


def attention_bias(keep: Tensor) -> Tensor:
    """Bool mask (True = may attend) → the additive mask the attention adds to its scores: 0 where kept, the masked
    score elsewhere. Built once per pass and added in every layer: exactly the official masked fill for finite scores
    (s + 0 = s; s + MASKED_SCORE rounds to MASKED_SCORE), and one broadcast Add per layer in the exported graphs
    instead of a Where over a freshly filled tensor (which took a fifth of the INT8 prefill in ORT)."""
    return torch.zeros(keep.shape, dtype=torch.float32).masked_fill(~keep, MASKED_SCORE)


def prefill_keep_mask(text_len: int | Tensor, audio_len: int | Tensor) -> Tensor:
    """[S,S] bool, True = may attend: text rows see all text only; audio rows see all text and causal audio."""
    total = text_len + audio_len
    rows = torch.arange(total).unsqueeze(1)
    cols = torch.arange(total).unsqueeze(0)
    audio_row_sees = (rows >= text_len) & (cols <= rows)
    return (cols < text_len) | audio_row_sees


class Text2SemanticModel(nn.Module):
    """The v2 s1 GPT. Build it from a checkpoint's own `config` dict (s1longer-v2.yaml layout)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        model_cfg = config["model"]
        self.dim = int(model_cfg["embedding_dim"])
        hidden = int(model_cfg["hidden_dim"])
        if hidden != self.dim:
            raise ValueError(f"GPT config embedding_dim {self.dim} != hidden_dim {hidden}; only equal widths are supported")
        self.heads = int(model_cfg["head"])
        self.n_layer = int(model_cfg["n_layer"])
        self.vocab_size = int(model_cfg["vocab_size"])
        self.phoneme_vocab_size = int(model_cfg["phoneme_vocab_size"])
        self.eos = int(model_cfg["EOS"])
        if self.eos != self.vocab_size - 1:
            raise ValueError(f"GPT config EOS {self.eos} must equal vocab_size-1 ({self.vocab_size - 1})")
        self.bert_proj = nn.Linear(BERT_DIM, self.dim)
        self.ar_text_embedding = TokenEmbedding(self.phoneme_vocab_size, self.dim)
        self.ar_text_position = SinePosition(self.dim)
        self.ar_audio_embedding = TokenEmbedding(self.vocab_size, self.dim)
        self.ar_audio_position = SinePosition(self.dim)
        self.h = LayerStack(self.n_layer, self.dim, self.heads, 4 * hidden)
        self.ar_predict_layer = nn.Linear(self.dim, self.vocab_size, bias=False)

    def embed_prefix(self, phones: Tensor, bert: Tensor, prompt_tokens: Tensor) -> Tensor:
        """phones [1,X] int64, bert [1,X,1024], prompt_tokens [1,P] int64 → [1,X+P,D] (positions restart at 0)."""
        text = self.ar_text_embedding(phones) + self.bert_proj(bert)
        text = self.ar_text_position(text, torch.arange(phones.shape[1]))
        audio = self.ar_audio_embedding(prompt_tokens)
        audio = self.ar_audio_position(audio, torch.arange(prompt_tokens.shape[1]))
        return torch.cat([text, audio], dim=1)

    def prefill(self, phones: Tensor, bert: Tensor, prompt_tokens: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Returns logits [1,V] of the last position and per-layer K, V [1,X+P,D]."""
        x = self.embed_prefix(phones, bert, prompt_tokens)
        bias = attention_bias(prefill_keep_mask(phones.shape[1], prompt_tokens.shape[1]))
        k_list, v_list = [], []
        for layer in self.h.layers:
            x, k, v = layer(x, bias)
            k_list.append(k)
            v_list.append(v)
        return self.ar_predict_layer(x[:, -1]), k_list, v_list

    def decode_step(
        self,
        token: Tensor,
        audio_position: Tensor,
        kv_len: Tensor,
        k_caches: Sequence[Tensor],
        v_caches: Sequence[Tensor],
    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """token [1,1], audio_position [1], kv_len [1], caches [1,C,D] (rows >= kv_len ignored) → logits, K/V [1,1,D]."""
        x = self.ar_audio_embedding(token)
        x = self.ar_audio_position(x, audio_position)
        capacity = k_caches[0].shape[1]
        cols = torch.arange(capacity + 1)
        bias = attention_bias(((cols < kv_len) | (cols == capacity)).unsqueeze(0))
        k_list, v_list = [], []
        for layer, k_past, v_past in zip(self.h.layers, k_caches, v_caches):
            x, k, v = layer(x, bias, k_past, v_past)
            k_list.append(k)
            v_list.append(v)
        return self.ar_predict_layer(x[:, -1]), k_list, v_list


def make_random_state_dict(config: Mapping[str, Any], seed: int) -> dict[str, Tensor]:
    """Float32 random weights (keys without `model.`) whose greedy decode runs for many steps before EOS.

    Post-norm keeps activations at unit scale; attention and FFN outputs are damped (0.3×) so each position keeps its
    own token's identity through all layers instead of collapsing to a context average (which makes greedy decoding
    repeat one token). The head is scaled for logits of std ≈ 3. The last layer's norm2 bias is
    a fixed ±0.5 vector `b` and the EOS row is −(8/|b|²)·b, so the EOS logit sits near −8 while others spread ±10.
    """
    gen = torch.Generator().manual_seed(int(seed))
    model_cfg = config["model"]
    dim = int(model_cfg["embedding_dim"])
    ffn = 4 * int(model_cfg["hidden_dim"])
    n_layer = int(model_cfg["n_layer"])
    eos = int(model_cfg["EOS"])

    def normal(*shape: int, std: float) -> Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float32) * std

    state: dict[str, Tensor] = {
        "bert_proj.weight": normal(dim, BERT_DIM, std=1.0 / math.sqrt(BERT_DIM)),
        "bert_proj.bias": normal(dim, std=0.02),
        "ar_text_embedding.word_embeddings.weight": normal(int(model_cfg["phoneme_vocab_size"]), dim, std=1.0),
        "ar_text_position.alpha": torch.tensor([1.0]) + normal(1, std=0.1),
        "ar_audio_embedding.word_embeddings.weight": normal(int(model_cfg["vocab_size"]), dim, std=1.0),
        "ar_audio_position.alpha": torch.tensor([1.0]) + normal(1, std=0.1),
    }
    for i in range(n_layer):
        p = f"h.layers.{i}."
        state[p + "self_attn.in_proj_weight"] = normal(3 * dim, dim, std=1.0 / math.sqrt(dim))
        state[p + "self_attn.in_proj_bias"] = normal(3 * dim, std=0.02)
        state[p + "self_attn.out_proj.weight"] = normal(dim, dim, std=0.3 / math.sqrt(dim))
        state[p + "self_attn.out_proj.bias"] = normal(dim, std=0.02)
        state[p + "linear1.weight"] = normal(ffn, dim, std=1.0 / math.sqrt(dim))
        state[p + "linear1.bias"] = normal(ffn, std=0.02)
        state[p + "linear2.weight"] = normal(dim, ffn, std=0.3 / math.sqrt(ffn))
        state[p + "linear2.bias"] = normal(dim, std=0.02)
        for norm in ("norm1", "norm2"):
            state[p + norm + ".weight"] = 1.0 + normal(dim, std=0.05)
            state[p + norm + ".bias"] = normal(dim, std=0.02)
    last_bias = (torch.randint(0, 2, (dim,), generator=gen).to(torch.float32) * 2.0 - 1.0) * 0.5
    state[f"h.layers.{n_layer - 1}.norm2.bias"] = last_bias
    head = normal(int(model_cfg["vocab_size"]), dim, std=3.0 / math.sqrt(dim))
    head[eos] = -(8.0 / float(last_bias.pow(2).sum())) * last_bias
    state["ar_predict_layer.weight"] = head
    return state


def build_model(config: Mapping[str, Any], state_dict: Mapping[str, Tensor]) -> Text2SemanticModel:
    """Instantiate from the config, load strictly (float32, the given tensors are adopted) and switch to eval mode."""
    with torch.device("meta"):  # no random init of weights that are replaced right away
        model = Text2SemanticModel(config)
    model.load_state_dict({k: v.to(torch.float32) for k, v in state_dict.items()}, strict=True, assign=True)
    return model.requires_grad_(False).eval()
