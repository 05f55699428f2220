"""Voice pack `voices/<name>.npz` (docs/bundle-format.md): prompt tokens/phones, optional prompt BERT, ge and meta.

Read with `np.load(allow_pickle=False)`: every field is a plain numeric array, and `meta` is a 0-d unicode array of JSON.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Final, Optional

import numpy as np

from runtime.errors import BundleRejected

_LOGGER = logging.getLogger(__name__)

BERT_DIM: Final = 1024
REQUIRED_FIELDS: Final = ("prompt_tokens", "prompt_phones", "ge", "meta")
META_FIELDS: Final = ("name", "lang", "ref_text", "sovits_sha256", "created_at")


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, eq=False)  # numpy fields: compare with `same_as`
class VoicePack:
    """One cloned voice: what the GPT needs as its prompt and the SoVITS speaker vector `ge`."""

    name: str
    lang: str
    ref_text: str
    prompt_tokens: np.ndarray  # int16 [P], P ≥ 1 (25 Hz semantic tokens of the reference)
    prompt_phones: np.ndarray  # int16 [Xp] (phone ids of ref_text)
    ge: np.ndarray  # float32 [gin]
    prompt_bert: Optional[np.ndarray] = None  # float16 [Xp, 1024]; None means zeros (non-Chinese prompt)
    sovits_sha256: str = ""
    created_at: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt_tokens", np.asarray(self.prompt_tokens, dtype=np.int16).reshape(-1))
        object.__setattr__(self, "prompt_phones", np.asarray(self.prompt_phones, dtype=np.int16).reshape(-1))
        object.__setattr__(self, "ge", np.asarray(self.ge, dtype=np.float32).reshape(-1))
        if self.prompt_bert is not None:
            object.__setattr__(self, "prompt_bert", np.asarray(self.prompt_bert, dtype=np.float16))
        if not self.created_at:
            object.__setattr__(self, "created_at", utc_now())
        _check_fields(f"voice pack '{self.name}'", self.prompt_tokens, self.prompt_phones, self.ge, self.prompt_bert)

    def same_as(self, other: "VoicePack") -> bool:
        """Field-by-field equality (arrays by value and dtype)."""
        arrays = ("prompt_tokens", "prompt_phones", "ge")
        same_bert = (self.prompt_bert is None and other.prompt_bert is None) or (
            self.prompt_bert is not None and other.prompt_bert is not None and np.array_equal(self.prompt_bert, other.prompt_bert)
        )
        return (
            self.meta() == other.meta()
            and same_bert
            and all(getattr(self, a).dtype == getattr(other, a).dtype and np.array_equal(getattr(self, a), getattr(other, a)) for a in arrays)
        )

    def meta(self) -> dict[str, str]:
        return {field: getattr(self, field) for field in META_FIELDS}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the npz atomically (temp file then rename); returns the path."""
        path = Path(path)
        arrays = {
            "prompt_tokens": self.prompt_tokens,
            "prompt_phones": self.prompt_phones,
            "ge": self.ge,
            "meta": np.array(json.dumps(self.meta(), ensure_ascii=False, sort_keys=True)),
        }
        if self.prompt_bert is not None:
            arrays["prompt_bert"] = self.prompt_bert
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **arrays)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; a pack is not secret and the daemon may run as another user
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _LOGGER.info("voice pack saved path=%s name=%s prompt_tokens=%d", path, self.name, self.prompt_tokens.size)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "VoicePack":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except FileNotFoundError:
            raise BundleRejected(f"voice pack {path} does not exist; add it with 'skyvoice voice add'") from None
        except (OSError, ValueError, zipfile.BadZipFile) as exc:  # not an npz, truncated, or holds pickled objects
            raise BundleRejected(f"voice pack {path} is not a readable npz without pickles ({exc}); recreate it with 'skyvoice voice add'") from exc
        missing = [field for field in REQUIRED_FIELDS if field not in arrays]
        if missing:
            raise BundleRejected(f"voice pack {path} lacks field(s) {', '.join(missing)}; recreate it with 'skyvoice voice add'")
        meta = _parse_meta(path, arrays["meta"])
        tokens = _typed(path, arrays, "prompt_tokens", np.integer)
        phones = _typed(path, arrays, "prompt_phones", np.integer)
        ge = _typed(path, arrays, "ge", np.floating)
        bert = _typed(path, arrays, "prompt_bert", np.floating) if "prompt_bert" in arrays else None
        _check_fields(f"voice pack {path}", tokens.reshape(-1), phones.reshape(-1), ge.reshape(-1), bert)
        return cls(
            name=meta["name"],
            lang=meta["lang"],
            ref_text=meta["ref_text"],
            prompt_tokens=tokens,
            prompt_phones=phones,
            ge=ge,
            prompt_bert=bert,
            sovits_sha256=str(meta.get("sovits_sha256", "")),
            created_at=str(meta.get("created_at", "")),
        )


def _typed(path: Path, arrays: dict, field: str, kind: type) -> np.ndarray:
    value = arrays[field]
    if not np.issubdtype(value.dtype, kind):
        raise BundleRejected(f"voice pack {path}: field '{field}' has dtype {value.dtype}, expected {kind.__name__}")
    return value


def _parse_meta(path: Path, raw: np.ndarray) -> dict:
    if raw.shape != () or raw.dtype.kind != "U":
        raise BundleRejected(f"voice pack {path}: field 'meta' must be a 0-d unicode array of JSON, got {raw.dtype} {raw.shape}")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as exc:
        raise BundleRejected(f"voice pack {path}: field 'meta' is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise BundleRejected(f"voice pack {path}: field 'meta' must hold a JSON object")
    missing = [key for key in ("name", "lang", "ref_text") if not isinstance(meta.get(key), str)]
    if missing:
        raise BundleRejected(f"voice pack {path}: meta lacks string field(s) {', '.join(missing)}; recreate it with 'skyvoice voice add'")
    return meta


def _check_fields(
    what: str, prompt_tokens: np.ndarray, prompt_phones: np.ndarray, ge: np.ndarray, prompt_bert: Optional[np.ndarray]
) -> None:
    if prompt_tokens.size == 0:
        raise BundleRejected(f"{what}: field 'prompt_tokens' is empty; the reference must give at least one token")
    if prompt_tokens.min() < 0 or prompt_tokens.max() > 1023:
        raise BundleRejected(f"{what}: field 'prompt_tokens' holds ids outside 0..1023")
    if prompt_phones.size == 0:
        raise BundleRejected(f"{what}: field 'prompt_phones' is empty; give the reference transcript")
    if ge.size == 0 or not np.all(np.isfinite(ge)):
        raise BundleRejected(f"{what}: field 'ge' is empty or not finite")
    if prompt_bert is not None and prompt_bert.shape != (prompt_phones.size, BERT_DIM):
        raise BundleRejected(
            f"{what}: field 'prompt_bert' has shape {prompt_bert.shape}, expected ({prompt_phones.size}, {BERT_DIM})"
        )
