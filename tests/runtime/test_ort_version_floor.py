"""Runtime settings and bundle forms checked up front: each refusal is one clear sentence."""

from __future__ import annotations

import pytest


def test_a_bundle_form_newer_than_this_onnxruntime_is_refused_in_one_sentence(monkeypatch):
    """int8_block (MatMulNBits, 8 bits) needs onnxruntime >= 1.22 (1.21.1 fails to initialise it)."""
    import onnxruntime

    from runtime.errors import SynthesisError
    from runtime.synth.runner import check_precision_supported

    check_precision_supported("gpt_decode_step", "int8_dynamic", "/b")  # no floor for the other forms
    monkeypatch.setattr(onnxruntime, "__version__", "1.21.1")
    with pytest.raises(SynthesisError, match=r"/b: graph gpt_decode_step is int8_block, which needs onnxruntime >= 1.22 but this box has 1.21.1"):
        check_precision_supported("gpt_decode_step", "int8_block", "/b")
    monkeypatch.setattr(onnxruntime, "__version__", "1.22.0")
    check_precision_supported("gpt_decode_step", "int8_block", "/b")


def test_decode_step_threads_default_to_two_within_the_cores_and_a_bad_count_is_one_clear_error(monkeypatch):
    from runtime.errors import SynthesisError
    from runtime.synth.voice_engine import decode_step_threads

    from runtime.synth import voice_engine

    monkeypatch.setattr(voice_engine, "_usable_cores", lambda: 16)
    assert decode_step_threads() == 2  # the default, whatever the core count
    monkeypatch.setattr(voice_engine, "_usable_cores", lambda: 1)
    assert decode_step_threads() == 1  # never more threads than cores
    monkeypatch.setenv("SKYVOICE_DECODE_STEP_THREADS", "3")
    assert decode_step_threads() == 3
    monkeypatch.setenv("SKYVOICE_DECODE_STEP_THREADS", "two")
    with pytest.raises(SynthesisError, match="SKYVOICE_DECODE_STEP_THREADS='two' must be a whole number"):
        decode_step_threads()
