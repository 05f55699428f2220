"""Fixtures shared by every test folder. Peer fixtures (broker, pty amplifier, tiny bundle) live in the folders' own conftest."""

from __future__ import annotations

import threading

import pytest


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves threads running (pymodbus's system_health_check, in spirit)."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    for thread in leaked:
        thread.join(timeout=5.0)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"test leaked non-daemon threads: {still}"


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """Random-weight GPT .ckpt, SoVITS .pth, tiny HuBERT dir and a reference WAV, in the official formats."""
    pytest.importorskip("torch")
    from export.testing import write_test_set

    return write_test_set(tmp_path_factory.mktemp("checkpoints"), "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_checkpoints, tmp_path_factory):
    """A bundle built from the tiny checkpoints by the real build, with one voice 'test' enrolled by `voice add`."""
    from export.build import BuildConfig, Progress, build_bundle
    from export.voice_add import add_voice

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    config = BuildConfig(gpt_path=tiny_checkpoints["gpt"], sovits_path=tiny_checkpoints["sovits"], out_dir=out, kv_capacity=512)
    build_bundle(config, Progress(enabled=False))
    add_voice(bundle_dir=out, name="test", ref_wav=tiny_checkpoints["ref_wav"], hubert_dir=tiny_checkpoints["hubert"],
              ref_phones="j in1 t ian1 t ian1 q i4 h en3 h ao3 .", lang="zh")
    return out
