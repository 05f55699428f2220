"""`gpt_decode_step.onnx`: one GPT token against per-layer K/V caches (rows >= kv_len masked) → logits and its K/V."""

from __future__ import annotations

import logging
import os
from typing import Final

import numpy as np
import torch
from torch import Tensor, nn

from export.graphs.tracing import trace_to_onnx
from export.graphs.spec import GraphSpec
from export.reference.gpt import Text2SemanticModel
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
        dynamic_axes={name: {1: "cache_len"} for name in caches},
    )


SPEC: Final = spec_for(24)  # the official v2 GPT; use spec_for(model.n_layer) for other depths


class DecodeStepGraph(nn.Module):
    """Adapter from `Text2SemanticModel.decode_step` to flat per-layer cache inputs and stacked [L,1,1,D] outputs."""

    def __init__(self, model: Text2SemanticModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, token: Tensor, audio_position: Tensor, kv_len: Tensor, *caches: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits, k_list, v_list = self.model.decode_step(token, audio_position, kv_len, caches[0::2], caches[1::2])
        m = self.model  # the reshapes pin the static dims in the graph's declared output shapes
        shape = (m.n_layer, 1, 1, m.dim)
        return logits.reshape(1, m.vocab_size), torch.stack(k_list).reshape(shape), torch.stack(v_list).reshape(shape)


def random_inputs(model: Text2SemanticModel, cache_len: int, kv_len: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    inputs = {
        "token": rng.integers(0, model.eos, size=(1, 1), dtype=np.int64),
        "audio_position": np.array([int(rng.integers(0, 200))], dtype=np.int64),
        "kv_len": np.array([kv_len], dtype=np.int64),
    }
    for name in cache_input_names(model.n_layer):
        inputs[name] = rng.standard_normal((1, cache_len, model.dim)).astype(np.float32)
    return inputs


def export_graph(model: Text2SemanticModel, out_path: str | os.PathLike) -> None:
    """Trace `model.decode_step` with the legacy exporter (opset 17, dynamic `cache_len`) into `out_path`."""
    model = model.eval()
    spec = spec_for(model.n_layer)
    dummy = random_inputs(model, EXPORT_CACHE_LEN, EXPORT_CACHE_LEN, seed=0)
    trace_to_onnx(DecodeStepGraph(model), spec, dummy, out_path)
    _LOGGER.info("graph exported name=%s path=%s layers=%d", spec.name, out_path, model.n_layer)


def _torch_step(model: Text2SemanticModel, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """Torch reference on the first `rows` cache rows only (what the masked rows must be equivalent to)."""
    spec = spec_for(model.n_layer)
    args = [torch.from_numpy(inputs[n]) for n in FIXED_INPUTS]
    args += [torch.from_numpy(inputs[n][:, :rows]) for n in spec.inputs[len(FIXED_INPUTS):]]
    with torch.no_grad():
        logits, k, v = DecodeStepGraph(model.eval())(*args)
    return {"logits": logits.numpy(), "k_new": k.numpy(), "v_new": v.numpy()}


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
