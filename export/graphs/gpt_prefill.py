"""`gpt_prefill.onnx`: the GPT prefix pass (text phones + BERT + prompt tokens) → last logits and every layer's K/V."""

from __future__ import annotations

import logging
import os
from typing import Final

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from export.graphs.spec import GraphSpec
from export.graphs.tracing import check_graph_ops, trace_to_onnx
from export.reference.gpt import BERT_DIM, Text2SemanticModel
from export.validate import check_parity

_LOGGER = logging.getLogger(__name__)

SPEC: Final = GraphSpec(
    name="gpt_prefill",
    file="graphs/gpt_prefill.onnx",
    inputs=("phones", "bert_features", "prompt_tokens"),
    outputs=("logits", "k_prefill", "v_prefill"),
    dynamic_axes={
        "phones": {1: "phone_len"},
        "bert_features": {1: "phone_len"},
        "prompt_tokens": {1: "prompt_len"},
        "k_prefill": {2: "prefix_len"},
        "v_prefill": {2: "prefix_len"},
    },
)

EXPORT_PHONES: Final = 7  # dummy shapes for tracing; validation uses other lengths
EXPORT_PROMPT: Final = 5
VALIDATE_PHONES: Final = 11
VALIDATE_PROMPT: Final = 3


class PrefillGraph(nn.Module):
    """Adapter from `Text2SemanticModel.prefill` to the graph's stacked outputs [L,1,X+P,D]."""

    def __init__(self, model: Text2SemanticModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, phones: Tensor, bert_features: Tensor, prompt_tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits, k_list, v_list = self.model.prefill(phones, bert_features, prompt_tokens)
        return logits.reshape(1, self.model.vocab_size), torch.stack(k_list), torch.stack(v_list)


def random_inputs(model: Text2SemanticModel, phones: int, prompt: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "phones": rng.integers(0, model.phoneme_vocab_size, size=(1, phones), dtype=np.int64),
        "bert_features": rng.standard_normal((1, phones, BERT_DIM)).astype(np.float32),
        "prompt_tokens": rng.integers(0, model.eos, size=(1, prompt), dtype=np.int64),
    }


def pin_output_shapes(path: str | os.PathLike, shapes: dict[str, tuple[int | str, ...]]) -> None:
    """Write the contract's output shapes (static sizes, named dynamic axes) over what the tracer inferred."""
    graph = onnx.load(str(path))
    for output in graph.graph.output:
        if output.name in shapes:
            dims = output.type.tensor_type.shape.dim
            del dims[:]
            for size in shapes[output.name]:
                dim = dims.add()
                if isinstance(size, str):
                    dim.dim_param = size
                else:
                    dim.dim_value = size
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))


def export_graph(model: Text2SemanticModel, out_path: str | os.PathLike) -> None:
    """Trace `model.prefill` with the legacy exporter (opset 17, named dynamic axes) into `out_path`."""
    model = model.eval()
    trace_to_onnx(PrefillGraph(model), SPEC, random_inputs(model, EXPORT_PHONES, EXPORT_PROMPT, seed=0), out_path)
    kv_shape = (model.n_layer, 1, "prefix_len", model.dim)
    pin_output_shapes(out_path, {"logits": (1, model.vocab_size), "k_prefill": kv_shape, "v_prefill": kv_shape})
    check_graph_ops(out_path, SPEC)  # again: pinning rewrote the file
    _LOGGER.info("graph exported name=%s path=%s layers=%d", SPEC.name, out_path, model.n_layer)


def validate_graph(model: Text2SemanticModel, onnx_path: str | os.PathLike, seed: int) -> dict:
    """ORT vs torch on inputs of other lengths than the export dummies; returns `check_parity`'s per-output diffs."""
    from runtime.synth.runner import OrtRunner

    inputs = random_inputs(model, VALIDATE_PHONES, VALIDATE_PROMPT, seed)
    with torch.no_grad():
        logits, k, v = PrefillGraph(model.eval())(*(torch.from_numpy(inputs[n]) for n in SPEC.inputs))
    expected = {"logits": logits.numpy(), "k_prefill": k.numpy(), "v_prefill": v.numpy()}
    actual = OrtRunner(onnx_path, providers=["CPUExecutionProvider"]).run(inputs)
    return check_parity(SPEC, expected, actual)
