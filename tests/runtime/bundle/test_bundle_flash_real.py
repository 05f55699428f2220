"""One real flash: a tiny random-weight bundle from the real build, a voice pack, and the default health check, which
loads every graph and speaks the test phrase in a child process (ONNX Runtime, CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from runtime.bundle.box_facts import BoxFacts
from runtime.bundle.install import flash
from runtime.bundle.releases import ReleaseStore
from runtime.bundle.signing import sign_bundle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_bundle(tmp_path_factory):
    pytest.importorskip("torch", reason="building a bundle needs the build extra (scripts/setup dev)")
    from export.testing import write_gpt_checkpoint, write_sovits_checkpoint
    from runtime.cli import main
    from runtime.synth.voice_pack import VoicePack

    work = tmp_path_factory.mktemp("real")
    gpt, sovits = write_gpt_checkpoint(work / "tiny-e15.ckpt"), write_sovits_checkpoint(work / "tiny_e8_s800.pth")
    bundle = work / "bundle"
    assert main(["build", "--gpt", str(gpt), "--sovits", str(sovits), "--out", str(bundle), "--bundle-version", "5.0.0", "--quiet"]) == 0
    gin = json.loads((bundle / "manifest.json").read_text())["sovits"]["gin_channels"]
    rng = np.random.default_rng(0)
    (bundle / "voices").mkdir(exist_ok=True)
    VoicePack(name="captain", lang="en", ref_text="hello there", prompt_tokens=rng.integers(0, 1024, 20),
              prompt_phones=rng.integers(1, 300, 8), ge=rng.standard_normal(gin)).save(bundle / "voices" / "captain.npz")
    return bundle


def test_real_bundle_flashes_and_speaks(real_bundle, keys, tmp_path):
    sign_bundle(real_bundle, keys.private)
    result = flash(real_bundle, tmp_path / "box", keys.trust, facts=BoxFacts())
    assert result.version == "5.0.0"
    assert "audio_s=" in result.health and "backend=onnxruntime" in result.health
    assert ReleaseStore(tmp_path / "box").current_version() == "5.0.0"
