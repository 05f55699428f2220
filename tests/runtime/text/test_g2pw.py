"""Optional g2pW polyphone model: a tiny ONNX graph with the official input/output contract stands in for g2pW.onnx.

The fake model scores label l for query n as `phoneme_mask[n, l] * (CHAR_SCORES[char_ids[n], l] +
NEXT_TOKEN_SCORES[input_ids[n, position_ids[n] + 1], l])`, so its answer depends on the char, on the mask and on
the token right after the query: a wrong position, mask or char id shows up as a wrong reading.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from runtime.cli import main
from runtime.errors import FrontendError
from runtime.text.frontend import TextFrontend
from runtime.text.g2pw import G2pwPredictor, WordPieceVocab, read_config

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", ",", ".", "行", "走", "長", "跑", "還", "好", "银", "##s", "ab"]
# Taiwan-traditional chars, as in the official G2PWModel (simplified input goes through OpenCC s2tw first).
POLYPHONIC = [("行", "ㄏㄤ2"), ("行", "ㄒㄧㄥ2"), ("長", "ㄔㄤ2"), ("長", "ㄓㄤ3"), ("還", "ㄏㄞ2"), ("還", "ㄏㄨㄢ2"),
              ("一", "ㄧ1"), ("一", "ㄧ2")]
MONOPHONIC = [("好", "ㄏㄠ4"), ("似", "ㄙ4")]  # 好 deliberately hao4 so the table's reading is visible
BOPOMOFO = {"ㄏㄤ": "hang", "ㄒㄧㄥ": "xing", "ㄔㄤ": "chang", "ㄓㄤ": "zhang", "ㄏㄞ": "hai", "ㄏㄨㄢ": "huan",
            "ㄏㄠ": "hao", "ㄙ": "si", "ㄧ": "yi"}
LABELS = sorted({reading for _, reading in POLYPHONIC})
CHARS = sorted({char for char, _ in POLYPHONIC})


def _scores() -> tuple[np.ndarray, np.ndarray]:
    char_scores = np.zeros((len(CHARS), len(LABELS)), dtype=np.float32)
    for char, reading in (("行", "ㄒㄧㄥ2"), ("長", "ㄔㄤ2"), ("還", "ㄏㄨㄢ2"), ("一", "ㄧ2")):
        char_scores[CHARS.index(char), LABELS.index(reading)] = 1.0
    next_scores = np.zeros((len(VOCAB), len(LABELS)), dtype=np.float32)
    next_scores[VOCAB.index("長"), LABELS.index("ㄏㄤ2")] = 2.0  # 行 before 长 -> hang2 (行长)
    next_scores[VOCAB.index("跑"), LABELS.index("ㄓㄤ3")] = 2.0  # 长 before 跑 -> zhang3 (a fake, to test sandhi)
    return char_scores, next_scores


def _write_model(path, input_names=None) -> None:
    char_scores, next_scores = _scores()
    names = input_names or ["input_ids", "token_type_ids", "attention_mask", "phoneme_mask", "char_ids", "position_ids"]
    shapes = {3: (TensorProto.FLOAT, ["N", len(LABELS)]), 4: (TensorProto.INT64, ["N"]), 5: (TensorProto.INT64, ["N"])}
    inputs = [helper.make_tensor_value_info(n, *shapes.get(i, (TensorProto.INT64, ["N", "T"])))
              for i, n in enumerate(names)]
    nodes = [
        helper.make_node("Add", [names[5], "one"], ["next_pos"]),
        helper.make_node("Unsqueeze", ["next_pos", "axis1"], ["next_pos_2d"]),
        helper.make_node("GatherElements", [names[0], "next_pos_2d"], ["next_token_2d"], axis=1),
        helper.make_node("Squeeze", ["next_token_2d", "axis1"], ["next_token"]),
        helper.make_node("Gather", ["next_scores", "next_token"], ["context"], axis=0),
        helper.make_node("Gather", ["char_scores", names[4]], ["own"], axis=0),
        helper.make_node("Add", ["own", "context"], ["raw"]),
        helper.make_node("Mul", ["raw", names[3]], ["probs"]),
        helper.make_node("Identity", [names[1]], ["unused_types"]),
        helper.make_node("Identity", [names[2]], ["unused_mask"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_g2pw", inputs,
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", len(LABELS)]),
         helper.make_tensor_value_info("unused_types", TensorProto.INT64, ["N", "T"]),
         helper.make_tensor_value_info("unused_mask", TensorProto.INT64, ["N", "T"])],
        [helper.make_tensor("one", TensorProto.INT64, [], [1]),
         helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
         helper.make_tensor("char_scores", TensorProto.FLOAT, char_scores.shape, char_scores.ravel()),
         helper.make_tensor("next_scores", TensorProto.FLOAT, next_scores.shape, next_scores.ravel())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _write_dir(model_dir, corrections: str | None = None):
    model_dir.mkdir(parents=True, exist_ok=True)
    _write_model(model_dir / "g2pW.onnx")
    (model_dir / "POLYPHONIC_CHARS.txt").write_text("\n".join(f"{c}\t{r}" for c, r in POLYPHONIC), encoding="utf-8")
    (model_dir / "MONOPHONIC_CHARS.txt").write_text("\n".join(f"{c}\t{r}" for c, r in MONOPHONIC), encoding="utf-8")
    (model_dir / "bopomofo_to_pinyin_wo_tune_dict.json").write_text(json.dumps(BOPOMOFO), encoding="utf-8")
    (model_dir / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    (model_dir / "config.py").write_text("model_source = 'bert-base-chinese'\nuse_mask = True\n", encoding="utf-8")
    if corrections is not None:
        (model_dir / "polyphonic.rep").write_text(corrections, encoding="utf-8")
    return model_dir


@pytest.fixture(scope="module")
def g2pw_dir(tmp_path_factory):
    return _write_dir(tmp_path_factory.mktemp("G2PWModel"))


def test_predict_uses_model_for_polyphones_and_table_for_monophones(g2pw_dir):
    predictor = G2pwPredictor(g2pw_dir)
    # 行 sees 长 next -> hang2; 长 (長 after s2tw) has no context -> its own top label chang2; 还 (還) -> huan2;
    # 好 is monophonic -> the table's hao4; 一 is excluded like the official (pypinyin + sandhi decide); 。 -> None.
    assert predictor.predict("行长还好一。") == ["hang2", "chang2", "huan2", "hao4", None, None]
    assert predictor.predict("行走") == ["xing2", None]
    assert predictor.predict("长跑") == ["zhang3", None]


def test_frontend_applies_overrides_before_tone_sandhi(g2pw_dir):
    plain = TextFrontend().phonemize("我们长跑。", "zh").symbols
    with_g2pw = TextFrontend(g2pw_dir=g2pw_dir).phonemize("我们长跑。", "zh").symbols
    assert plain[4:] == ("ch", "ang2", "p", "ao3", ".")
    # the model says zhang3; before pao3 the third-tone sandhi turns it into zhang2, as in the official order
    assert with_g2pw[4:] == ("zh", "ang2", "p", "ao3", ".") and with_g2pw[:4] == plain[:4]


def test_frontend_overrides_keep_word2ph_and_other_languages(g2pw_dir):
    frontend = TextFrontend(g2pw_dir=g2pw_dir)
    phonemes = frontend.phonemize("行长还好，OK。", "zh")
    assert phonemes.symbols[:8] == ("h", "ang2", "ch", "ang2", "h", "uan2", "h", "ao4")
    assert sum(phonemes.word2ph) == len(phonemes.ids)
    assert frontend.phonemize("Gate twelve.", "en").symbols == TextFrontend().phonemize("Gate twelve.", "en").symbols


def test_correction_dictionary_wins_over_the_model(tmp_path):
    model_dir = _write_dir(tmp_path / "G2PWModel", corrections="行长: ['hang2', 'zhang3']\n还: ['hai2']\n")
    symbols = TextFrontend(g2pw_dir=model_dir).phonemize("行长还好。", "zh").symbols
    assert symbols[:6] == ("h", "ang2", "zh", "ang3", "h", "ai2")


def test_vocab_splits_latin_runs_and_maps_unknown_chars(g2pw_dir):
    vocab = WordPieceVocab(g2pw_dir / "vocab.txt")
    ids, char_to_token = vocab.encode("AbS 行?")
    assert ids == [VOCAB.index("ab"), VOCAB.index("##s"), VOCAB.index("行"), VOCAB.index("[UNK]")]
    assert char_to_token == [0, 0, 1, None, 2, 3]


def test_config_is_read_without_running_it(tmp_path):
    (tmp_path / "config.py").write_text("import os\nos.remove('x')\nuse_mask = False\nuse_char_phoneme = True\n")
    config = read_config(tmp_path / "config.py")
    assert (config.use_mask, config.use_char_phoneme) == (False, True)


def test_missing_directory_is_one_clear_error(tmp_path):
    with pytest.raises(FrontendError, match="does not exist"):
        TextFrontend(g2pw_dir=tmp_path / "nowhere")


def test_missing_files_are_named(tmp_path):
    model_dir = _write_dir(tmp_path / "G2PWModel")
    (model_dir / "g2pW.onnx").unlink()
    (model_dir / "vocab.txt").unlink()
    with pytest.raises(FrontendError, match=r"lacks g2pW\.onnx, vocab\.txt"):
        TextFrontend(g2pw_dir=model_dir)


def test_corrupt_model_is_one_clear_error(tmp_path):
    model_dir = _write_dir(tmp_path / "G2PWModel")
    (model_dir / "g2pW.onnx").write_bytes(b"not an onnx model")
    frontend = TextFrontend(g2pw_dir=model_dir)
    with pytest.raises(FrontendError, match="not a loadable ONNX model"):
        frontend.phonemize("行长还好。", "zh")


def test_model_with_other_inputs_is_refused(tmp_path):
    model_dir = _write_dir(tmp_path / "G2PWModel")
    _write_model(model_dir / "g2pW.onnx",
                 ["input_ids", "token_type_ids", "attention_masks", "phoneme_masks", "char_ids", "position_ids"])
    with pytest.raises(FrontendError, match="expected"):
        G2pwPredictor(model_dir).load()


def test_corrupt_tables_are_named(tmp_path):
    model_dir = _write_dir(tmp_path / "G2PWModel", corrections="行长 hang2 zhang3\n")
    with pytest.raises(FrontendError, match=r"polyphonic\.rep line 1"):
        G2pwPredictor(model_dir).load()
    (model_dir / "polyphonic.rep").unlink()
    (model_dir / "POLYPHONIC_CHARS.txt").write_text("行 hang2\n", encoding="utf-8")
    with pytest.raises(FrontendError, match=r"POLYPHONIC_CHARS\.txt line 1"):
        G2pwPredictor(model_dir).load()


def test_cli_phonemize_with_g2pw(g2pw_dir, capsys):
    assert main(["phonemize", "--lang", "zh", "--g2pw", str(g2pw_dir), "我们长跑。"]) == 0
    assert capsys.readouterr().out.strip().endswith("zh ang2 p ao3 .")
    assert main(["phonemize", "--lang", "zh", "--g2pw", str(g2pw_dir / "missing"), "长跑。"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_long_sentence_keeps_each_query_inside_the_bert_limit(g2pw_dir):
    # 603 chars > 510 tokens: each polyphone gets its own token window, and its position still points at it
    sentence = "行" + "好" * 600 + "长跑"
    result = G2pwPredictor(g2pw_dir).predict(sentence)
    assert (result[0], result[-2], result[-1]) == ("xing2", "zhang3", None)
    assert set(result[1:-2]) == {"hao4"}


def test_missing_opencc_is_named(g2pw_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "opencc", None)
    with pytest.raises(FrontendError, match="pip install opencc"):
        TextFrontend(g2pw_dir=g2pw_dir)
