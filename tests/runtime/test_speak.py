"""`skyvoice speak` on a tiny real bundle: torch-free, 32 kHz mono WAV, tokens out, streaming equal to whole decoding."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile

from runtime.synth.synthesizer import SynthesisOptions

PHONES = "n i3 h ao3 , sh ir4 j ie4 ."


def _speak_without_torch(args: list[str]) -> subprocess.CompletedProcess:
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None
        from runtime.cli import main
        code = main({args!r})
        assert "torch" not in sys.modules or sys.modules["torch"] is None
        sys.exit(code)
        """
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)


def test_speak_phones_without_torch_writes_32k_mono_wav_and_tokens(tiny_bundle, tmp_path):
    out, tokens = tmp_path / "out.wav", tmp_path / "tokens.json"
    result = _speak_without_torch([
        "speak", "--bundle", str(tiny_bundle), "--voice", "test", "--phones", PHONES, "--out", str(out),
        "--seed", "3", "--max-tokens", "40", "--tokens-out", str(tokens),
    ])
    assert result.returncode == 0, result.stderr
    info = soundfile.info(out)
    assert info.samplerate == 32000 and info.channels == 1
    sentences = json.loads(tokens.read_text())["sentences"]
    assert len(sentences) == 1 and 11 <= len(sentences[0]["tokens"]) <= 40
    audio, _ = soundfile.read(out)
    speech = len(sentences[0]["tokens"]) * 1280
    assert len(audio) == speech + int(0.3 * 32000)
    assert np.abs(audio[:speech]).max() > 0.01  # not silence


def test_speak_text_in_chinese_and_english(tiny_bundle, tmp_path):
    result = _speak_without_torch([
        "speak", "--bundle", str(tiny_bundle), "--out", str(tmp_path / "t.wav"), "--seed", "1", "--max-tokens", "20",
        "--lang", "auto", "今天风很大。Please stay inside.",
    ])
    assert result.returncode == 0, result.stderr
    assert soundfile.info(tmp_path / "t.wav").duration > 0.5


def test_unknown_voice_is_one_clear_error(tiny_bundle, tmp_path):
    result = _speak_without_torch(["speak", "--bundle", str(tiny_bundle), "--voice", "nobody", "--phones", PHONES,
                                   "--out", str(tmp_path / "x.wav")])
    assert result.returncode == 2
    assert "voice 'nobody' is not in bundle" in result.stderr and "installed: test" in result.stderr


@pytest.mark.parametrize("noise_scale", [0.0, 0.5])
def test_streamed_audio_matches_whole_utterance(tiny_bundle, noise_scale):
    from runtime.synth.voice_engine import load_synthesizer
    from runtime.text.symbols import parse_phones

    synth = load_synthesizer(tiny_bundle)
    ids = parse_phones(PHONES)
    runs = {}
    for stream in (False, True):
        options = SynthesisOptions(seed=5, noise_scale=noise_scale, max_tokens=60, stream=stream)
        utterances: list = []
        chunks = list(synth.synthesize_phones(ids, voice="test", options=options, utterances=utterances))
        runs[stream] = (np.concatenate([c.samples for c in chunks]), utterances[0].tokens, len(chunks))
    whole, streamed = runs[False][0], runs[True][0]
    assert runs[False][1] == runs[True][1], "streaming must not change the generated tokens"
    assert runs[True][2] > runs[False][2], "streaming should deliver the sentence in several chunks"
    assert whole.shape == streamed.shape
    error = streamed - whole
    snr_db = 10 * np.log10(np.sum(whole**2) / max(np.sum(error**2), 1e-20))
    assert snr_db > 20, f"streamed vs whole SNR {snr_db:.1f} dB"


def test_cancel_stops_synthesis_early(tiny_bundle):
    import threading

    from runtime.synth.voice_engine import load_synthesizer
    from runtime.text.symbols import parse_phones

    synth = load_synthesizer(tiny_bundle)
    cancel = threading.Event()
    chunks = []
    for chunk in synth.synthesize_phones(parse_phones(PHONES), options=SynthesisOptions(seed=1, max_tokens=200), cancel=cancel):
        chunks.append(chunk)
        cancel.set()
    assert len(chunks) == 1


def test_sentences_are_pipelined_in_order_and_closing_early_leaves_no_thread(tiny_bundle):
    """GPT and decoder stages run in their own threads; sentences, tokens and the final marker keep their order,
    and a consumer that stops early leaves no stage running."""
    import threading

    from runtime.synth.voice_engine import load_synthesizer
    from runtime.text.symbols import parse_phones

    synth = load_synthesizer(tiny_bundle)
    items = [(f"s{i}", parse_phones(PHONES), None) for i in range(3)]
    for stream in (False, True):
        utterances: list = []
        options = SynthesisOptions(seed=3, max_tokens=30, stream=stream)
        chunks = list(synth.synthesize_sentences(items, voice=None, options=options, cancel=None, utterances=utterances))
        assert [u.text for u in utterances] == ["s0", "s1", "s2"] and all(u.tokens for u in utterances)
        assert [c.is_last for c in chunks].count(True) == 1 and chunks[-1].is_last
        alone = list(synth.synthesize_sentences(items[:1], voice=None, options=options, cancel=None, utterances=None))
        first = np.concatenate([c.samples for c in alone])
        assert np.array_equal(np.concatenate([c.samples for c in chunks])[: first.size], first), "sentence 1 changed"
    running = synth.synthesize_sentences(items, voice=None, options=SynthesisOptions(seed=3, max_tokens=30), cancel=None, utterances=None)
    next(running)
    running.close()
    assert not any(t.name in ("gpt-tokens", "sovits-audio") and t.is_alive() for t in threading.enumerate())
    assert synth._lock.acquire(blocking=False), "the synthesizer stayed locked"
    synth._lock.release()
