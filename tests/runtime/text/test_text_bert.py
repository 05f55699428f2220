"""Optional Chinese BERT features: a tiny known-answer ONNX graph stands in for the exported model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from runtime.errors import FrontendError
from runtime.text.bert_zh import BERT_DIM, ChineseBertFeatures, zero_features
from runtime.text.frontend import TextFrontend

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", ",", ".", "我", "们", "使", "用", "拍", "照"]


def _write_model(model_dir) -> None:
    """features[0, t, :] = float(input_ids[t]) in every column: each row names the token it came from."""
    table = np.repeat(np.arange(len(VOCAB), dtype=np.float32)[:, None], BERT_DIM, axis=1)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "input_ids"], ["features"], axis=0),
         helper.make_node("Identity", ["attention_mask"], ["unused_mask"]),
         helper.make_node("Identity", ["token_type_ids"], ["unused_types"])],
        "tiny_bert",
        [helper.make_tensor_value_info(name, TensorProto.INT64, [1, "T"])
         for name in ("input_ids", "attention_mask", "token_type_ids")],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, "T", BERT_DIM]),
         helper.make_tensor_value_info("unused_mask", TensorProto.INT64, [1, "T"]),
         helper.make_tensor_value_info("unused_types", TensorProto.INT64, [1, "T"])],
        [helper.make_tensor("table", TensorProto.FLOAT, table.shape, table.ravel())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(model_dir / "bert.onnx"))
    (model_dir / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")


def test_features_follow_word2ph_and_are_zero_for_english(tmp_path):
    _write_model(tmp_path)
    phonemes = TextFrontend().phonemize("我们使用iPhone拍照。", "zh")
    features = ChineseBertFeatures(tmp_path).phone_features(phonemes)
    assert features.shape == (len(phonemes.ids), BERT_DIM) and features.dtype == np.float32
    expected_rows = []
    for (lang, _), norm, word2ph in zip(phonemes.segments, phonemes.segment_norm_texts, phonemes.segment_word2ph):
        if lang == "zh":
            for char, count in zip(norm, word2ph):
                expected_rows += [float(VOCAB.index(char))] * count
        else:
            expected_rows += [0.0] * sum(word2ph)
    assert features[:, 0].tolist() == expected_rows
    assert np.all(features[~np.asarray(phonemes.is_zh_mask)] == 0.0)


def test_zero_features_shape():
    phonemes = TextFrontend().phonemize("Gate twelve is open.", "en")
    assert zero_features(phonemes).shape == (len(phonemes.ids), BERT_DIM)


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(FrontendError, match="bert.onnx"):
        ChineseBertFeatures(tmp_path)
