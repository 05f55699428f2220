"""The native GPT decode step (runtime/native/gpt_step.c via runtime/synth/native_step.py) on tiny INT8 bundles built
by the real build: it computes what the ONNX step graph computes, the synthesizer picks it where it can, and
everything else stays on ONNX Runtime."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")

from runtime.errors import SynthesisError  # noqa: E402
from runtime.native.build import NativeBuildError, build, compiler  # noqa: E402
from runtime.native.library import load_library  # noqa: E402
from runtime.synth.gpt_loop import HostKvCache  # noqa: E402
from runtime.synth.native_step import NativeStepRunner, native_step_runner  # noqa: E402
from runtime.synth.runner import OrtRunner  # noqa: E402

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C compiler: the native step cannot be built here")

PHONES = "n i3 h ao3 , q ian2 f ang1 d ao4 zh an4 ."


@pytest.fixture(scope="module")
def library():
    return load_library(build())


@pytest.fixture(scope="module")
def gpt_form_bundles(tiny_checkpoints, tiny_bundle, tmp_path_factory):
    """Tiny INT8 bundles whose decode step is `int8_column` (weight views) and `int8_block` (block-wise scales)."""
    from export.build import BuildConfig, Progress, build_bundle

    bundles = {}
    for form in ("int8_column", "int8_block"):
        out = tmp_path_factory.mktemp(form) / "bundle"
        config = BuildConfig(gpt_path=tiny_checkpoints["gpt"], sovits_path=tiny_checkpoints["sovits"], out_dir=out,
                             precision="int8", kv_capacity=512, target="cpu", gpt_cpu_form=form, decoder_cpu_form="int8_cpu")
        build_bundle(config, Progress(enabled=False))
        shutil.copytree(tiny_bundle / "voices", out / "voices", dirs_exist_ok=True)
        bundles[form] = out
    return bundles


def _gpt(bundle):
    gpt = json.loads((bundle / "manifest.json").read_text())["gpt"]
    return int(gpt["n_layer"]), int(gpt["d_model"]), int(gpt["n_head"])


def _steps(runner, bundle, count=40, rows=37, seed=3, tokens=None):
    """Logits and K/V rows of `count` steps over a random prefix of `rows` rows; the tokens fed are `tokens` or the
    runner's own argmax."""
    n_layer, d_model, n_head = _gpt(bundle)
    cache = HostKvCache(runner, n_layer=n_layer, d_model=d_model, capacity=512, n_head=n_head)
    rng = np.random.default_rng(seed)
    prefix = [rng.standard_normal((n_layer, 1, rows, d_model)).astype(np.float32) for _ in range(2)]
    kv_len = cache.load_prefill(*prefix)
    logits, fed, token = [], [], 7
    for i in range(count):
        token = tokens[i] if tokens is not None else token
        fed.append(token)
        row = np.asarray(cache.step(token, 3 + i, kv_len + i)).reshape(-1).copy()
        logits.append(row)
        token = int(np.argmax(row[:1024]))
    return np.stack(logits), fed, cache.k_all[:, :, :, : kv_len + count].copy()


@pytest.mark.parametrize("form", ["int8_column", "int8_block"])
def test_the_native_step_computes_what_the_onnx_step_computes(gpt_form_bundles, library, form):
    """Same weights, same per-block quantization of each product's input row: logits and cached K/V rows agree with
    ONNX Runtime's to float rounding over 40 steps, and so does every greedy token."""
    bundle = gpt_form_bundles[form]
    graph = bundle / "graphs" / "gpt_decode_step.onnx"
    _, _, n_head = _gpt(bundle)
    ort_logits, tokens, ort_cache = _steps(OrtRunner(graph, intra_op_threads=1), bundle)
    native = NativeStepRunner(graph, n_head=n_head, threads=2, library=library)
    native_logits, _, native_cache = _steps(native, bundle, tokens=tokens)
    scale = np.sqrt(np.mean(ort_logits**2))
    assert np.abs(native_logits - ort_logits).max() < 1e-3 * scale
    assert np.abs(native_cache - ort_cache).max() < 1e-3 * np.abs(ort_cache).max()
    assert [int(np.argmax(r[:1024])) for r in native_logits] == [int(np.argmax(r[:1024])) for r in ort_logits]


def test_threads_share_the_work_without_changing_a_bit(gpt_form_bundles, library):
    """Each output column and each head is one thread's whole sum, so the result does not depend on the threads."""
    bundle = gpt_form_bundles["int8_column"]
    graph = bundle / "graphs" / "gpt_decode_step.onnx"
    _, _, n_head = _gpt(bundle)
    one = _steps(NativeStepRunner(graph, n_head=n_head, threads=1, library=library), bundle, count=20)
    three = _steps(NativeStepRunner(graph, n_head=n_head, threads=3, library=library), bundle, count=20)
    assert np.array_equal(one[0], three[0]) and np.array_equal(one[2], three[2])


def test_the_portable_loops_agree_with_the_vector_kernel(gpt_form_bundles, library, tmp_path):
    """The portable C (what a CPU without a vector kernel runs, e.g. the Jetson's ARM cores) against this machine's."""
    if not library.fast:
        pytest.skip(f"this machine's build has only the {library.kernel} kernel")
    portable = load_library(build(tmp_path, portable=True))
    assert not portable.fast
    bundle = gpt_form_bundles["int8_block"]
    graph = bundle / "graphs" / "gpt_decode_step.onnx"
    _, _, n_head = _gpt(bundle)
    fast_logits, tokens, fast_cache = _steps(NativeStepRunner(graph, n_head=n_head, threads=2, library=library), bundle, count=25)
    slow_logits, _, slow_cache = _steps(NativeStepRunner(graph, n_head=n_head, threads=2, library=portable), bundle, count=25, tokens=tokens)
    assert np.abs(fast_logits - slow_logits).max() < 1e-4 * np.sqrt(np.mean(fast_logits**2))
    assert np.abs(fast_cache - slow_cache).max() < 1e-4 * np.abs(fast_cache).max()


def test_the_synthesizer_speaks_on_the_native_step_with_onnx_runtimes_tokens(gpt_form_bundles, library, monkeypatch):
    from runtime.synth.synthesizer import SynthesisOptions
    from runtime.synth.voice_engine import load_synthesizer
    from runtime.text.symbols import parse_phones

    bundle = gpt_form_bundles["int8_column"]
    options = SynthesisOptions(seed=2, max_tokens=40, noise_scale=0.0, stream=False, top_k=1)
    results = {}
    for choice in ("auto", "ort"):
        monkeypatch.setenv("SKYVOICE_DECODE_STEP", choice)
        synth = load_synthesizer(bundle)
        chunks = list(synth.synthesize_phones(parse_phones(PHONES), voice="test", options=options))
        results[choice] = (synth.backends["gpt_decode_step"], np.concatenate([c.samples for c in chunks]))
    assert results["auto"][0].startswith("native-int8") == library.fast
    assert not results["ort"][0].startswith("native")
    audio, reference = results["auto"][1], results["ort"][1]
    assert audio.size == reference.size > 0  # the same greedy tokens: the same length of audio
    assert np.abs(audio - reference).max() < 1e-2 * np.abs(reference).max()


def test_graphs_the_native_step_cannot_read_stay_on_onnx_runtime(tiny_bundle, library):
    """An FP32 bundle's step has no 8-bit products: `auto` leaves it to ONNX Runtime, `native` says why it cannot."""
    graph = tiny_bundle / "graphs" / "gpt_decode_step.onnx"
    _, _, n_head = _gpt(tiny_bundle)
    assert native_step_runner(graph, n_head=n_head, threads=1, choice="auto") is None
    with pytest.raises(SynthesisError, match="SKYVOICE_DECODE_STEP=native.*MatMulNBits"):
        native_step_runner(graph, n_head=n_head, threads=1, choice="native")


def test_a_library_not_built_for_this_machine_leaves_the_step_to_onnx_runtime(gpt_form_bundles, tmp_path, monkeypatch):
    monkeypatch.setenv("SKYVOICE_NATIVE_DIR", str(tmp_path / "empty"))
    bundle = gpt_form_bundles["int8_column"]
    graph = bundle / "graphs" / "gpt_decode_step.onnx"
    _, _, n_head = _gpt(bundle)
    assert native_step_runner(graph, n_head=n_head, threads=1, choice="auto") is None
    with pytest.raises(SynthesisError, match="not built"):
        native_step_runner(graph, n_head=n_head, threads=1, choice="native")


def test_an_unknown_step_choice_is_refused(gpt_form_bundles, monkeypatch):
    from runtime.synth.voice_engine import load_synthesizer

    monkeypatch.setenv("SKYVOICE_DECODE_STEP", "gpu")
    with pytest.raises(SynthesisError, match="SKYVOICE_DECODE_STEP='gpu' must be one of auto, native, ort"):
        load_synthesizer(gpt_form_bundles["int8_column"])


def _native_cache(bundle, library, capacity, prefix_rows):
    """A one-thread native step over a host cache of `capacity` rows, `prefix_rows` of them loaded (all ones)."""
    n_layer, d_model, n_head = _gpt(bundle)
    native = NativeStepRunner(bundle / "graphs" / "gpt_decode_step.onnx", n_head=n_head, threads=1, library=library)
    cache = HostKvCache(native, n_layer=n_layer, d_model=d_model, capacity=capacity, n_head=n_head)
    kv_len = cache.load_prefill(*(np.ones((n_layer, 1, prefix_rows, d_model), dtype=np.float32) for _ in range(2)))
    return cache, kv_len


def test_a_token_outside_the_embedding_is_refused_clearly(gpt_form_bundles, library):
    cache, kv_len = _native_cache(gpt_form_bundles["int8_column"], library, capacity=64, prefix_rows=4)
    with pytest.raises(SynthesisError, match="refused token 5000"):
        cache.step(5000, 0, kv_len)


def test_no_compiler_is_a_clear_build_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", "no-such-compiler-here")
    with pytest.raises(NativeBuildError, match="no C compiler found"):
        build(tmp_path, force=True)


def test_the_cache_is_laid_out_once_at_capacity_for_the_native_step(gpt_form_bundles, library):
    """It reads only rows < kv_len: no bucket growth (no moves of every head's rows) and no zeroed tail."""
    cache, kv_len = _native_cache(gpt_form_bundles["int8_column"], library, capacity=200, prefix_rows=5)
    assert cache.rows == 200
    arena = cache.k_all
    for i in range(40):  # past a 32-row bucket
        cache.step(3, i, kv_len + i)
    assert cache.k_all is arena and cache.rows == 200
