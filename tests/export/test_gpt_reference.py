"""The reference GPT has exactly the official v2 key layout, so real checkpoints load with strict=True."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from export.reference.gpt import (
    FULL_GPT_CONFIG,
    TINY_GPT_CONFIG,
    MASKED_SCORE,
    Text2SemanticModel,
    attention_bias,
    build_model,
    make_random_state_dict,
    prefill_keep_mask,
    sinusoid,
)

SHARED_KEY_LIST = Path(__file__).resolve().parent.parent / "data" / "t2s_keys.txt"
OFFICIAL_TENSORS = 295
OFFICIAL_PARAMS = 77_606_402


def official_layout(n_layer: int = 24, d: int = 512, ffn: int = 2048) -> dict[str, tuple[int, ...]]:
    """The fact sheet's §2.3 table, key → shape, with the `model.` prefix."""
    keys = {
        "model.bert_proj.weight": (d, 1024),
        "model.bert_proj.bias": (d,),
        "model.ar_text_embedding.word_embeddings.weight": (732, d),
        "model.ar_text_position.alpha": (1,),
        "model.ar_audio_embedding.word_embeddings.weight": (1025, d),
        "model.ar_audio_position.alpha": (1,),
    }
    for i in range(n_layer):
        p = f"model.h.layers.{i}."
        keys.update({
            p + "self_attn.in_proj_weight": (3 * d, d),
            p + "self_attn.in_proj_bias": (3 * d,),
            p + "self_attn.out_proj.weight": (d, d),
            p + "self_attn.out_proj.bias": (d,),
            p + "linear1.weight": (ffn, d),
            p + "linear1.bias": (ffn,),
            p + "linear2.weight": (d, ffn),
            p + "linear2.bias": (d,),
            p + "norm1.weight": (d,),
            p + "norm1.bias": (d,),
            p + "norm2.weight": (d,),
            p + "norm2.bias": (d,),
        })
    keys["model.ar_predict_layer.weight"] = (1025, d)
    return keys


def our_layout(config) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = Text2SemanticModel(config)
    return {"model." + k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_full_config_is_the_official_yaml():
    model = FULL_GPT_CONFIG["model"]
    assert (model["vocab_size"], model["phoneme_vocab_size"], model["EOS"]) == (1025, 732, 1024)
    assert (model["embedding_dim"], model["hidden_dim"], model["head"], model["n_layer"]) == (512, 512, 16, 24)
    assert FULL_GPT_CONFIG["data"]["max_sec"] == 54 and FULL_GPT_CONFIG["inference"]["top_k"] == 15


def test_full_model_has_the_official_keys_and_shapes():
    ours = our_layout(FULL_GPT_CONFIG)
    assert list(ours) == list(official_layout())  # same names, same order as the upstream module
    assert ours == official_layout()
    assert len(ours) == OFFICIAL_TENSORS
    assert sum(torch.Size(s).numel() for s in ours.values()) == OFFICIAL_PARAMS


@pytest.mark.skipif(not SHARED_KEY_LIST.is_file(), reason="the research key dump is not on this machine")
def test_full_model_matches_the_research_key_dump():
    dump = {}
    for line in SHARED_KEY_LIST.read_text().splitlines():
        m = re.match(r"^(model\.\S+) \(([\d, ]*)\) \w+$", line)
        if m:
            dump[m.group(1)] = tuple(int(x) for x in m.group(2).split(",") if x.strip())
    assert our_layout(FULL_GPT_CONFIG) == dump


def test_full_state_dict_loads_strictly_with_the_prefix_stripped():
    official_like = {k: torch.zeros(s, dtype=torch.float16) for k, s in official_layout().items()}
    official_like["model.ar_predict_layer.weight"][5, 7] = 1.5
    stripped = {k.removeprefix("model."): v for k, v in official_like.items()}
    model = build_model(FULL_GPT_CONFIG, stripped)
    assert model.n_layer == 24 and model.eos == 1024
    weight = model.ar_predict_layer.weight
    assert weight.dtype == torch.float32 and weight.device.type == "cpu" and float(weight.detach()[5, 7]) == 1.5
    with pytest.raises(RuntimeError, match="Missing key"):
        build_model(FULL_GPT_CONFIG, {k: v for k, v in stripped.items() if k != "bert_proj.bias"})


def test_random_state_dict_has_the_model_keys_and_float32():
    state = make_random_state_dict(TINY_GPT_CONFIG, seed=3)
    with torch.device("meta"):
        model = Text2SemanticModel(TINY_GPT_CONFIG)
    assert set(state) == set(model.state_dict())
    assert all(v.dtype == torch.float32 for v in state.values())
    assert all(not k.startswith("model.") for k in state)
    again = make_random_state_dict(TINY_GPT_CONFIG, seed=3)
    assert all(torch.equal(state[k], again[k]) for k in state)


def test_sinusoid_matches_the_fact_sheet_formula():
    d = 8
    pe = sinusoid(torch.tensor([0, 3, 100]), d)
    for row, p in enumerate([0, 3, 100]):
        for i in range(d // 2):
            rate = math.exp(-2.0 * i * math.log(10000.0) / d)
            assert float(pe[row, 2 * i]) == pytest.approx(math.sin(p * rate), abs=1e-4)
            assert float(pe[row, 2 * i + 1]) == pytest.approx(math.cos(p * rate), abs=1e-4)


def test_prefill_mask_text_bidirectional_audio_causal():
    keep = prefill_keep_mask(3, 2)
    expected = torch.tensor([
        [1, 1, 1, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
    ], dtype=torch.bool)
    assert torch.equal(keep, expected)


def test_the_additive_bias_gives_exactly_the_masked_fill_softmax():
    keep = prefill_keep_mask(3, 2)
    bias = attention_bias(keep)
    assert torch.equal(bias[keep], torch.zeros(int(keep.sum()))) and torch.all(bias[~keep] == MASKED_SCORE)
    scores = torch.randn(1, 2, 5, 5) * 30.0
    filled = torch.where(keep, scores, torch.full_like(scores, MASKED_SCORE))
    assert torch.equal(torch.softmax(scores + bias, dim=-1), torch.softmax(filled, dim=-1))


def test_the_prefix_softmax_floor_leaves_the_attention_output_within_float32_rounding():
    """Raising scores far below their row's largest (every masked one) keeps ONNX Runtime's exp off its slow subnormal
    path; the weights they get (~1e-35) cannot move a float32 output."""
    from export.reference.gpt import PackedSelfAttention

    torch.manual_seed(4)
    attention = PackedSelfAttention(64, 4)
    for parameter in attention.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    x = torch.randn(1, 9, 64) * 3.0
    bias = attention_bias(prefill_keep_mask(5, 4))
    q, k, v = attention.project(x)
    with torch.no_grad():
        plain, floored = attention.attend(q, k, v, bias), attention.attend(q, k, v, bias, floor=True)
    assert torch.allclose(floored, plain, rtol=1e-6, atol=1e-6)


def test_random_tiny_model_does_not_stop_at_once():
    from export.reference.gpt_infer import infer_tokens

    model = build_model(TINY_GPT_CONFIG, make_random_state_dict(TINY_GPT_CONFIG, seed=0))
    gen = torch.Generator().manual_seed(0)
    phones = torch.randint(0, 732, (1, 12), generator=gen)
    tokens = infer_tokens(model, phones, torch.randn(1, 12, 1024, generator=gen), torch.randint(0, 1024, (1, 6), generator=gen),
                          greedy=True, max_tokens=64)
    assert len(tokens) == 64
