"""Voice enrollment: reference recording + transcript phones → `VoicePack` (prompt tokens via HuBERT, ge via ref_enc)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Final, Optional, Sequence

import numpy as np
import torch

from export.reference.sovits import SynthesizerV2
from runtime.errors import ConfigError
from runtime.synth.spectrogram import HUBERT_SAMPLE_RATE_HZ, load_reference, reference_spectrogram
from runtime.synth.voice_pack import VoicePack

_LOGGER = logging.getLogger(__name__)

MIN_REFERENCE_S: Final = 3.0
MAX_REFERENCE_S: Final = 10.0
HUBERT_TAIL_SAMPLES: Final = 9600  # int(32000 · 0.3) zeros appended at 16 kHz, as the official pipeline does


def load_hubert(hubert_dir: str | os.PathLike):
    """A local `chinese-hubert-base` (or any HubertModel) directory; never downloads."""
    try:
        from transformers import HubertModel
    except ImportError as exc:
        raise ConfigError("voice enrollment needs the 'transformers' package; install the build extra") from exc
    path = Path(hubert_dir)
    if not (path / "config.json").is_file():
        raise ConfigError(f"HuBERT directory {path} has no config.json; pass the local chinese-hubert-base folder")
    return HubertModel.from_pretrained(str(path), local_files_only=True).eval()


@torch.no_grad()
def prompt_tokens_from_audio(sovits_model: SynthesizerV2, hubert, audio_16k: np.ndarray) -> np.ndarray:
    """16 kHz reference (+9600 zeros) → HuBERT last_hidden_state → ssl_proj → codebook → tokens [P] int16."""
    wav = np.concatenate([np.asarray(audio_16k, dtype=np.float32), np.zeros(HUBERT_TAIL_SAMPLES, dtype=np.float32)])
    ssl = hubert(torch.from_numpy(wav)[None]).last_hidden_state.transpose(1, 2).float()
    return sovits_model.extract_prompt_tokens(ssl).numpy().astype(np.int16)


@torch.no_grad()
def ge_from_audio(sovits_model: SynthesizerV2, audio_32k: np.ndarray) -> np.ndarray:
    """32 kHz reference → official linear spectrogram → ref_enc → ge [gin] float32."""
    spectrogram = torch.from_numpy(reference_spectrogram(audio_32k))[None]
    return sovits_model.reference_ge(spectrogram).reshape(-1).numpy().astype(np.float32)


def make_voice_pack(
    sovits_model: SynthesizerV2,
    hubert_dir: str | os.PathLike,
    ref_wav: str | os.PathLike,
    prompt_phone_ids: Sequence[int],
    name: str,
    lang: str,
    ref_text: str,
    *,
    prompt_bert: Optional[np.ndarray] = None,
    sovits_sha256: str = "",
) -> VoicePack:
    """Enroll one voice from a 3–10 s reference recording and the phone ids of its transcript."""
    reference = load_reference(ref_wav)
    seconds = reference.audio_16k.size / HUBERT_SAMPLE_RATE_HZ
    if not MIN_REFERENCE_S <= seconds <= MAX_REFERENCE_S:
        raise ConfigError(
            f"reference audio {ref_wav} is {seconds:.2f} s long; GPT-SoVITS needs {MIN_REFERENCE_S:g}–{MAX_REFERENCE_S:g} s, trim or re-record it"
        )
    if len(prompt_phone_ids) == 0:
        raise ConfigError(f"reference transcript {ref_text!r} gave no phones; pass the words spoken in {ref_wav}")
    sovits_model = sovits_model.eval()
    tokens = prompt_tokens_from_audio(sovits_model, load_hubert(hubert_dir), reference.audio_16k)
    ge = ge_from_audio(sovits_model, reference.audio_32k)
    pack = VoicePack(
        name=name,
        lang=lang,
        ref_text=ref_text,
        prompt_tokens=tokens,
        prompt_phones=np.asarray(prompt_phone_ids, dtype=np.int16),
        ge=ge,
        prompt_bert=prompt_bert,
        sovits_sha256=sovits_sha256,
    )
    _LOGGER.info("voice enrolled name=%s seconds=%.2f prompt_tokens=%d gin=%d", name, seconds, tokens.size, ge.size)
    return pack


def write_tiny_hubert_dir(path: str | os.PathLike, seed: int = 0) -> Path:
    """A tiny random HubertModel (hidden 768, 1 layer, the real 320× conv front end) saved with save_pretrained."""
    from transformers import HubertConfig, HubertModel

    config = HubertConfig(
        hidden_size=768,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=128,
        conv_dim=(32, 32, 32, 32, 32, 32, 32),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=16,
    )
    torch.manual_seed(seed)
    model = HubertModel(config).eval()
    path = Path(path)
    model.save_pretrained(str(path))
    return path
