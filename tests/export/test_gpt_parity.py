"""Tiny random GPT → both ONNX graphs → ONNX Runtime agrees with torch, and the numpy loop with the torch oracle."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch

from export.graphs import gpt_decode_step, gpt_prefill
from export.reference.gpt import TINY_GPT_CONFIG, build_model, make_random_state_dict
from export.reference.gpt_infer import infer_tokens, logits_to_probs
from runtime.errors import SynthesisError
from runtime.synth.gpt_loop import GptDecoder, HostKvCache
from runtime.synth.runner import OrtRunner
from runtime.synth.sampling import probabilities
from runtime.synth.synthesizer import SynthesisOptions

LOGITS_ATOL = 1e-4
EOS = 1024
GREEDY = SynthesisOptions(top_k=1, max_tokens=48)
CAPACITY = 160


def tiny_model(seed: int = 0, eos_wins: bool = False):
    state = make_random_state_dict(TINY_GPT_CONFIG, seed)
    if eos_wins:  # flip the EOS row: its logit now leads every step
        state["ar_predict_layer.weight"][EOS] *= -4.0
    return build_model(TINY_GPT_CONFIG, state)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """One tiny model exported once; ORT runners for both graphs."""
    out = tmp_path_factory.mktemp("gpt_graphs")
    model = tiny_model()
    gpt_prefill.export_graph(model, out / "gpt_prefill.onnx")
    gpt_decode_step.export_graph(model, out / "gpt_decode_step.onnx")
    prefill = OrtRunner(out / "gpt_prefill.onnx", providers=["CPUExecutionProvider"], intra_op_threads=1)
    step = OrtRunner(out / "gpt_decode_step.onnx", providers=["CPUExecutionProvider"], intra_op_threads=1)
    return {"model": model, "dir": out, "prefill": prefill, "step": step}


def utterance(seed: int, phones: int = 17, prompt: int = 9):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 732, size=phones, dtype=np.int64),
        rng.standard_normal((phones, 1024)).astype(np.float32),
        rng.integers(0, 1024, size=prompt, dtype=np.int64),
    )


def decoder(graphs, **kwargs) -> GptDecoder:
    return GptDecoder(graphs["prefill"], graphs["step"], n_layer=2, d_model=64, capacity=CAPACITY, **kwargs)


def oracle(model, phones, bert, prompt, **kwargs) -> list[int]:
    return infer_tokens(model, torch.from_numpy(phones), torch.from_numpy(bert), torch.from_numpy(prompt), **kwargs)


def shared_noise(seed: int):
    """The same Exp(1) stream for both sides: numpy for the decoder, torch tensors for the oracle."""
    rng = np.random.default_rng(seed)
    return lambda n: torch.from_numpy(rng.standard_exponential(n).astype(np.float32))


def test_graphs_are_flat_opset17_with_the_contract_names(graphs):
    for name, spec in (("gpt_prefill.onnx", gpt_prefill.SPEC), ("gpt_decode_step.onnx", gpt_decode_step.spec_for(2))):
        model = onnx.load(str(graphs["dir"] / name))
        ops = {n.op_type for n in model.graph.node}
        assert not ops & {"Loop", "If", "Scan"}
        assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) <= 17
        assert tuple(i.name for i in model.graph.input) == spec.inputs
        assert tuple(o.name for o in model.graph.output) == spec.outputs
    def dims(path, name):
        value = next(o for o in onnx.load(str(graphs["dir"] / path)).graph.output if o.name == name)
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    assert dims("gpt_prefill.onnx", "logits") == dims("gpt_decode_step.onnx", "logits") == [1, 1025]
    assert dims("gpt_prefill.onnx", "k_prefill") == [2, 1, "prefix_len", 64]
    assert dims("gpt_decode_step.onnx", "v_new") == [2, 1, 1, 64]
    assert gpt_decode_step.SPEC.inputs[:5] == ("token", "audio_position", "kv_len", "k_cache_0", "v_cache_0")
    assert gpt_decode_step.SPEC.inputs[-1] == "v_cache_23"


def test_each_graph_builds_its_attention_mask_once_not_per_layer(graphs):
    # A per-layer Where over freshly filled scores took a fifth of the INT8 prefill; an additive mask is one Add each.
    for name in ("gpt_prefill.onnx", "gpt_decode_step.onnx"):
        ops = [n.op_type for n in onnx.load(str(graphs["dir"] / name)).graph.node]
        assert ops.count("Where") <= 1, name


def test_validate_graph_reports_small_diffs_at_other_shapes(graphs):
    prefill = gpt_prefill.validate_graph(graphs["model"], graphs["dir"] / "gpt_prefill.onnx", seed=4)
    step = gpt_decode_step.validate_graph(graphs["model"], graphs["dir"] / "gpt_decode_step.onnx", seed=4)
    assert set(prefill) == {"logits", "k_prefill", "v_prefill"} and set(step) == {"logits", "k_new", "v_new"}
    assert prefill["logits"]["max_abs"] <= LOGITS_ATOL and step["logits"]["max_abs"] <= LOGITS_ATOL


def test_prefill_and_decode_steps_match_torch(graphs):
    model = graphs["model"]
    phones, bert, prompt = utterance(1)
    ort = graphs["prefill"].run({"phones": phones[None], "bert_features": bert[None], "prompt_tokens": prompt[None]})
    with torch.no_grad():
        logits, k_ref, v_ref = model.prefill(torch.from_numpy(phones[None]), torch.from_numpy(bert[None]), torch.from_numpy(prompt[None]))
    assert ort["k_prefill"].shape == (2, 1, 17 + 9, 64)
    assert np.abs(ort["logits"] - logits.numpy()).max() <= LOGITS_ATOL
    k_ort = [ort["k_prefill"][i] for i in range(2)]
    v_ort = [ort["v_prefill"][i] for i in range(2)]
    tokens = [5, 900, 17, 333, 1023, 64]
    for idx, token in enumerate(tokens):
        feeds = {
            "token": np.array([[token]], dtype=np.int64),
            "audio_position": np.array([9 + idx], dtype=np.int64),
            "kv_len": np.array([k_ort[0].shape[1]], dtype=np.int64),
        }
        for i in range(2):
            feeds[f"k_cache_{i}"] = gpt_decode_step.to_head_major(k_ort[i], heads=4)
            feeds[f"v_cache_{i}"] = gpt_decode_step.to_head_major(v_ort[i], heads=4)
        out = graphs["step"].run(feeds)
        with torch.no_grad():
            logits, k_new, v_new = model.decode_step(
                torch.tensor([[token]]), torch.tensor([9 + idx]), torch.tensor([len(k_ref[0][0])]), k_ref, v_ref
            )
        assert np.abs(out["logits"] - logits.numpy()).max() <= LOGITS_ATOL, f"step {idx}"
        k_ref = [torch.cat([k, n], dim=1) for k, n in zip(k_ref, k_new)]
        v_ref = [torch.cat([v, n], dim=1) for v, n in zip(v_ref, v_new)]
        k_ort = [np.concatenate([k, out["k_new"][i]], axis=1) for i, k in enumerate(k_ort)]
        v_ort = [np.concatenate([v, out["v_new"][i]], axis=1) for i, v in enumerate(v_ort)]


def test_a_ready_kv_step_is_used_as_is(graphs):
    """A `KvStep` (as TensorRT's device-resident TrtDecodeStep) replaces the decoder's own host cache."""
    phones, bert, prompt = utterance(3)
    kv = HostKvCache(graphs["step"], n_layer=2, d_model=64, capacity=CAPACITY, static_cache=True)
    dec = GptDecoder(graphs["prefill"], kv, n_layer=2, d_model=64, capacity=CAPACITY)
    assert dec.kv is kv
    assert dec.generate_all(phones, bert, prompt, GREEDY) == decoder(graphs).generate_all(phones, bert, prompt, GREEDY)
    with pytest.raises(SynthesisError, match="cache is full at 160 rows"):
        kv.step(1, 0, CAPACITY)


def test_host_cache_grows_in_buckets_without_changing_a_token(graphs):
    """Head-major host buffers re-laid out every few rows (tiny buckets: many growths) and the whole-capacity form
    give the oracle's tokens; a step binds the whole bucket and the graph masks the rows past kv_len."""
    phones, bert, prompt = utterance(6)
    want = oracle(graphs["model"], phones, bert, prompt, greedy=True, max_tokens=GREEDY.max_tokens)
    for kv in (
        HostKvCache(graphs["step"], n_layer=2, d_model=64, capacity=CAPACITY, bucket_rows=5),
        HostKvCache(graphs["step"], n_layer=2, d_model=64, capacity=CAPACITY, static_cache=True),
    ):
        dec = GptDecoder(graphs["prefill"], kv, n_layer=2, d_model=64, capacity=CAPACITY)
        assert dec.generate_all(phones, bert, prompt, GREEDY) == want
        assert kv.heads == 4 and kv.k_all.shape[2] == 4  # heads read from the graph's declared k_cache_0
        # the same cache again, for a shorter utterance: the layout shrinks, stale rows must not leak in
        short = utterance(7, phones=5, prompt=3)
        assert dec.generate_all(*short, GREEDY) == oracle(graphs["model"], *short, greedy=True, max_tokens=GREEDY.max_tokens)
    assert HostKvCache(graphs["step"], n_layer=2, d_model=64, capacity=CAPACITY, bucket_rows=5).rows == 0


def test_a_token_major_decode_graph_is_refused_with_a_rebuild_hint(tmp_path):
    """Bundles built before the head-major cache layout take k_cache_i as [1,C,D]: refused in one sentence."""
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, "cache_len", 64]) for n in ("k_cache_0", "v_cache_0")]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1025])]
    nodes = [helper.make_node("ReduceSum", ["k_cache_0"], ["summed"], keepdims=0), helper.make_node("Identity", ["summed"], ["logits"])]
    model = helper.make_model(helper.make_graph(nodes, "old", inputs, outputs), opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "old.onnx"))
    runner = OrtRunner(tmp_path / "old.onnx", providers=["CPUExecutionProvider"])
    with pytest.raises(SynthesisError, match="built by an older skyvoice; rebuild it"):
        HostKvCache(runner, n_layer=1, d_model=64, capacity=CAPACITY)


def test_kv_cache_oracle_equals_full_recompute(graphs):
    phones, bert, prompt = utterance(2)
    cached = oracle(graphs["model"], phones, bert, prompt, greedy=True, max_tokens=40)
    recomputed = oracle(graphs["model"], phones, bert, prompt, greedy=True, max_tokens=40, use_kv_cache=False)
    assert cached == recomputed and len(cached) == 40


@pytest.mark.parametrize("static_cache", [False, True], ids=["prefix-views", "static-capacity"])
def test_greedy_tokens_match_the_torch_oracle(graphs, static_cache):
    phones, bert, prompt = utterance(3)
    ours = decoder(graphs, static_cache=static_cache).generate_all(phones, bert, prompt, GREEDY)
    theirs = oracle(graphs["model"], phones, bert, prompt, greedy=True, max_tokens=GREEDY.max_tokens)
    assert len(ours) == GREEDY.max_tokens >= 40
    assert ours == theirs


@pytest.mark.parametrize(
    "options",
    [
        SynthesisOptions(max_tokens=60),
        SynthesisOptions(top_k=5, top_p=0.8, temperature=0.7, repetition_penalty=1.1, max_tokens=60),
        SynthesisOptions(top_k=1024, top_p=1.0, temperature=1.3, repetition_penalty=1.0, max_tokens=60),
    ],
    ids=["defaults", "topp-temp", "wide"],
)
def test_sampled_tokens_match_the_oracle_with_shared_noise(graphs, options):
    phones, bert, prompt = utterance(4)
    ours = decoder(graphs).generate_all(phones, bert, prompt, options, rng=np.random.default_rng(11))
    theirs = oracle(
        graphs["model"], phones, bert, prompt,
        top_k=options.top_k, top_p=options.top_p, temperature=options.temperature,
        repetition_penalty=options.repetition_penalty, exp_noise=shared_noise(11), max_tokens=options.max_tokens,
    )
    assert ours == theirs and len(ours) > 11


def test_numpy_probabilities_match_torch_logits_to_probs():
    rng = np.random.default_rng(5)
    for top_k, top_p, temperature, rp in [(15, 1.0, 1.0, 1.35), (3, 0.6, 0.5, 1.2), (1025, 0.95, 2.0, 1.0), (1, 1.0, 0.0, 1.35)]:
        logits = (rng.standard_normal(1025) * 3).astype(np.float32)
        previous = rng.integers(0, 1024, size=30)
        _, ours = probabilities(logits, previous, top_k=top_k, top_p=top_p, temperature=temperature, repetition_penalty=rp)
        theirs = logits_to_probs(
            torch.from_numpy(logits.copy())[None], torch.from_numpy(previous)[None],
            top_k=top_k, top_p=top_p, temperature=temperature, repetition_penalty=rp,
        )
        np.testing.assert_allclose(ours, theirs[0].numpy(), atol=1e-6)


def test_no_eos_before_step_11_then_argmax_eos_stops(tmp_path):
    model = tiny_model(eos_wins=True)
    gpt_prefill.export_graph(model, tmp_path / "p.onnx")
    gpt_decode_step.export_graph(model, tmp_path / "d.onnx")
    dec = GptDecoder(OrtRunner(tmp_path / "p.onnx", providers=["CPUExecutionProvider"]),
                     OrtRunner(tmp_path / "d.onnx", providers=["CPUExecutionProvider"]),
                     n_layer=2, d_model=64, capacity=CAPACITY)
    phones, bert, prompt = utterance(6)
    for options, kwargs in ((GREEDY, {"greedy": True}), (SynthesisOptions(max_tokens=48), {"exp_noise": shared_noise(2)})):
        ours = dec.generate_all(phones, bert, prompt, options, rng=np.random.default_rng(2))
        theirs = oracle(model, phones, bert, prompt, max_tokens=options.max_tokens, **kwargs)
        assert len(ours) == 11 and EOS not in ours
        assert ours == theirs


def test_chunks_are_16_tokens_and_join_to_the_whole(graphs):
    phones, bert, prompt = utterance(7)
    options = replace(GREEDY, max_tokens=40)
    chunks = list(decoder(graphs).generate(phones, bert, prompt, options))
    assert [len(c) for c in chunks] == [16, 16, 8]
    assert sum(chunks, []) == decoder(graphs).generate_all(phones, bert, prompt, options)
    assert [len(c) for c in decoder(graphs, chunk_tokens=5).generate(phones, bert, prompt, options)] == [5] * 8
    early = list(decoder(graphs).generate(phones, bert, prompt, options, first_chunk_tokens=6))  # a streaming first piece
    assert [len(c) for c in early] == [6, 16, 16, 2] and sum(early, []) == sum(chunks, [])


def test_cancel_ends_the_stream_early_without_error(graphs):
    phones, bert, prompt = utterance(8)
    cancel = threading.Event()
    stream = decoder(graphs).generate(phones, bert, prompt, replace(GREEDY, max_tokens=100), cancel=cancel)
    first = next(stream)
    cancel.set()
    assert len(first) == 16 and list(stream) == []


def test_capacity_overflow_and_bad_inputs_are_refused_with_the_numbers():
    phones, bert, prompt = utterance(9, phones=100, prompt=50)
    dec = GptDecoder(object(), object(), n_layer=2, d_model=64, capacity=CAPACITY)
    with pytest.raises(SynthesisError, match=r"100\) \+ prompt tokens \(50\) \+ max_tokens \(20\) = 170 exceed .* 160"):
        dec.generate(phones, bert, prompt, SynthesisOptions(max_tokens=20))
    with pytest.raises(SynthesisError, match="prompt_tokens are empty"):
        dec.generate(phones, bert, prompt[:0], SynthesisOptions(max_tokens=2))
    with pytest.raises(SynthesisError, match="semantic codes in 0..1023"):
        dec.generate(phones[:5], bert[:5], np.array([3, 1024]), SynthesisOptions(max_tokens=2))
    with pytest.raises(SynthesisError, match="4 rows but phones have 5"):
        dec.generate(phones[:5], bert[:4], prompt[:3], SynthesisOptions(max_tokens=2))
    with pytest.raises(SynthesisError, match="max_tokens 1501"):
        GptDecoder(object(), object(), n_layer=2, d_model=64, capacity=4000).generate(
            phones[:5], bert[:5], prompt[:3], SynthesisOptions(max_tokens=1501))


class ScriptedLogits:
    """A stand-in graph pair whose logits the test dictates (the loop's stop rules, without a model)."""

    def __init__(self, rows):
        self.rows = list(rows)
        self.calls = []

    def run(self, inputs, outputs=None):
        self.calls.append(dict(inputs))
        row = np.asarray(self.rows.pop(0), dtype=np.float32)[None]
        kv = np.zeros((1, 1, 1, 4), dtype=np.float32)
        if "phones" in inputs:
            kv = np.zeros((1, 1, inputs["phones"].shape[1] + inputs["prompt_tokens"].shape[1], 4), dtype=np.float32)
            return {"logits": row, "k_prefill": kv, "v_prefill": kv}
        return {"logits": row, "k_new": kv, "v_new": kv}


def one_hot_row(winner: int, runner_up: int | None = None) -> np.ndarray:
    row = np.full(1025, -20.0, dtype=np.float32)
    row[winner] = 10.0
    if runner_up is not None:
        row[runner_up] = 9.99
    return row


def test_a_sampled_eos_stops_even_when_argmax_is_not_eos():
    # step 11 (first step where EOS may appear): token 3 leads, EOS is a close second; noise favours EOS.
    rows = [one_hot_row(100 + i) for i in range(11)] + [one_hot_row(3, runner_up=EOS)]
    script = ScriptedLogits(rows)
    dec = GptDecoder(script, script, n_layer=1, d_model=4, capacity=64)

    class FavourEos:
        def standard_exponential(self, n):
            q = np.full(n, 1000.0)
            if n == 1025:
                q[EOS] = 1e-3
            return q

    options = SynthesisOptions(top_k=2, repetition_penalty=1.0, max_tokens=30)
    tokens = dec.generate_all(np.arange(3), np.zeros((3, 1024), np.float32), np.array([7]), options, rng=FavourEos())
    assert tokens == [100 + i for i in range(11)]
    positions = [int(c["audio_position"][0]) for c in script.calls[1:]]
    kv_lens = [int(c["kv_len"][0]) for c in script.calls[1:]]
    assert positions == list(range(1, 12)) and kv_lens == list(range(4, 15))  # P + idx; X + P + idx


def test_eos_logit_is_ignored_for_the_first_11_steps_and_max_tokens_caps():
    rows = [one_hot_row(EOS, runner_up=50 + i) for i in range(11)] + [one_hot_row(EOS)]
    dec = GptDecoder(ScriptedLogits(rows), ScriptedLogits(rows[1:]), n_layer=1, d_model=4, capacity=64)
    options = SynthesisOptions(top_k=1, repetition_penalty=1.0, max_tokens=30)
    assert dec.generate_all(np.arange(3), np.zeros((3, 1024), np.float32), np.array([7]), options) == [50 + i for i in range(11)]
    rows = [one_hot_row(200 + i) for i in range(5)]
    dec = GptDecoder(ScriptedLogits(rows), ScriptedLogits(rows[1:]), n_layer=1, d_model=4, capacity=64)
    assert dec.generate_all(np.arange(3), np.zeros((3, 1024), np.float32), np.array([7]), replace(options, max_tokens=3)) == [200, 201, 202]


def test_fp16_decode_step_masks_rows_without_nan(graphs, tmp_path):
    """The FP16 variant still keeps rows >= kv_len out: finite logits close to FP32's. (The graph selects the masked
    score rather than multiplying by it, so an FP16 engine that turns it into -inf cannot make 0 x -inf = NaN; ORT's
    converter clamps constants to the FP16 range, so this test alone would not catch that.)"""
    from export.quantize import quantize_graph

    fp16 = quantize_graph(graphs["dir"] / "gpt_decode_step.onnx", tmp_path / "step_fp16.onnx", [], "fp16")
    runner = OrtRunner(fp16, providers=["CPUExecutionProvider"])
    feeds = gpt_decode_step.random_inputs(graphs["model"], cache_len=13, kv_len=8, seed=2)
    got, want = runner.run(feeds)["logits"], graphs["step"].run(feeds)["logits"]
    assert np.isfinite(got).all()
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()
