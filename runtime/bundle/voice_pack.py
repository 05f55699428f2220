"""The daemon's entry point for `cmd/voice` (runtime/daemon/service.py imports it by this name).

`cmd/voice` names a pack already on the box (with `<pack>.sig` beside it); installing it is `voices.install_voice`.
"""

from __future__ import annotations

import os

from runtime.bundle.voices import VoiceInfo, install_voice
from runtime.keys import TrustStore


def install_voice_pack(pack: str | os.PathLike, bundle_dir: str | os.PathLike, trust: TrustStore) -> VoiceInfo:
    """Verify `pack` against `trust` and install it into bundle_dir/voices/ atomically; raise BundleRejected if not."""
    return install_voice(pack, bundle_dir, trust)
