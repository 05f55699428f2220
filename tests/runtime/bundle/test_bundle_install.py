"""flash(): atomic install, health check with rollback, anti-rollback, full disk, keep two releases, .tar bundles."""

from __future__ import annotations

import os
import tarfile
from functools import partial

import pytest

from runtime.bundle.box_facts import BoxFacts
from runtime.bundle.errors import HealthCheckFailed
from runtime.bundle.health import default_health_check

# The fake bundles' Identity graphs cannot speak; synthesis is covered by the lead's end-to-end tests on a real bundle.
load_graphs_check = partial(default_health_check, speak=False)
from runtime.bundle.install import flash
from runtime.bundle.releases import ReleaseStore
from runtime.errors import BundleRejected

CPU_BOX = BoxFacts()


def healthy(release_dir):
    assert (release_dir / "manifest.json").is_file()
    return "ok"


def unhealthy(release_dir):
    raise RuntimeError("test phrase came out silent")


def install(bundle, root, keys, **kwargs):
    kwargs.setdefault("facts", CPU_BOX)
    return flash(bundle, root, keys.trust, kwargs.pop("health_check", healthy), **kwargs)


def test_first_flash_installs_and_switches(make_bundle, keys, tmp_path):
    root = tmp_path / "box"
    result = install(make_bundle("1.0.0"), root, keys)
    store = ReleaseStore(root)
    assert (result.version, result.previous) == ("1.0.0", None)
    assert store.current_version() == "1.0.0"
    assert os.readlink(root / "current") == "releases/1.0.0"
    assert (root / "current" / "graphs" / "gpt_prefill.onnx").is_file()
    assert store.read_pending() is None
    assert not list(store.staging_dir.iterdir())


def test_newer_flash_keeps_last_two_releases(make_bundle, keys, tmp_path):
    root = tmp_path / "box"
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        result = install(make_bundle(version), root, keys)
    store = ReleaseStore(root)
    assert store.versions() == ["1.1.0", "1.2.0"]
    assert (store.current_version(), store.previous_version()) == ("1.2.0", "1.1.0")
    assert result.removed == ("1.0.0",)


def test_failing_health_check_rolls_back_with_the_reason(make_bundle, keys, tmp_path):
    root = tmp_path / "box"
    install(make_bundle("1.0.0"), root, keys)
    restarts = []
    with pytest.raises(HealthCheckFailed, match=r"release 2\.0\.0 failed its health check \(test phrase came out silent\); rolled back to 1\.0\.0"):
        install(make_bundle("2.0.0"), root, keys, health_check=unhealthy, restart=lambda current: restarts.append(os.readlink(current)))
    store = ReleaseStore(root)
    assert store.current_version() == "1.0.0"
    assert store.versions() == ["1.0.0"]
    assert store.read_pending() is None
    assert restarts == ["releases/2.0.0", "releases/1.0.0"]  # restarted into the new release, then back


def test_anti_rollback_refuses_older_unless_forced(make_bundle, keys, tmp_path):
    root = tmp_path / "box"
    install(make_bundle("2.0.0"), root, keys)
    old = make_bundle("1.9.0")
    with pytest.raises(BundleRejected, match=r"bundle 1\.9\.0 is older than the running release 2\.0\.0 \(anti-rollback\)"):
        install(old, root, keys)
    assert ReleaseStore(root).current_version() == "2.0.0"
    with pytest.raises(BundleRejected, match="already the current release"):
        install(make_bundle("2.0.0"), root, keys)
    install(old, root, keys, force=True)
    assert ReleaseStore(root).current_version() == "1.9.0"


def test_full_disk_is_refused_before_copying(make_bundle, keys, tmp_path):
    root = tmp_path / "box"
    install(make_bundle("1.0.0"), root, keys)
    with pytest.raises(BundleRejected, match=r"not enough free disk on .*box: the bundle needs \d+ MiB .* but only 3 MiB are free"):
        install(make_bundle("1.1.0"), root, keys, free_space=lambda path: 3 * 2**20)
    store = ReleaseStore(root)
    assert (store.current_version(), store.versions()) == ("1.0.0", ["1.0.0"])


def test_refusals_leave_the_box_untouched(make_bundle, keys, tmp_path, intruder_key):
    from runtime.bundle.signing import sign_bundle

    root = tmp_path / "box"
    install(make_bundle("1.0.0"), root, keys)
    wrong_target = make_bundle("1.1.0", targets={"l4t": ["36.4"]})
    with pytest.raises(BundleRejected, match=r"targets L4T release 36\.4 .* this box has none"):
        install(wrong_target, root, keys)
    bad_signature = make_bundle("1.2.0")
    sign_bundle(bad_signature, intruder_key)
    with pytest.raises(BundleRejected, match="not among this box's trusted keys"):
        install(bad_signature, root, keys)
    tampered = make_bundle("1.3.0")
    (tampered / "graphs" / "ref_encoder.onnx").write_bytes(b"evil")
    with pytest.raises(BundleRejected, match=r"ref_encoder\.onnx is 4 bytes but the manifest says"):
        install(tampered, root, keys)
    store = ReleaseStore(root)
    assert (store.current_version(), store.versions()) == ("1.0.0", ["1.0.0"])


def test_tar_bundle_installs(make_bundle, keys, tmp_path):
    bundle = make_bundle("1.0.0")
    archive = tmp_path / "bundle.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(bundle, arcname="bundle")
    install(archive, tmp_path / "box", keys)
    assert ReleaseStore(tmp_path / "box").current_version() == "1.0.0"


def test_tar_with_escaping_path_is_refused(tmp_path, keys):
    archive = tmp_path / "evil.tar"
    payload = tmp_path / "payload"
    payload.write_text("x")
    with tarfile.open(archive, "w") as tar:
        tar.add(payload, arcname="../../escape")
    with pytest.raises(BundleRejected, match="unsafe path"):
        install(archive, tmp_path / "box", keys)


def test_default_health_check_loads_graphs_in_a_child_process(make_bundle, keys, tmp_path, identity_graph):
    root = tmp_path / "box"
    install(make_bundle("1.0.0"), root, keys, health_check=load_graphs_check)
    # A bundle that is correctly signed but whose graph ONNX Runtime cannot load: verified, switched, rolled back.
    broken = make_bundle("1.1.0", graph_bytes=lambda name: b"not onnx" if name == "sovits_decoder" else identity_graph(name))
    with pytest.raises(HealthCheckFailed, match=r"sovits_decoder\.onnx does not load.*rolled back to 1\.0\.0"):
        install(broken, root, keys, health_check=load_graphs_check)
    assert ReleaseStore(root).current_version() == "1.0.0"


def test_second_installer_is_refused_while_one_holds_the_lock(make_bundle, keys, tmp_path):
    root = tmp_path / "box"
    store = ReleaseStore(root)
    with store.lock():
        with pytest.raises(BundleRejected, match="another 'skyvoice flash' is running"):
            install(make_bundle("1.0.0"), root, keys)
        assert "in progress" in store.recover().note


def test_voices_installed_on_the_box_survive_a_flash_of_the_same_model(make_bundle, keys, tmp_path, pack_bytes, identity_graph):
    from runtime.bundle.signing import sign_file
    from runtime.bundle.voices import install_voice, list_voices

    root = tmp_path / "box"
    install(make_bundle("1.0.0"), root, keys)
    pack = tmp_path / "mate.npz"
    pack.write_bytes(pack_bytes("mate"))
    sign_file(pack, keys.private)
    install_voice(pack, root / "current", keys.trust)  # what cmd/voice does between flashes

    result = install(make_bundle("1.1.0"), root, keys)
    assert result.carried_voices == ("mate",)
    assert list_voices(root / "current") == ["captain", "mate"]

    other_model = make_bundle("1.2.0", graph_bytes=lambda name: identity_graph(name) + (b"\n" if name == "sovits_decoder" else b""))
    result = install(other_model, root, keys)
    assert (result.carried_voices, result.dropped_voices) == ((), ("mate",))
    assert list_voices(root / "current") == ["captain"]


def test_source_changed_during_the_copy_is_caught_before_the_switch(make_bundle, keys, tmp_path):
    root = tmp_path / "box"
    install(make_bundle("1.0.0"), root, keys)
    bundle = make_bundle("1.1.0")

    def change_source(step):
        if step == "staging":  # the first file is copied; the others not yet
            (bundle / "graphs" / "sovits_decoder.onnx").write_bytes(b"swapped on the stick")

    with pytest.raises(BundleRejected, match=r"staging/1\.1\.0\.\d+/graphs/sovits_decoder\.onnx is 20 bytes but the manifest says"):
        install(bundle, root, keys, step_hook=change_source)
    store = ReleaseStore(root)
    assert (store.current_version(), store.versions()) == ("1.0.0", ["1.0.0"])
    assert not list(store.staging_dir.iterdir())


def test_full_disk_is_refused_before_unpacking_a_tar(make_bundle, keys, tmp_path):
    archive = tmp_path / "bundle.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(make_bundle("1.0.0"), arcname="bundle")
    with pytest.raises(BundleRejected, match="not enough free disk"):
        install(archive, tmp_path / "box", keys, free_space=lambda path: 2**20)
    assert not list((tmp_path / "box" / "staging").iterdir())


def test_failing_restart_command_rolls_back(make_bundle, keys, tmp_path):
    from runtime.bundle.install import command_restart_hook

    root = tmp_path / "box"
    install(make_bundle("1.0.0"), root, keys)
    with pytest.raises(HealthCheckFailed, match=r"restart command 'false' exited 1.*rolled back to 1\.0\.0"):
        install(make_bundle("1.1.0"), root, keys, restart=command_restart_hook(["false"]))
    assert ReleaseStore(root).current_version() == "1.0.0"


def test_hand_made_current_directory_is_not_overwritten(make_bundle, keys, tmp_path):
    root = tmp_path / "box"
    (root / "current").mkdir(parents=True)
    (root / "current" / "notes.txt").write_text("installed by hand")
    with pytest.raises(BundleRejected, match=r"current is a real directory or file, not a link"):
        install(make_bundle("1.0.0"), root, keys)
    assert (root / "current" / "notes.txt").read_text() == "installed by hand"
    assert ReleaseStore(root).read_pending() is None
