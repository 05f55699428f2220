"""Tiny SoVITS: the exported decoder and reference-encoder graphs on ONNX Runtime agree with the PyTorch reference;
the runtime's numpy spectrogram agrees with torch.stft."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from export.graphs import ref_encoder, sovits_decoder
from export.reference.sovits import TINY_SOVITS_HPARAMS, SynthesizerV2, make_random_state_dict
from runtime.synth.runner import OrtRunner
from runtime.synth.sovits_decoder import SovitsDecoder, decoded_frames
from runtime.synth.spectrogram import reference_spectrogram


@pytest.fixture(scope="module")
def tiny_model() -> SynthesizerV2:
    return SynthesizerV2.from_state_dict(TINY_SOVITS_HPARAMS, make_random_state_dict(TINY_SOVITS_HPARAMS, seed=11))


@pytest.fixture(scope="module")
def decoder_graph(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("sovits") / "sovits_decoder.onnx"
    sovits_decoder.export_graph(tiny_model, path)
    return path


def test_decoder_graph_validates(tiny_model, decoder_graph):
    report = sovits_decoder.validate_graph(tiny_model, decoder_graph, seed=5)
    assert report["audio"]["snr_db"] >= 60.0


@pytest.mark.parametrize("noise_scale,speed,tokens", [(0.0, 1.0, 17), (0.5, 1.0, 4), (0.5, 1.3, 9), (0.667, 0.75, 13)])
def test_runtime_decoder_matches_torch_with_the_same_seeded_noise(tiny_model, decoder_graph, noise_scale, speed, tokens):
    rng = np.random.default_rng(tokens)
    codes = rng.integers(0, 1024, size=tokens)
    phones = rng.integers(0, 732, size=7)
    ge = (0.3 * rng.standard_normal(tiny_model.gin_channels)).astype(np.float32)
    decoder = SovitsDecoder(OrtRunner(decoder_graph, providers=["CPUExecutionProvider"]))
    assert decoder.inter_channels == tiny_model.inter_channels  # read from the graph's `noise` input
    audio = decoder.decode(codes, phones, ge, noise_scale, speed, np.random.default_rng(99))
    frames = decoded_frames(tokens, speed)
    noise = np.random.default_rng(99).standard_normal((1, tiny_model.inter_channels, frames)).astype(np.float32)
    with torch.no_grad():
        expected = tiny_model.decode(
            torch.from_numpy(codes)[None], torch.from_numpy(phones)[None], torch.from_numpy(ge).reshape(1, -1, 1),
            noise=torch.from_numpy(noise), noise_scale=noise_scale, speed=speed,
        )[0, 0].numpy()
    assert audio.dtype == np.float32 and audio.shape == (640 * frames,)
    assert sovits_decoder.snr_db(expected, audio) >= 60.0
    np.testing.assert_allclose(audio, expected, atol=5e-4)


@pytest.mark.parametrize("frames,speed", [(2, 1.0), (7 * 2, 1.0), (30, 1.25), (30, 0.6), (18, 1.5), (2, 2.0)])
def test_in_graph_stretch_equals_linear_interpolate(frames, speed):
    y = torch.randn(1, 5, frames)
    out = sovits_decoder.stretch_frames(y, torch.tensor([speed]))
    expected_len = frames if speed == 1.0 else int(np.floor(np.float32(frames) / np.float32(speed))) + 1
    expected = y if speed == 1.0 else F.interpolate(y, size=expected_len, mode="linear")
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_decoded_frames_follow_the_architecture_rule():
    assert decoded_frames(10, 1.0) == 20
    assert decoded_frames(10, 1.25) == 17  # floor(20 / 1.25) + 1
    assert decoded_frames(8, 0.8) == 21  # float32: 16 / 0.8 = 20 exactly, like the official float64 on 0.8


def test_ref_encoder_graph_validates(tiny_model, tmp_path):
    path = tmp_path / "ref_encoder.onnx"
    ref_encoder.export_graph(tiny_model, path)
    report = ref_encoder.validate_graph(tiny_model, path, seed=4)
    assert set(report) == {"ge"}
    runner = OrtRunner(path, providers=["CPUExecutionProvider"])
    spec = np.abs(np.random.default_rng(0).standard_normal((1, 1025, 51))).astype(np.float32)
    ge = runner.run({"spectrogram": spec})["ge"]
    assert ge.shape == (1, tiny_model.gin_channels, 1)


def test_numpy_spectrogram_equals_torch_stft():
    rng = np.random.default_rng(7)
    t = np.arange(32000 * 2) / 32000
    audio = (0.4 * np.sin(2 * np.pi * 220 * t) + 0.1 * rng.standard_normal(t.size)).astype(np.float32)
    ours = reference_spectrogram(audio)
    y = F.pad(torch.from_numpy(audio).double()[None, None], (704, 704), mode="reflect")[:, 0]
    stft = torch.stft(y, 2048, hop_length=640, win_length=2048, window=torch.hann_window(2048, dtype=torch.float64),
                      center=False, return_complex=True)
    theirs = torch.sqrt(stft.real**2 + stft.imag**2 + 1e-8)[0].numpy()
    assert ours.shape == theirs.shape == (1025, 1 + (audio.size + 1408 - 2048) // 640)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * float(theirs.max()))
