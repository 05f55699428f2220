"""Install one signed voice pack into a bundle's `voices/` atomically (used by `skyvoice voice install` and the
daemon's `cmd/voice`). The pack is verified and opened (numpy, no pickle) before anything on the box changes."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Optional

import numpy as np

from runtime.bundle.manifest import VOICES_DIR, fsync_dir
from runtime.bundle.signing import SIG_SUFFIX, read_signature_block
from runtime.errors import BundleRejected
from runtime.keys import TrustStore

_LOGGER = logging.getLogger(__name__)

REQUIRED_ARRAYS: Final = ("prompt_tokens", "prompt_phones", "ge", "meta")
VOICE_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_PACK_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True)
class VoiceInfo:
    name: str
    lang: str
    path: Path
    key_id: str


def read_pack_meta(data: bytes, *, what: str) -> dict:
    """Open the pack as a numpy .npz without pickle and check its arrays; return its `meta` JSON."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as pack:
            missing = [name for name in REQUIRED_ARRAYS if name not in pack.files]
            if missing:
                raise BundleRejected(f"voice pack {what} lacks the arrays {missing}; rebuild it with 'skyvoice voice add'")
            meta = json.loads(str(pack["meta"][()]))
            ge = pack["ge"]
    except (OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise BundleRejected(f"voice pack {what} is not a readable .npz without pickle ({exc}); rebuild it") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        raise BundleRejected(f"voice pack {what} has no 'name' in its meta; rebuild it with 'skyvoice voice add'")
    if ge.dtype != np.float32 or ge.ndim != 1:
        raise BundleRejected(f"voice pack {what} has ge {ge.dtype}{list(ge.shape)}; it must be float32 [gin]")
    return meta


def install_voice_bytes(
    data: bytes,
    signature: dict | bytes | str,
    bundle_dir: str | os.PathLike,
    trust: TrustStore,
    *,
    name: Optional[str] = None,
) -> VoiceInfo:
    """Verify a pack given as bytes plus its signature block, then place it as `voices/<name>.npz` (+ `.sig`)."""
    bundle_dir = Path(bundle_dir)
    what = f"'{name}'" if name else "(unnamed)"
    if len(data) > MAX_PACK_BYTES:
        raise BundleRejected(f"voice pack {what} is {len(data)} bytes, over the {MAX_PACK_BYTES} byte limit")
    try:
        block = json.loads(signature) if isinstance(signature, (bytes, str)) else signature
    except ValueError:
        raise BundleRejected(f"voice pack {what}: its signature is not JSON; sign it again with 'skyvoice bundle sign'") from None
    key_id = trust.verify(data, block, what=f"voice pack {what}")
    meta = read_pack_meta(data, what=what)
    name = name or meta["name"]
    if not VOICE_NAME_RE.match(name):
        raise BundleRejected(f"voice name {name!r} must be letters, digits, '_', '-' or '.', at most 64 characters")
    if not (bundle_dir / "manifest.json").is_file():
        raise BundleRejected(f"{bundle_dir} is not a bundle (no manifest.json); give the box's current release")
    voices_dir = bundle_dir / VOICES_DIR
    voices_dir.mkdir(exist_ok=True)
    target = voices_dir / f"{name}.npz"
    sig_target = voices_dir / f"{name}.npz{SIG_SUFFIX}"
    signature_bytes = (json.dumps(block, sort_keys=True) + "\n").encode()
    tmp_pack, tmp_sig = voices_dir / f".{name}.npz.tmp-{os.getpid()}", voices_dir / f".{name}.sig.tmp-{os.getpid()}"
    for path, content in ((tmp_pack, data), (tmp_sig, signature_bytes)):
        with open(path, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    # The pack goes in first only when it is new; replacing a pack swaps the signature last, so a reader sees either
    # the old pair, or the new pack with the old signature (refused by verification, retried), never a silent mix.
    os.replace(tmp_pack, target)
    os.replace(tmp_sig, sig_target)
    fsync_dir(voices_dir)
    _LOGGER.info("voice installed name=%s lang=%s key_id=%s bundle=%s", name, meta.get("lang"), key_id, bundle_dir)
    return VoiceInfo(name=name, lang=str(meta.get("lang", "")), path=target, key_id=key_id)


def install_voice(
    pack: str | os.PathLike, bundle_dir: str | os.PathLike, trust: TrustStore, *, name: Optional[str] = None
) -> VoiceInfo:
    """Install `pack` (with `<pack>.sig` beside it) into bundle_dir/voices/."""
    pack = Path(pack)
    if not pack.is_file():
        raise BundleRejected(f"voice pack {pack} does not exist")
    block = read_signature_block(pack.with_name(pack.name + SIG_SUFFIX), what=f"voice pack {pack}")
    return install_voice_bytes(pack.read_bytes(), block, bundle_dir, trust, name=name or pack.name.removesuffix(".npz"))


def list_voices(bundle_dir: str | os.PathLike) -> list[str]:
    voices_dir = Path(bundle_dir) / VOICES_DIR
    return sorted(path.name[: -len(".npz")] for path in voices_dir.glob("*.npz")) if voices_dir.is_dir() else []
