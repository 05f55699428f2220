"""`skyvoice voice add`: enroll a voice into a bundle from its reference recording, using the bundle's own graphs.

HuBERT runs here (workstation, torch); the SoVITS parts come from the bundle: `prompt_encoder.onnx` (ssl_proj +
codebook → prompt tokens) and `ref_encoder.onnx` (linear spectrogram → ge). So a voice can be added long after the
build, without the SoVITS checkpoint, and gives exactly the tokens the official pipeline would.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

import numpy as np

from export.voices import HUBERT_TAIL_SAMPLES, MAX_REFERENCE_S, MIN_REFERENCE_S, load_hubert
from runtime.errors import ConfigError

_LOGGER = logging.getLogger(__name__)


def _graph(bundle_dir: Path, name: str):
    from runtime.bundle.manifest import read_manifest
    from runtime.synth.runner import OrtRunner

    manifest = read_manifest(bundle_dir)
    entry = manifest.graphs.get(name)
    if entry is None:
        raise ConfigError(f"bundle {bundle_dir} has no '{name}' graph; rebuild it with this version of 'skyvoice build'")
    return OrtRunner(bundle_dir / entry["file"], providers=["CPUExecutionProvider"])


def _decoder_sha256(bundle_dir: Path) -> str:
    from runtime.bundle.manifest import read_manifest

    entry = read_manifest(bundle_dir).files.get("graphs/sovits_decoder.onnx")
    return entry.sha256 if entry is not None else ""


def hubert_features(hubert_dir: str | os.PathLike, audio_16k: np.ndarray) -> np.ndarray:
    """16 kHz reference + 9600 zeros → HuBERT last_hidden_state as [1, 768, T50] float32 (no normalisation)."""
    import torch

    wav = np.concatenate([np.asarray(audio_16k, dtype=np.float32), np.zeros(HUBERT_TAIL_SAMPLES, dtype=np.float32)])
    with torch.no_grad():
        hidden = load_hubert(hubert_dir)(torch.from_numpy(wav)[None]).last_hidden_state
    return hidden.transpose(1, 2).float().numpy()


def prompt_phonemes(ref_text: Optional[str], lang: str, ref_phones: Optional[str]):
    """(phone ids, Phonemes or None). The official prompt text rule: append "." (en) or "。" when it has no mark."""
    if ref_phones is not None:
        from runtime.text.symbols import parse_phones

        return list(parse_phones(ref_phones)), None
    from runtime.text.frontend import TextFrontend

    text = ref_text.strip()
    if text and text[-1] not in ",.;?!、，。？！；：…":
        text += "." if lang == "en" else "。"
    phonemes = TextFrontend().phonemize(text, lang)
    return list(phonemes.ids), phonemes


def _prompt_bert(bundle_dir: Path, phonemes) -> Optional[np.ndarray]:
    """The prompt's Chinese BERT features when the bundle ships BERT and the prompt has Chinese; else None (zeros)."""
    from runtime.bundle.manifest import read_manifest

    entry = read_manifest(bundle_dir).graphs.get("bert_zh")
    if entry is None or phonemes is None or not any(phonemes.is_zh_mask):
        return None
    from runtime.text.bert_zh import ChineseBertFeatures

    return ChineseBertFeatures(bundle_dir / Path(entry["file"]).parent).phone_features(phonemes).astype(np.float16)


def add_voice(
    *,
    bundle_dir: str | os.PathLike,
    name: str,
    ref_wav: str | os.PathLike,
    hubert_dir: str | os.PathLike,
    ref_text: Optional[str] = None,
    lang: str = "auto",
    ref_phones: Optional[str] = None,
    force: bool = False,
) -> Path:
    from runtime.bundle.voices import VOICE_NAME_RE
    from runtime.synth.spectrogram import HUBERT_SAMPLE_RATE_HZ, load_reference, reference_spectrogram
    from runtime.synth.voice_pack import VoicePack

    bundle_dir = Path(bundle_dir)
    if not VOICE_NAME_RE.match(name):
        raise ConfigError(f"voice name {name!r} must be letters, digits, '_', '-' or '.', at most 64 characters")
    target = bundle_dir / "voices" / f"{name}.npz"
    if target.exists() and not force:
        raise ConfigError(f"voice '{name}' already exists in {bundle_dir}; pass --force to replace it")
    reference = load_reference(ref_wav)
    seconds = reference.audio_16k.size / HUBERT_SAMPLE_RATE_HZ
    if not MIN_REFERENCE_S <= seconds <= MAX_REFERENCE_S:
        raise ConfigError(
            f"reference audio {ref_wav} is {seconds:.2f} s long; GPT-SoVITS needs {MIN_REFERENCE_S:g}-{MAX_REFERENCE_S:g} s, trim or re-record it"
        )
    phones, phonemes = prompt_phonemes(ref_text, lang, ref_phones)
    if not phones:
        raise ConfigError(f"the reference transcript gave no phones; pass the words spoken in {ref_wav}")
    ssl = hubert_features(hubert_dir, reference.audio_16k)
    tokens = _graph(bundle_dir, "prompt_encoder").run({"ssl_features": ssl})["prompt_tokens"].reshape(-1)
    spectrogram = reference_spectrogram(reference.audio_32k)[None].astype(np.float32)
    ge = _graph(bundle_dir, "ref_encoder").run({"spectrogram": spectrogram})["ge"].reshape(-1)
    pack = VoicePack(
        name=name,
        lang=lang,
        ref_text=ref_text if ref_text is not None else ref_phones,
        prompt_tokens=tokens,
        prompt_phones=phones,
        ge=ge,
        prompt_bert=_prompt_bert(bundle_dir, phonemes),
        sovits_sha256=_decoder_sha256(bundle_dir),
    )
    path = pack.save(target)
    _LOGGER.info("voice added name=%s seconds=%.2f prompt_tokens=%d bytes=%d", name, seconds, tokens.size, path.stat().st_size)
    return path
