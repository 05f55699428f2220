"""`gpt_decode_step.onnx`: one GPT token against per-layer K/V caches (rows >= kv_len masked) → logits and its K/V.

The caches are **head-major**: `k_cache_i` and `v_cache_i` are [1, H, C, D/H] (layer i's K/V rows split into heads),
the layout the attention reads, so a step only reads the cache: scores are one batched product of the cache with
the query (no per-step transpose of the cache), and the new token's own score and value are added as a second part
of the softmax (no per-step concatenation of the cache). The new token's K/V leave as rows `k_new`/`v_new`
[L, 1, 1, D]; the runtime writes them into its head-major buffers (`runtime.synth.gpt_loop.HostKvCache`,
`runtime.synth.trt_runner.TrtDecodeStep`). The math is `Text2SemanticModel.decode_step`'s (validated against it).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Final

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from export.graphs.tracing import trace_to_onnx
from export.graphs.spec import GraphSpec
from export.reference.gpt import MASKED_SCORE, Text2SemanticModel
from export.validate import check_parity

_LOGGER = logging.getLogger(__name__)

FIXED_INPUTS: Final = ("token", "audio_position", "kv_len")
EXPORT_CACHE_LEN: Final = 9
VALIDATE_CACHE_LEN: Final = 13
VALIDATE_MASKED_KV_LEN: Final = 8


def cache_input_names(n_layer: int) -> tuple[str, ...]:
    """k_cache_0, v_cache_0, k_cache_1, v_cache_1, ... (the order the graph declares them)."""
    return tuple(name for i in range(n_layer) for name in (f"k_cache_{i}", f"v_cache_{i}"))


def spec_for(n_layer: int) -> GraphSpec:
    """The decode-step spec for a GPT with `n_layer` layers (the cache inputs are per layer)."""
    caches = cache_input_names(n_layer)
    return GraphSpec(
        name="gpt_decode_step",
        file="graphs/gpt_decode_step.onnx",
        inputs=FIXED_INPUTS + caches,
        outputs=("logits", "k_new", "v_new"),
        dynamic_axes={name: {2: "cache_len"} for name in caches},
    )


SPEC: Final = spec_for(24)  # the official v2 GPT; use spec_for(model.n_layer) for other depths


class DecodeStepGraph(nn.Module):
    """`Text2SemanticModel.decode_step` over head-major caches [1,H,C,D/H] → logits [1,V] and K/V rows [L,1,1,D]."""

    def __init__(self, model: Text2SemanticModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, token: Tensor, audio_position: Tensor, kv_len: Tensor, *caches: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        m = self.model
        heads, head_dim = m.heads, m.dim // m.heads
        scale = 1.0 / math.sqrt(head_dim)
        x = m.ar_audio_position(m.ar_audio_embedding(token), audio_position)  # [1,1,D]
        rows = torch.arange(caches[0].shape[2]).reshape(1, 1, 1, -1)
        # 0 for rows < kv_len, the reference's masked score for the rest; built once, added in every layer. A select,
        # not a product: in FP16 (TensorRT) the masked score is -inf, and 0 x -inf would be NaN.
        mask = torch.zeros(rows.shape, dtype=torch.float32).masked_fill(rows >= kv_len, MASKED_SCORE)
        k_rows, v_rows = [], []
        for layer, k_past, v_past in zip(m.h.layers, caches[0::2], caches[1::2]):
            attn = layer.self_attn
            qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)  # [1,1,3D] = [q; k; v]
            q, k, v = qkv.reshape(3, heads, 1, head_dim).split(1, dim=0)  # [1,H,1,hd] each
            q_col = (q * scale).reshape(1, heads, head_dim, 1)
            # scores over the cache: [1,H,C,hd] @ [1,H,hd,1] reads each cached row once, in place
            past = torch.matmul(k_past, q_col).reshape(1, heads, 1, -1) + mask
            own = torch.matmul(k, q_col)  # [1,H,1,1]: the new token attending to itself
            weights = torch.softmax(torch.cat([past, own], dim=-1), dim=-1)
            mixed = torch.matmul(weights[..., :-1], v_past) + weights[..., -1:] * v  # [1,H,1,hd]
            x = layer.norm1(x + attn.out_proj(mixed.reshape(1, 1, m.dim)))
            x = layer.norm2(x + layer.linear2(F.relu(layer.linear1(x))))
            k_rows.append(k)
            v_rows.append(v)
        shape = (m.n_layer, 1, 1, m.dim)  # the reshapes pin the static dims in the graph's declared output shapes
        return m.ar_predict_layer(x[:, -1]).reshape(1, m.vocab_size), torch.cat(k_rows).reshape(shape), torch.cat(v_rows).reshape(shape)


def to_head_major(cache: np.ndarray, heads: int) -> np.ndarray:
    """[1,C,D] token-major rows → [1,H,C,D/H] (contiguous)."""
    _, rows, dim = cache.shape
    return np.ascontiguousarray(cache.reshape(1, rows, heads, dim // heads).transpose(0, 2, 1, 3))


def to_token_major(cache: np.ndarray) -> np.ndarray:
    """[1,H,C,D/H] → [1,C,D]."""
    _, heads, rows, head_dim = cache.shape
    return np.ascontiguousarray(cache.transpose(0, 2, 1, 3).reshape(1, rows, heads * head_dim))


def random_inputs(model: Text2SemanticModel, cache_len: int, kv_len: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    inputs = {
        "token": rng.integers(0, model.eos, size=(1, 1), dtype=np.int64),
        "audio_position": np.array([int(rng.integers(0, 200))], dtype=np.int64),
        "kv_len": np.array([kv_len], dtype=np.int64),
    }
    for name in cache_input_names(model.n_layer):
        inputs[name] = rng.standard_normal((1, model.heads, cache_len, model.dim // model.heads)).astype(np.float32)
    return inputs


def export_graph(model: Text2SemanticModel, out_path: str | os.PathLike) -> None:
    """Trace `model.decode_step` with the legacy exporter (opset 17, dynamic `cache_len`) into `out_path`."""
    model = model.eval()
    spec = spec_for(model.n_layer)
    dummy = random_inputs(model, EXPORT_CACHE_LEN, EXPORT_CACHE_LEN, seed=0)
    trace_to_onnx(DecodeStepGraph(model), spec, dummy, out_path)
    _LOGGER.info("graph exported name=%s path=%s layers=%d", spec.name, out_path, model.n_layer)


def _torch_step(model: Text2SemanticModel, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """The reference `decode_step` on the first `rows` cache rows only (what the masked rows must be equivalent to)."""
    spec = spec_for(model.n_layer)
    fixed = [torch.from_numpy(inputs[n]) for n in FIXED_INPUTS]
    caches = [torch.from_numpy(to_token_major(inputs[n])[:, :rows]) for n in spec.inputs[len(FIXED_INPUTS):]]
    with torch.no_grad():
        logits, k_list, v_list = model.eval().decode_step(*fixed, caches[0::2], caches[1::2])
    shape = (model.n_layer, 1, 1, model.dim)
    return {"logits": logits.reshape(1, -1).numpy(), "k_new": torch.stack(k_list).reshape(shape).numpy(), "v_new": torch.stack(v_list).reshape(shape).numpy()}


def validate_graph(model: Text2SemanticModel, onnx_path: str | os.PathLike, seed: int) -> dict:
    """ORT vs torch at a cache length unlike the export dummy: full cache (ORT path) and a masked tail (TensorRT path).

    Returns `check_parity`'s diffs, per output the worse of the two cases; raises ExportError if either fails.
    """
    from runtime.synth.runner import OrtRunner

    spec = spec_for(model.n_layer)
    runner = OrtRunner(onnx_path, providers=["CPUExecutionProvider"])
    worst: dict[str, dict[str, float]] = {}
    for case, kv_len in (("full", VALIDATE_CACHE_LEN), ("masked", VALIDATE_MASKED_KV_LEN)):
        inputs = random_inputs(model, VALIDATE_CACHE_LEN, kv_len, seed)
        result = check_parity(spec, _torch_step(model, inputs, kv_len), runner.run(inputs))
        _LOGGER.info("decode step parity case=%s kv_len=%d", case, kv_len)
        for name, diff in result.items():
            prev = worst.get(name, {"max_abs": 0.0, "max_rel": 0.0})
            worst[name] = {k: max(prev[k], diff[k]) for k in ("max_abs", "max_rel")}
    return worst
