"""Voice enrollment with a tiny random HuBERT: pack size, npz round trip, reference length limits, resampler alignment."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch

from export.reference.sovits import TINY_SOVITS_HPARAMS, SynthesizerV2, make_random_state_dict
from export.voices import load_hubert, make_voice_pack, write_tiny_hubert_dir
from runtime.errors import BundleRejected, ConfigError
from runtime.synth.spectrogram import load_reference, resample
from runtime.synth.voice_pack import VoicePack

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hubert_dir(tmp_path_factory):
    return write_tiny_hubert_dir(tmp_path_factory.mktemp("hubert") / "chinese-hubert-tiny")


@pytest.fixture(scope="module")
def tiny_model() -> SynthesizerV2:
    return SynthesizerV2.from_state_dict(TINY_SOVITS_HPARAMS, make_random_state_dict(TINY_SOVITS_HPARAMS, seed=5))


def write_speechlike_wav(path, seconds: float, rate: int = 44100, channels: int = 1) -> None:
    rng = np.random.default_rng(int(seconds * 10))
    t = np.arange(int(seconds * rate)) / rate
    voice = 0.3 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(t.size)
    sf.write(str(path), np.repeat(voice[:, None], channels, axis=1).astype(np.float32), rate)


def test_voice_pack_from_a_five_second_reference(tiny_model, hubert_dir, tmp_path):
    wav = tmp_path / "ref.wav"
    write_speechlike_wav(wav, 5.0, channels=2)
    pack = make_voice_pack(tiny_model, hubert_dir, wav, [12, 40, 41, 7], "captain", "en", "welcome aboard", sovits_sha256="ab" * 32)
    # 5 s at 16 kHz + 9600 zeros = 89,600 samples → 279 HuBERT frames (50 Hz) → 139 tokens (25 Hz)
    assert pack.prompt_tokens.dtype == np.int16 and pack.prompt_tokens.shape == (139,)
    assert pack.ge.dtype == np.float32 and pack.ge.shape == (TINY_SOVITS_HPARAMS["model"]["gin_channels"],)
    assert pack.prompt_bert is None

    # the same tokens straight from the reference pieces: HuBERT → ssl_proj → nearest codebook entry
    reference = load_reference(wav)
    wav16 = np.concatenate([reference.audio_16k, np.zeros(9600, np.float32)])
    with torch.no_grad():
        ssl = load_hubert(hubert_dir)(torch.from_numpy(wav16)[None]).last_hidden_state.transpose(1, 2)
        assert np.array_equal(tiny_model.extract_prompt_tokens(ssl).numpy(), pack.prompt_tokens)

    path = pack.save(tmp_path / "voices" / "captain.npz")
    assert path.stat().st_size < 300_000
    loaded = VoicePack.load(path)
    assert loaded.same_as(pack)
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {"prompt_tokens", "prompt_phones", "ge", "meta"}
        meta = json.loads(str(npz["meta"]))
    assert meta["name"] == "captain" and meta["lang"] == "en" and meta["sovits_sha256"] == "ab" * 32


@pytest.mark.parametrize("seconds", [2.0, 12.0])
def test_references_outside_three_to_ten_seconds_are_rejected(tiny_model, hubert_dir, tmp_path, seconds):
    wav = tmp_path / "ref.wav"
    write_speechlike_wav(wav, seconds, rate=16000)
    with pytest.raises(ConfigError, match=rf"{seconds:.2f} s long; GPT-SoVITS needs 3–10 s"):
        make_voice_pack(tiny_model, hubert_dir, wav, [1, 2], "x", "en", "hi")


def test_prompt_bert_round_trips_as_float16(tmp_path):
    bert = np.random.default_rng(0).standard_normal((3, 1024)).astype(np.float32)
    pack = VoicePack("zh", "zh", "你好", [5, 6], [100, 101, 102], np.ones(8), prompt_bert=bert)
    loaded = VoicePack.load(pack.save(tmp_path / "zh.npz"))
    assert loaded.same_as(pack)
    assert loaded.prompt_bert.dtype == np.float16
    np.testing.assert_array_equal(loaded.prompt_bert, bert.astype(np.float16))


def test_broken_voice_packs_name_the_file_and_field(tmp_path):
    missing = tmp_path / "missing.npz"
    np.savez(missing, prompt_tokens=np.array([1], np.int16), meta=np.array(json.dumps({"name": "a", "lang": "en", "ref_text": ""})))
    with pytest.raises(BundleRejected, match=r"missing\.npz lacks field\(s\) prompt_phones, ge"):
        VoicePack.load(missing)

    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, prompt_tokens=np.array([1], np.int16), prompt_phones=np.array([1], np.int16), ge=np.ones(4, np.float32),
             meta=np.array({"name": "a"}, dtype=object))
    with pytest.raises(BundleRejected, match=r"pickled\.npz"):
        VoicePack.load(pickled)

    wrong_bert = tmp_path / "bert.npz"
    np.savez(wrong_bert, prompt_tokens=np.array([1], np.int16), prompt_phones=np.array([1, 2], np.int16), ge=np.ones(4, np.float32),
             prompt_bert=np.zeros((3, 1024), np.float16), meta=np.array(json.dumps({"name": "a", "lang": "zh", "ref_text": "x"})))
    with pytest.raises(BundleRejected, match=r"bert\.npz: field 'prompt_bert' has shape \(3, 1024\), expected \(2, 1024\)"):
        VoicePack.load(wrong_bert)

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(BundleRejected, match=r"garbage\.npz is not a readable npz"):
        VoicePack.load(garbage)
    assert not zipfile.is_zipfile(garbage)


def test_resampled_rates_are_time_aligned():
    """16 kHz sample n and 32 kHz sample 2n are the same instant (no half-sample shift)."""
    rate = 44100
    t = np.arange(rate) / rate
    tone = np.sin(2 * np.pi * 300 * t + 0.3).astype(np.float32)
    audio_32k, audio_16k = resample(tone, rate, 32000), resample(tone, rate, 16000)
    inner = slice(400, 15600)
    np.testing.assert_allclose(audio_16k[inner], audio_32k[::2][inner], atol=1e-4)
    exact = np.sin(2 * np.pi * 300 * np.arange(16000) / 16000 + 0.3)
    np.testing.assert_allclose(audio_16k[inner], exact[inner], atol=1e-4)
    np.testing.assert_allclose(resample(audio_32k, 32000, 16000)[inner], exact[inner], atol=1e-4)
