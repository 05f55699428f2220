"""Signature, hashes, unlisted files, voice packs and targets: each refusal is one sentence naming the file."""

from __future__ import annotations

import json

import pytest

from runtime.bundle.box_facts import BoxFacts
from runtime.bundle.manifest import FORMAT_VERSION, read_manifest, write_manifest
from runtime.bundle.signing import sign_bundle, sign_file, verify_file
from runtime.bundle.verify import verify_bundle
from runtime.errors import BundleRejected
from runtime.keys import TrustStore, load_private_key, sign_bytes

ORIN_JP6 = BoxFacts(l4t="36.4.3", tensorrt="10.3.0.30", cuda="12.6.68", gpu_name="Jetson Orin", compute_capability="8.7")


def test_signed_bundle_verifies_and_reads_back(make_bundle, keys):
    bundle = make_bundle("1.2.0")
    manifest = verify_bundle(bundle, keys.trust)
    assert manifest.bundle_version == "1.2.0"
    assert manifest.format_version == FORMAT_VERSION
    assert set(manifest.files) == {f"graphs/{n}.onnx" for n in ("gpt_prefill", "gpt_decode_step", "sovits_decoder", "ref_encoder")}
    assert manifest.targets.onnx_only
    assert read_manifest(bundle).files["graphs/gpt_prefill.onnx"].size == (bundle / "graphs/gpt_prefill.onnx").stat().st_size


def test_tampered_file_is_refused_naming_it(make_bundle, keys):
    bundle = make_bundle()
    graph = bundle / "graphs" / "sovits_decoder.onnx"
    data = bytearray(graph.read_bytes())
    data[-1] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(BundleRejected, match=r"sovits_decoder\.onnx has sha256 .* but the manifest says"):
        verify_bundle(bundle, keys.trust)


def test_truncated_file_is_refused_by_size(make_bundle, keys):
    bundle = make_bundle()
    graph = bundle / "graphs" / "gpt_prefill.onnx"
    graph.write_bytes(graph.read_bytes()[:-3])
    with pytest.raises(BundleRejected, match=r"gpt_prefill\.onnx is \d+ bytes but the manifest says"):
        verify_bundle(bundle, keys.trust)


def test_edited_manifest_is_refused(make_bundle, keys):
    bundle = make_bundle()
    manifest_path = bundle / "manifest.json"
    raw = json.loads(manifest_path.read_text())
    raw["bundle_version"] = "9.9.9"
    manifest_path.write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n")
    with pytest.raises(BundleRejected, match=r"manifest\.json: the signature by key [0-9a-f]{16} does not match"):
        verify_bundle(bundle, keys.trust)


def test_whitespace_change_in_manifest_is_refused(make_bundle, keys):
    bundle = make_bundle()
    manifest_path = bundle / "manifest.json"
    manifest_path.write_bytes(manifest_path.read_bytes() + b" ")
    with pytest.raises(BundleRejected, match="does not match the content"):
        verify_bundle(bundle, keys.trust)


def test_bundle_signed_with_an_untrusted_key_is_refused(make_bundle, keys, intruder_key):
    bundle = make_bundle()
    sign_bundle(bundle, intruder_key)
    with pytest.raises(BundleRejected, match="is not among this box's trusted keys"):
        verify_bundle(bundle, keys.trust)


def test_unsigned_bundle_is_refused(tmp_path, keys, bundle_writer):
    bundle = bundle_writer(tmp_path / "b", None)
    with pytest.raises(BundleRejected, match=r"manifest\.sig is missing; sign it"):
        verify_bundle(bundle, keys.trust)


def test_unlisted_and_missing_files_are_refused(make_bundle, keys):
    bundle = make_bundle()
    (bundle / "graphs" / "extra.onnx").write_bytes(b"x")
    with pytest.raises(BundleRejected, match=r"extra\.onnx is not listed in the manifest"):
        verify_bundle(bundle, keys.trust)
    (bundle / "graphs" / "extra.onnx").unlink()
    (bundle / "graphs" / "ref_encoder.onnx").unlink()
    with pytest.raises(BundleRejected, match=r"ref_encoder\.onnx listed in the manifest is missing"):
        verify_bundle(bundle, keys.trust)


def test_engines_dir_is_not_listed_but_voices_must_be_signed(make_bundle, keys):
    bundle = make_bundle()
    (bundle / "engines").mkdir()
    (bundle / "engines" / "gpt_decode_step.engine").write_bytes(b"built on the box")
    verify_bundle(bundle, keys.trust)
    pack = bundle / "voices" / "captain.npz"
    pack.write_bytes(pack.read_bytes() + b"\0")
    with pytest.raises(BundleRejected, match=r"captain\.npz: the signature by key .* does not match"):
        verify_bundle(bundle, keys.trust)


def test_symlink_in_bundle_is_refused(make_bundle, keys):
    bundle = make_bundle()
    (bundle / "graphs" / "link.onnx").symlink_to("/etc/passwd")
    with pytest.raises(BundleRejected, match="is a symbolic link"):
        verify_bundle(bundle, keys.trust)


def test_newer_format_version_is_refused(make_bundle, keys):
    bundle = make_bundle()
    manifest_path = bundle / "manifest.json"
    raw = json.loads(manifest_path.read_text())
    raw["format_version"] = FORMAT_VERSION + 1
    manifest_path.write_text(json.dumps(raw))
    (bundle / "manifest.sig").write_text(json.dumps(sign_bytes(load_private_key(keys.private), manifest_path.read_bytes())))
    with pytest.raises(BundleRejected, match=r"format_version 2 but this skyvoice reads only 1"):
        verify_bundle(bundle, keys.trust)


def test_writing_the_manifest_again_drops_the_stale_signature(make_bundle, keys):
    bundle = make_bundle()
    write_manifest(bundle, {"bundle_version": "1.0.1", "model_version": "v2", "graphs": {}})
    assert not (bundle / "manifest.sig").exists()


def test_signing_a_stale_manifest_is_refused(make_bundle, keys):
    bundle = make_bundle()
    (bundle / "graphs" / "gpt_prefill.onnx").write_bytes(b"changed after the build")
    with pytest.raises(BundleRejected, match="gpt_prefill.onnx"):
        sign_bundle(bundle, keys.private)


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ({"l4t": ["35.4"]}, r"targets L4T release 35\.4 \(manifest targets\.l4t\) but this box has 36\.4\.3"),
        ({"compute_capability": ["7.2"]}, r"GPU compute capability 7\.2 .* but this box has 8\.7"),
        ({"tensorrt": ["8.5"]}, r"TensorRT version 8\.5 .* but this box has 10\.3\.0\.30"),
    ],
)
def test_wrong_target_is_refused(make_bundle, keys, targets, message):
    bundle = make_bundle(targets=targets)
    verify_bundle(bundle, keys.trust)  # no facts: the workstation does not check targets
    with pytest.raises(BundleRejected, match=message):
        verify_bundle(bundle, keys.trust, facts=ORIN_JP6)


def test_matching_target_and_cpu_box(make_bundle, keys):
    bundle = make_bundle(targets={"l4t": ["36.4"], "compute_capability": ["8.7"], "tensorrt": ["10.3"]})
    assert verify_bundle(bundle, keys.trust, facts=ORIN_JP6).targets.l4t == ("36.4",)
    with pytest.raises(BundleRejected, match="this box has none"):
        verify_bundle(bundle, keys.trust, facts=BoxFacts())


def test_voice_pack_signature_round_trip(tmp_path, keys, intruder_key, pack_bytes):
    pack = tmp_path / "mate.npz"
    pack.write_bytes(pack_bytes("mate"))
    sign_file(pack, keys.private)
    assert verify_file(pack, keys.trust) == next(iter(keys.trust.keys))
    sign_file(pack, intruder_key)
    with pytest.raises(BundleRejected, match="not among this box's trusted keys"):
        verify_file(pack, keys.trust)
    with pytest.raises(BundleRejected, match="not among"):
        verify_file(pack, TrustStore({}))


def test_any_single_byte_change_in_any_listed_file_is_refused(make_bundle, keys):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    bundle = make_bundle()
    files = sorted(read_manifest(bundle).files)

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(index=st.integers(0, len(files) - 1), position=st.integers(0, 10_000), flip=st.integers(1, 255))
    def check(index, position, flip):
        path = bundle / files[index]
        original = path.read_bytes()
        data = bytearray(original)
        data[position % len(data)] ^= flip
        path.write_bytes(bytes(data))
        try:
            with pytest.raises(BundleRejected, match=files[index].replace(".", r"\.")):
                verify_bundle(bundle, keys.trust)
        finally:
            path.write_bytes(original)

    check()
    verify_bundle(bundle, keys.trust)
