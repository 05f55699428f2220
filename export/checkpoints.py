"""Load the official GPT-SoVITS files: the GPT `.ckpt` (s1) and the SoVITS `.pth` (s2), without the official code.

Both are `torch.save` zips. The `.pth` holds its config as a pickled `utils.HParams` object, which we map onto our own
`HParams` through torch's *weights-only* unpickler (`safe_globals`), so no arbitrary code from the file can run.
Newer `.pth` files replace the zip's leading `PK` with a version marker (`05` v2Pro, `06` v2ProPlus, ...); we put
`PK` back in memory before loading. The model version is decided from the keys and shapes, never from the file size.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from export.errors import CheckpointError

_LOGGER = logging.getLogger(__name__)

HEADER_VERSIONS = {b"00": "v1", b"01": "v2", b"02": "v3", b"03": "v3-lora", b"04": "v4-lora", b"05": "v2Pro", b"06": "v2ProPlus"}
SUPPORTED_SOVITS_VERSIONS = ("v2",)
V1_TEXT_ROWS = 322
V2_TEXT_ROWS = 732


class HParams:
    """Stand-in for the official `utils.HParams`: attribute and item access over nested values."""

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __contains__(self, key: str) -> bool:
        return key in self.__dict__

    def to_dict(self) -> dict:
        return {k: v.to_dict() if isinstance(v, HParams) else v for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class GptCheckpoint:
    path: Path
    state_dict: dict  # str -> float32 tensor, keys without the "model." prefix
    config: dict
    info: str


@dataclass(frozen=True)
class SovitsCheckpoint:
    path: Path
    state_dict: dict  # str -> float32 tensor (fp16 in the file), enc_q.* dropped
    hparams: dict  # the pickled HParams as plain nested dicts
    version: str
    info: str


def _torch_load(path: Path, data: bytes) -> Any:
    import zipfile

    import torch

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.namelist()
    except zipfile.BadZipFile:
        raise CheckpointError(
            f"{path} is truncated or not a PyTorch checkpoint (its zip directory is missing); copy the file again"
        ) from None

    try:
        with torch.serialization.safe_globals([(HParams, "utils.HParams")]):
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError/EOFError/UnpicklingError for bad archives
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "zip" in text.lower() or isinstance(exc, EOFError) or "central directory" in text.lower():
            raise CheckpointError(f"{path} is truncated or not a PyTorch checkpoint ({text}); copy the file again") from None
        raise CheckpointError(f"{path} cannot be read as a GPT-SoVITS checkpoint: {text}") from None


def _read_bytes(path: str | os.PathLike) -> tuple[Path, bytes]:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {path} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint path {path} is a directory, not a .ckpt/.pth file") from None
    if len(data) < 64:
        raise CheckpointError(f"{path} is only {len(data)} bytes: truncated or not a checkpoint")
    return path, data


def _to_float32(weights: Mapping, path: Path) -> dict:
    import torch

    out = {}
    for key, value in weights.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: entry '{key}' of 'weight' is a {type(value).__name__}, not a tensor")
        out[key] = value.float() if value.is_floating_point() else value
    return out


def load_gpt_checkpoint(path: str | os.PathLike) -> GptCheckpoint:
    """Read an s1 GPT `.ckpt`: {"weight": fp16 tensors with "model." prefix, "config": dict, "info": str}."""
    path, data = _read_bytes(path)
    obj = _torch_load(path, data)
    if not isinstance(obj, dict) or "weight" not in obj or "config" not in obj:
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path} is not a GPT-SoVITS GPT checkpoint: expected keys 'weight' and 'config', found {keys}")
    config = obj["config"]
    if isinstance(config, HParams):
        config = config.to_dict()
    if not isinstance(config, dict) or "model" not in config:
        raise CheckpointError(f"{path}: 'config' has no 'model' section; is this a SoVITS .pth passed as --gpt?")
    weights = obj["weight"]
    if any(not k.startswith("model.") for k in weights):
        bad = next(k for k in weights if not k.startswith("model."))
        raise CheckpointError(f"{path}: weight key '{bad}' lacks the 'model.' prefix of GPT checkpoints; is this a SoVITS .pth?")
    state = _to_float32({k[len("model."):]: v for k, v in weights.items()}, path)
    rows = state.get("ar_text_embedding.word_embeddings.weight")
    if rows is not None and rows.shape[0] != config["model"].get("phoneme_vocab_size", rows.shape[0]):
        raise CheckpointError(
            f"{path}: ar_text_embedding has {rows.shape[0]} rows but config.model.phoneme_vocab_size is "
            f"{config['model'].get('phoneme_vocab_size')}"
        )
    _LOGGER.info("gpt checkpoint loaded path=%s tensors=%d info=%s", path, len(state), obj.get("info"))
    return GptCheckpoint(path, state, config, str(obj.get("info", "")))


def sovits_version(path: Path, header: bytes, state: Mapping) -> str:
    """v1/v2 from the text-embedding rows; v2Pro/v2ProPlus/v3/v4 from the header marker or their extra keys."""
    if header in HEADER_VERSIONS and header not in (b"00", b"01"):
        return HEADER_VERSIONS[header]
    if "sv_emb.weight" in state:
        return "v2Pro"
    if any(k.startswith("cfm.") for k in state):
        return "v3"
    emb = state.get("enc_p.text_embedding.weight")
    if emb is None:
        raise CheckpointError(f"{path}: no 'enc_p.text_embedding.weight'; this is not a SoVITS v1/v2 generator file")
    rows = emb.shape[0]
    if rows == V1_TEXT_ROWS:
        return "v1"
    if rows == V2_TEXT_ROWS:
        return "v2"
    raise CheckpointError(f"{path}: enc_p.text_embedding has {rows} rows; expected {V2_TEXT_ROWS} (v2) or {V1_TEXT_ROWS} (v1)")


def load_sovits_checkpoint(path: str | os.PathLike) -> SovitsCheckpoint:
    """Read an s2 SoVITS `.pth`: {"weight": fp16 tensors (no enc_q), "config": utils.HParams, "info": str}."""
    path, data = _read_bytes(path)
    header = data[:2]
    if header != b"PK":
        if header not in HEADER_VERSIONS:
            raise CheckpointError(f"{path} starts with bytes {header!r}: neither a zip ('PK') nor a known GPT-SoVITS version marker")
        data = b"PK" + data[2:]
    obj = _torch_load(path, data)
    if not isinstance(obj, dict) or "weight" not in obj or "config" not in obj:
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path} is not a GPT-SoVITS SoVITS checkpoint: expected keys 'weight' and 'config', found {keys}")
    hparams = obj["config"]
    hparams = hparams.to_dict() if isinstance(hparams, HParams) else hparams
    if not isinstance(hparams, dict) or "model" not in hparams or "data" not in hparams:
        raise CheckpointError(f"{path}: 'config' lacks the 'data'/'model' sections of configs/s2.json; is this a GPT .ckpt passed as --sovits?")
    weights = obj["weight"]
    if any(k.startswith("model.") for k in weights):
        raise CheckpointError(f"{path}: weight keys start with 'model.' like a GPT checkpoint; is this a GPT .ckpt passed as --sovits?")
    state = _to_float32({k: v for k, v in weights.items() if "enc_q" not in k}, path)
    version = sovits_version(path, header, state)
    if version not in SUPPORTED_SOVITS_VERSIONS:
        raise CheckpointError(
            f"{path} is a SoVITS {version} checkpoint; this release exports {', '.join(SUPPORTED_SOVITS_VERSIONS)} only"
        )
    _LOGGER.info("sovits checkpoint loaded path=%s version=%s tensors=%d", path, version, len(state))
    return SovitsCheckpoint(path, state, hparams, version, str(obj.get("info", "")))


def load_state_strict(module: Any, state: Mapping, path: Path, what: str) -> None:
    """`load_state_dict(strict=True)` with one clear sentence naming the file and the first mismatching key/shape."""
    expected = module.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise CheckpointError(f"{path}: {what} key '{key}' (shape {list(tensor.shape)}) is missing; the file is not a complete {what} checkpoint")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{path}: {what} key '{key}' has shape {list(state[key].shape)}, the config implies {list(tensor.shape)}"
            )
    extra = [k for k in state if k not in expected]
    if extra:
        raise CheckpointError(f"{path}: unexpected {what} key '{extra[0]}' ({len(extra)} unexpected in all); is this a different model version?")
    module.load_state_dict(dict(state), strict=True)
