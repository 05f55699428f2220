"""`bert/bert.onnx`: optional Chinese BERT features (chinese-roberta-wwm-ext-large, `hidden_states[-3]`).

The official pipeline adds `bert_proj(BERT)` to the GPT's phone embeddings for Chinese text and zeros elsewhere.
Without this graph the box feeds zeros everywhere (documented trade-off: flatter Chinese prosody). With `skyvoice
build --bert DIR` (a local Hugging Face directory, never downloaded) the bundle carries the model and its vocab, and
the runtime (`runtime/text/bert_zh.py`) and `voice add` compute the official per-phone features.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Final

import numpy as np
import torch
from torch import Tensor, nn

from export.errors import ExportError
from export.graphs.spec import GraphSpec
from export.graphs.tracing import trace_to_onnx
from export.validate import check_parity

_LOGGER = logging.getLogger(__name__)

SPEC: Final = GraphSpec(
    name="bert_zh",
    file="bert/bert.onnx",
    inputs=("input_ids", "token_type_ids"),  # batch 1, no padding: the attention mask is all ones inside the graph
    outputs=("features",),
    dynamic_axes={name: {1: "tokens"} for name in ("input_ids", "token_type_ids", "features")},
    atol=1e-3,
    rtol=1e-3,
)
HIDDEN_LAYER: Final = -3  # the official code takes hidden_states[-3]
EXPORT_TOKENS: Final = 9
VALIDATE_TOKENS: Final = 14


class BertFeaturesGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        out = self.model(input_ids=input_ids, token_type_ids=token_type_ids, output_hidden_states=True)
        return out.hidden_states[HIDDEN_LAYER]


def load_bert(bert_dir: str | os.PathLike) -> nn.Module:
    from transformers import AutoModelForMaskedLM

    path = Path(bert_dir)
    if not (path / "config.json").is_file() or not (path / "vocab.txt").is_file():
        raise ExportError(f"BERT directory {path} needs config.json and vocab.txt; pass the local chinese-roberta-wwm-ext-large folder")
    model = AutoModelForMaskedLM.from_pretrained(str(path), local_files_only=True, attn_implementation="eager").eval()
    if model.config.hidden_size != 1024:
        raise ExportError(f"BERT in {path} has hidden size {model.config.hidden_size}; the GPT's bert_proj takes 1024")
    return model


def _inputs(vocab_size: int, tokens: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab_size, size=(1, tokens), dtype=np.int64)
    return {"input_ids": ids, "token_type_ids": np.zeros_like(ids)}


def export_bert(bert_dir: str | os.PathLike, bundle_dir: str | os.PathLike, seed: int = 0) -> dict:
    """Export to BUNDLE/bert/bert.onnx, copy vocab.txt beside it, check parity; returns the manifest graph entry."""
    model = load_bert(bert_dir)
    out = Path(bundle_dir) / SPEC.file
    out.parent.mkdir(parents=True, exist_ok=True)
    graph = BertFeaturesGraph(model)
    trace_to_onnx(graph, SPEC, _inputs(model.config.vocab_size, EXPORT_TOKENS, seed), out)
    shutil.copyfile(Path(bert_dir) / "vocab.txt", out.parent / "vocab.txt")
    from runtime.synth.runner import OrtRunner

    inputs = _inputs(model.config.vocab_size, VALIDATE_TOKENS, seed + 1)
    with torch.no_grad():
        expected = graph(*(torch.from_numpy(inputs[n]) for n in SPEC.inputs)).numpy()
    actual = OrtRunner(out, providers=["CPUExecutionProvider"]).run(inputs)
    parity = check_parity(SPEC, {"features": expected}, actual)
    _LOGGER.info("bert exported path=%s layers=%d", out, model.config.num_hidden_layers)
    return {"file": SPEC.file, "precision": "fp32", "parity": parity}
