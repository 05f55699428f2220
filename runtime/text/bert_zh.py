"""Optional Chinese BERT features per phone, from a local ONNX export of chinese-roberta-wwm-ext-large.

The official pipeline feeds the GPT `hidden_states[-3]` of that model (1024-d) for Chinese phones, each char's
vector repeated for its phones, and zeros for every other language. When a voice bundle ships such a model this
module computes the same tensor; without one, `zero_features` is the documented fallback.

Model directory contract (what `skyvoice build --bert DIR` writes to BUNDLE/bert/): `bert.onnx` with int64 inputs
`input_ids`, `token_type_ids` [1,T] (an `attention_mask` input is fed ones if the graph has one) and a
float32 output `features` [1,T,1024] (= hidden_states[-3]); `vocab.txt` is the model's WordPiece vocabulary (one token
a line, id = line number). Chinese chars and the v2 marks are one token each, so `[CLS] + chars + [SEP]` aligns
with the normalised text char for char, as the official code asserts.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Final

import numpy as np

from runtime.errors import FrontendError
from runtime.text.frontend import Phonemes

_LOGGER = logging.getLogger(__name__)

BERT_DIM: Final = 1024
MODEL_FILE: Final = "bert.onnx"
VOCAB_FILE: Final = "vocab.txt"
OUTPUT_NAME: Final = "features"


def zero_features(phonemes: Phonemes) -> np.ndarray:
    """float32 [n_phones, 1024] zeros: what the official code feeds for every non-Chinese phone."""
    return np.zeros((len(phonemes.ids), BERT_DIM), dtype=np.float32)


class ChineseBertFeatures:
    """Loads the ONNX model on first use (thread-safe); `phone_features` gives [n_phones, 1024] float32."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = Path(model_dir)
        for name in (MODEL_FILE, VOCAB_FILE):
            if not (self.model_dir / name).is_file():
                raise FrontendError(
                    f"BERT model directory {self.model_dir} has no {name}; export chinese-roberta-wwm-ext-large "
                    f"there or run without BERT (zero features)"
                )
        self._lock = threading.Lock()
        self._session = None
        self._vocab: dict[str, int] = {}

    def _load(self):
        with self._lock:
            if self._session is None:
                import onnxruntime

                lines = (self.model_dir / VOCAB_FILE).read_text(encoding="utf-8").splitlines()
                self._vocab = {token: index for index, token in enumerate(lines)}
                for token in ("[CLS]", "[SEP]", "[UNK]"):
                    if token not in self._vocab:
                        raise FrontendError(f"{self.model_dir / VOCAB_FILE} lacks the token {token}; use the model's vocab")
                self._session = onnxruntime.InferenceSession(
                    str(self.model_dir / MODEL_FILE), providers=["CPUExecutionProvider"]
                )
                _LOGGER.info("chinese bert loaded dir=%s vocab=%d", self.model_dir, len(self._vocab))
            return self._session

    def char_features(self, norm_text: str) -> np.ndarray:
        """float32 [len(norm_text), 1024]: one vector per char (CLS and SEP dropped)."""
        session = self._load()
        unk = self._vocab["[UNK]"]
        ids = [self._vocab["[CLS]"]] + [self._vocab.get(char, unk) for char in norm_text] + [self._vocab["[SEP]"]]
        input_ids = np.asarray([ids], dtype=np.int64)
        feeds = {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids), "token_type_ids": np.zeros_like(input_ids)}
        wanted = {i.name for i in session.get_inputs()}  # an exporter may have folded away an all-ones mask
        out = session.run([OUTPUT_NAME], {k: v for k, v in feeds.items() if k in wanted})[0]
        if out.shape != (1, len(ids), BERT_DIM):
            raise FrontendError(
                f"{self.model_dir / MODEL_FILE} output {OUTPUT_NAME!r} has shape {out.shape}, expected "
                f"(1, {len(ids)}, {BERT_DIM})"
            )
        return np.asarray(out[0, 1:-1], dtype=np.float32)

    def phone_features(self, phonemes: Phonemes) -> np.ndarray:
        """float32 [n_phones, 1024]: BERT rows for Chinese segments' phones, zeros for the rest."""
        features = zero_features(phonemes)
        pieces = zip(phonemes.segments, phonemes.segment_norm_texts, phonemes.segment_word2ph,
                     phonemes.segment_phone_starts)
        for (lang, _), norm_text, word2ph, start in pieces:
            if lang != "zh" or not word2ph:
                continue
            if len(word2ph) != len(norm_text):
                raise FrontendError(f"segment {norm_text!r} has {len(word2ph)} word2ph entries for {len(norm_text)} chars")
            rows = np.repeat(self.char_features(norm_text), word2ph, axis=0)
            features[start : start + rows.shape[0]] = rows
        return features
