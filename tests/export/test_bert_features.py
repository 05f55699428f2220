"""`build --bert DIR`: Chinese BERT features in the bundle, used by `voice add` for the prompt and by the runtime."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from export.build import BuildConfig, Progress, build_bundle  # noqa: E402
from export.testing import write_tiny_bert_dir  # noqa: E402
from export.voice_add import add_voice  # noqa: E402
from runtime.synth.synthesizer import SynthesisOptions  # noqa: E402


@pytest.fixture(scope="module")
def bert_bundle(tiny_checkpoints, tmp_path_factory):
    root = tmp_path_factory.mktemp("bert")
    bert_dir = write_tiny_bert_dir(root / "roberta-tiny")
    out = root / "bundle"
    config = BuildConfig(gpt_path=tiny_checkpoints["gpt"], sovits_path=tiny_checkpoints["sovits"], out_dir=out,
                         kv_capacity=512, bert_dir=bert_dir)
    build_bundle(config, Progress(enabled=False))
    add_voice(bundle_dir=out, name="zh", ref_wav=tiny_checkpoints["ref_wav"], hubert_dir=tiny_checkpoints["hubert"],
              ref_text="今天天气很好", lang="zh")
    return out


def test_bundle_ships_bert_with_vocab_and_parity(bert_bundle):
    manifest = json.loads((bert_bundle / "manifest.json").read_text())
    entry = manifest["graphs"]["bert_zh"]
    assert entry["file"] == "bert/bert.onnx" and entry["parity"]["features"]["max_abs"] < 1e-3
    assert "bert/vocab.txt" in manifest["files"] and "bert/bert.onnx" in manifest["files"]


def test_chinese_prompt_gets_bert_features(bert_bundle):
    from runtime.synth.voice_pack import VoicePack

    pack = VoicePack.load(bert_bundle / "voices" / "zh.npz")
    assert pack.prompt_bert is not None and pack.prompt_bert.shape == (pack.prompt_phones.size, 1024)
    assert np.abs(pack.prompt_bert.astype(np.float32)).max() > 0


def _tokens(synth, text, lang):
    utterances: list = []
    options = SynthesisOptions(seed=4, max_tokens=24, stream=False)
    list(synth.synthesize(text, voice="zh", lang=lang, options=options, utterances=utterances))
    return [u.tokens for u in utterances]


def test_target_bert_reaches_the_gpt_for_chinese_only(bert_bundle):
    from runtime.synth.voice_engine import load_synthesizer

    with_bert = load_synthesizer(bert_bundle)
    without_bert = load_synthesizer(bert_bundle)
    without_bert.bert = None
    zh = "请注意，前方到站。"
    assert _tokens(with_bert, zh, "zh") != _tokens(without_bert, zh, "zh")
    en = "Please stand clear of the doors."
    assert _tokens(with_bert, en, "en") == _tokens(without_bert, en, "en")
