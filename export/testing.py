"""Write random-weight checkpoints in the exact official formats (tiny for tests, full size for benchmarks).

GPT `.ckpt`: torch.save({"weight": OrderedDict("model.<key>" -> fp16), "config": <yaml dict>, "info": "GPT-e<epoch>"}).
SoVITS `.pth`: torch.save({"weight": {key -> fp16, no enc_q}, "config": utils.HParams, "info": "<e>epoch_<s>iteration"}),
with `config` pickled as the class `utils.HParams` exactly as the official trainer writes it, and optionally the
leading `PK` replaced by a version marker as newer WebUI releases do.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import sys
import types
from collections import OrderedDict
from pathlib import Path
from typing import Iterator, Literal, Optional

Size = Literal["tiny", "full"]


class _OfficialHParams:
    """Pickles as `utils.HParams` (the module name is set below); state = its __dict__ of nested HParams."""

    def __init__(self, **kwargs):
        for key, value in kwargs.items():
            setattr(self, key, _OfficialHParams(**value) if isinstance(value, dict) else value)


_OfficialHParams.__module__ = "utils"
_OfficialHParams.__qualname__ = "HParams"
_OfficialHParams.__name__ = "HParams"


@contextlib.contextmanager
def _official_utils_module() -> Iterator[None]:
    """Make `utils.HParams` resolvable for pickle while saving, then restore whatever `utils` was."""
    previous = sys.modules.get("utils")
    module = types.ModuleType("utils")
    module.HParams = _OfficialHParams
    sys.modules["utils"] = module
    try:
        yield
    finally:
        if previous is None:
            sys.modules.pop("utils", None)
        else:
            sys.modules["utils"] = previous


def gpt_config(size: Size) -> dict:
    from export.reference import gpt

    return copy.deepcopy(gpt.TINY_GPT_CONFIG if size == "tiny" else gpt.FULL_GPT_CONFIG)


def sovits_hparams(size: Size) -> dict:
    from export.reference import sovits

    return copy.deepcopy(sovits.TINY_SOVITS_HPARAMS if size == "tiny" else sovits.FULL_SOVITS_HPARAMS)


def write_gpt_checkpoint(path: str | os.PathLike, size: Size = "tiny", seed: int = 0, epoch: int = 15) -> Path:
    import torch

    from export.reference import gpt

    config = gpt_config(size)
    state = gpt.make_random_state_dict(config, seed)
    weight = OrderedDict(("model." + key, tensor.detach().half()) for key, tensor in state.items())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": weight, "config": config, "info": f"GPT-e{epoch}"}, path)
    return path


def write_sovits_checkpoint(
    path: str | os.PathLike,
    size: Size = "tiny",
    seed: int = 0,
    header: Optional[bytes] = None,
    epoch: int = 8,
) -> Path:
    """`header` (e.g. b"05") replaces the zip's leading b"PK", as the WebUI's my_save2 does for newer versions."""
    import torch

    from export.reference import sovits

    hparams = sovits_hparams(size)
    state = sovits.make_random_state_dict(hparams, seed)
    weight = OrderedDict((key, tensor.detach().half()) for key, tensor in state.items() if "enc_q" not in key)
    buffer = io.BytesIO()
    with _official_utils_module():
        torch.save({"weight": weight, "config": _OfficialHParams(**hparams), "info": f"{epoch}epoch_{epoch * 100}iteration"}, buffer)
    data = buffer.getvalue()
    if header is not None:
        data = header + data[2:]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def synthetic_voice(seconds: float = 4.0, sample_rate_hz: int = 32000, seed: int = 0):
    """A voiced-sounding signal: a few harmonics with vibrato and a syllable envelope, plus a little noise; peak 0.8."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate_hz)) / sample_rate_hz
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate_hz
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    audio = 0.25 * voice * envelope + 0.01 * rng.standard_normal(t.size)
    return (audio / np.abs(audio).max() * 0.8).astype(np.float32)


def write_test_reference_wav(path: str | os.PathLike, seconds: float = 4.0, sample_rate_hz: int = 32000, seed: int = 0) -> Path:
    """`synthetic_voice` as a 16-bit WAV file (a stand-in reference recording for tests)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, synthetic_voice(seconds, sample_rate_hz, seed), sample_rate_hz, subtype="PCM_16")
    return path


TINY_BERT_CHARS = "今天天气很好风大请注意各位旅客前方到站我们去公园散步吧，。！？"


def write_tiny_bert_dir(path: str | os.PathLike, seed: int = 0) -> Path:
    """A tiny random BertForMaskedLM with the real 1024-d hidden size (2 layers), and a vocab of a few Chinese chars."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(TINY_BERT_CHARS))
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = BertConfig(vocab_size=len(vocab), hidden_size=1024, num_hidden_layers=2, num_attention_heads=16,
                        intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(seed)
    BertForMaskedLM(config).eval().save_pretrained(str(path))
    return path


def write_test_set(out_dir: str | os.PathLike, size: Size = "tiny", seed: int = 0) -> dict[str, Path]:
    """GPT ckpt, SoVITS pth, a tiny HuBERT directory and a reference WAV: everything `build` + `voice add` need."""
    from export.voices import write_tiny_hubert_dir

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "gpt": write_gpt_checkpoint(out_dir / f"{size}-e15.ckpt", size, seed),
        "sovits": write_sovits_checkpoint(out_dir / f"{size}_e8_s800.pth", size, seed),
        "hubert": write_tiny_hubert_dir(out_dir / "chinese-hubert-tiny"),
        "ref_wav": write_test_reference_wav(out_dir / "ref.wav", seed=seed),
    }
