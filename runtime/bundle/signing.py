"""Ed25519 signatures for bundles (`manifest.sig` over manifest.json's exact bytes) and voice packs (`<file>.sig`).

A signature file is JSON: {"key_id": "<16 hex>", "signature": "<base64>"} (see `runtime/keys.py`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Union

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.bundle.manifest import MANIFEST_NAME, SIGNATURE_NAME, VOICES_DIR, write_json_atomic
from runtime.errors import BundleRejected
from runtime.keys import TrustStore, load_private_key, sign_bytes

_LOGGER = logging.getLogger(__name__)

PrivateKeyLike = Union[Ed25519PrivateKey, str, os.PathLike]
SIG_SUFFIX = ".sig"


def _private(key: PrivateKeyLike) -> Ed25519PrivateKey:
    return key if isinstance(key, Ed25519PrivateKey) else load_private_key(key)


def signature_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIG_SUFFIX)


def read_signature_block(path: Path, *, what: str) -> dict:
    try:
        block = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleRejected(f"{what}: signature file {path} is missing; sign it with 'skyvoice bundle sign'") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BundleRejected(f"{what}: signature file {path} is not JSON; sign it again with 'skyvoice bundle sign'") from None
    if not isinstance(block, dict):
        raise BundleRejected(f"{what}: signature file {path} must hold a JSON object")
    return block


def sign_file(path: str | os.PathLike, private_key: PrivateKeyLike) -> Path:
    """Sign one file's exact bytes into `<path>.sig`; return the signature path."""
    path = Path(path)
    if not path.is_file():
        raise BundleRejected(f"cannot sign {path}: the file does not exist")
    out = signature_path(path)
    write_json_atomic(out, sign_bytes(_private(private_key), path.read_bytes()))
    _LOGGER.info("file signed file=%s", path)
    return out


def verify_bytes(data: bytes, block: dict, trust: TrustStore, *, what: str) -> str:
    """Check a signature block over data; return the key id or raise BundleRejected naming `what`."""
    return trust.verify(data, block, what=what)


def verify_file(path: str | os.PathLike, trust: TrustStore) -> str:
    """Check `<path>.sig` against the file's exact bytes; return the signing key id."""
    path = Path(path)
    if not path.is_file():
        raise BundleRejected(f"{path} does not exist")
    block = read_signature_block(signature_path(path), what=str(path))
    return trust.verify(path.read_bytes(), block, what=str(path))


def sign_bundle(bundle_dir: str | os.PathLike, private_key: PrivateKeyLike, *, sign_voices: bool = True) -> Path:
    """Write `manifest.sig` over manifest.json's exact bytes (and `voices/*.npz.sig` when sign_voices).

    The manifest is checked against the files first, so a stale manifest is never signed.
    """
    from runtime.bundle.verify import check_files  # verify imports signing; keep the cycle out of import time

    bundle_dir = Path(bundle_dir)
    key = _private(private_key)
    manifest_path = bundle_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        raise BundleRejected(f"{manifest_path} does not exist; write it with 'skyvoice build' before signing")
    data = manifest_path.read_bytes()
    check_files(bundle_dir, data)
    if sign_voices:
        for pack in sorted((bundle_dir / VOICES_DIR).glob("*.npz")):
            sign_file(pack, key)
    out = bundle_dir / SIGNATURE_NAME
    write_json_atomic(out, sign_bytes(key, data))
    _LOGGER.info("bundle signed bundle=%s", bundle_dir)
    return out
