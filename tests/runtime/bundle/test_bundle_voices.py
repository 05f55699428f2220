"""Voice packs travel alone (e.g. over MQTT cmd/voice): verified and opened before an atomic install."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from runtime.bundle.signing import sign_file, verify_file
from runtime.bundle.verify import verify_bundle
from runtime.bundle.voices import install_voice, install_voice_bytes, list_voices
from runtime.errors import BundleRejected
from runtime.keys import load_private_key, sign_bytes


def test_signed_pack_installs_beside_the_bundle_voices(make_bundle, keys, tmp_path, pack_bytes):
    bundle = make_bundle()
    pack = tmp_path / "mate.npz"
    pack.write_bytes(pack_bytes("mate"))
    sign_file(pack, keys.private)
    info = install_voice(pack, bundle, keys.trust)
    assert (info.name, info.lang) == ("mate", "en")
    assert list_voices(bundle) == ["captain", "mate"]
    verify_file(bundle / "voices" / "mate.npz", keys.trust)
    verify_bundle(bundle, keys.trust)  # the bundle stays valid: voices/ is outside the manifest, each pack signed
    assert not [p for p in (bundle / "voices").iterdir() if p.name.startswith(".")]


def test_pack_bytes_with_signature_block_as_from_mqtt(make_bundle, keys, pack_bytes):
    bundle = make_bundle()
    data = pack_bytes("bosun")
    block = json.dumps(sign_bytes(load_private_key(keys.private), data))
    assert install_voice_bytes(data, block, bundle, keys.trust).name == "bosun"


def test_bad_signature_changes_nothing(make_bundle, keys, intruder_key, pack_bytes):
    bundle = make_bundle()
    data = pack_bytes("bosun")
    with pytest.raises(BundleRejected, match=r"voice pack \(unnamed\): key id .* is not among this box's trusted keys"):
        install_voice_bytes(data, sign_bytes(load_private_key(intruder_key), data), bundle, keys.trust)
    block = sign_bytes(load_private_key(keys.private), data)
    with pytest.raises(BundleRejected, match="does not match the content"):
        install_voice_bytes(data + b"\0", block, bundle, keys.trust)
    with pytest.raises(BundleRejected, match="its signature is not JSON"):
        install_voice_bytes(data, b"\x00garbage", bundle, keys.trust)
    assert list_voices(bundle) == ["captain"]


def test_pickled_or_incomplete_pack_is_refused_even_when_signed(make_bundle, keys):
    bundle = make_bundle()
    private = load_private_key(keys.private)
    buffer = io.BytesIO()
    np.savez(buffer, prompt_tokens=np.zeros(2, np.int16), prompt_phones=np.zeros(2, np.int16), ge=np.zeros(4, np.float32),
             meta=np.array([{"name": "x"}], dtype=object))
    pickled = buffer.getvalue()
    with pytest.raises(BundleRejected, match="not a readable .npz without pickle"):
        install_voice_bytes(pickled, sign_bytes(private, pickled), bundle, keys.trust)
    buffer = io.BytesIO()
    np.savez(buffer, ge=np.zeros(4, np.float32))
    partial = buffer.getvalue()
    with pytest.raises(BundleRejected, match=r"lacks the arrays \['prompt_tokens', 'prompt_phones', 'meta'\]"):
        install_voice_bytes(partial, sign_bytes(private, partial), bundle, keys.trust)


def test_unsafe_voice_name_is_refused(make_bundle, keys, pack_bytes):
    bundle = make_bundle()
    data = pack_bytes("../../etc/evil")
    with pytest.raises(BundleRejected, match="voice name '../../etc/evil' must be letters"):
        install_voice_bytes(data, sign_bytes(load_private_key(keys.private), data), bundle, keys.trust)
