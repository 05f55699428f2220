"""The reference SoVITS v2 has exactly the official key layout (strict load) and its math matches the VITS oracles."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from export.reference.sovits import FULL_SOVITS_HPARAMS, TINY_SOVITS_HPARAMS, SynthesizerV2, make_random_state_dict
from export.reference.sovits.attentions import MultiHeadAttention
from export.reference.sovits.weight_norm import WeightNormConv1d, WeightNormConvTranspose1d

SHARED_KEY_LIST = Path(__file__).resolve().parent.parent / "data" / "s2_v2_keys.txt"
OFFICIAL_TENSORS_WITHOUT_ENC_Q = 673
OFFICIAL_PARAMS_WITHOUT_ENC_Q = 42_389_633  # fact sheet §8: 42.39 M as saved


def official_layout() -> dict[str, tuple[int, ...]]:
    """Fact sheet §3.3, key → shape, for configs/s2.json (v2, gin 512), without the training-only enc_q.*."""
    keys: dict[str, tuple[int, ...]] = {}
    for name, layers in (("encoder_ssl", 3), ("encoder_text", 6), ("encoder2", 3)):
        for i in range(layers):
            p = f"enc_p.{name}."
            keys[f"{p}attn_layers.{i}.emb_rel_k"] = keys[f"{p}attn_layers.{i}.emb_rel_v"] = (1, 9, 96)
            for conv in "qkvo":
                keys[f"{p}attn_layers.{i}.conv_{conv}.weight"] = (192, 192, 1)
                keys[f"{p}attn_layers.{i}.conv_{conv}.bias"] = (192,)
            for norm in ("norm_layers_1", "norm_layers_2"):
                keys[f"{p}{norm}.{i}.gamma"] = keys[f"{p}{norm}.{i}.beta"] = (192,)
            keys.update({
                f"{p}ffn_layers.{i}.conv_1.weight": (768, 192, 3), f"{p}ffn_layers.{i}.conv_1.bias": (768,),
                f"{p}ffn_layers.{i}.conv_2.weight": (192, 768, 3), f"{p}ffn_layers.{i}.conv_2.bias": (192,),
            })
    keys.update({
        "enc_p.ssl_proj.weight": (192, 768, 1), "enc_p.ssl_proj.bias": (192,),
        "enc_p.text_embedding.weight": (732, 192),
        "enc_p.mrte.c_pre.weight": (512, 192, 1), "enc_p.mrte.c_pre.bias": (512,),
        "enc_p.mrte.text_pre.weight": (512, 192, 1), "enc_p.mrte.text_pre.bias": (512,),
        "enc_p.mrte.c_post.weight": (192, 512, 1), "enc_p.mrte.c_post.bias": (192,),
        "enc_p.proj.weight": (384, 192, 1), "enc_p.proj.bias": (384,),
        "dec.conv_pre.weight": (512, 192, 7), "dec.conv_pre.bias": (512,),
        "dec.conv_post.weight": (1, 16, 7), "dec.cond.weight": (512, 512, 1), "dec.cond.bias": (512,),
        "ssl_proj.weight": (768, 768, 2), "ssl_proj.bias": (768,),
        "quantizer.vq.layers.0._codebook.inited": (1,), "quantizer.vq.layers.0._codebook.cluster_size": (1024,),
        "quantizer.vq.layers.0._codebook.embed": (1024, 768), "quantizer.vq.layers.0._codebook.embed_avg": (1024, 768),
        "ref_enc.spectral.0.fc.weight": (128, 704), "ref_enc.spectral.0.fc.bias": (128,),
        "ref_enc.spectral.3.fc.weight": (128, 128), "ref_enc.spectral.3.fc.bias": (128,),
        "ref_enc.fc.fc.weight": (512, 128), "ref_enc.fc.fc.bias": (512,),
    })
    for conv in "qkvo":
        keys[f"enc_p.mrte.cross_attention.conv_{conv}.weight"] = (512, 512, 1)
        keys[f"enc_p.mrte.cross_attention.conv_{conv}.bias"] = (512,)
    for i in range(2):
        keys[f"ref_enc.temporal.{i}.conv1.conv.weight"] = (256, 128, 5)
        keys[f"ref_enc.temporal.{i}.conv1.conv.bias"] = (256,)
    for w in ("w_qs", "w_ks", "w_vs", "fc"):
        keys[f"ref_enc.slf_attn.{w}.weight"], keys[f"ref_enc.slf_attn.{w}.bias"] = (128, 128), (128,)
    channels = 512
    for i, kernel in enumerate((16, 16, 8, 2, 2)):
        keys.update({f"dec.ups.{i}.weight_g": (channels, 1, 1), f"dec.ups.{i}.weight_v": (channels, channels // 2, kernel),
                     f"dec.ups.{i}.bias": (channels // 2,)})
        channels //= 2
        for j, k in enumerate((3, 7, 11)):
            for convs in ("convs1", "convs2"):
                for m in range(3):
                    p = f"dec.resblocks.{3 * i + j}.{convs}.{m}."
                    keys.update({p + "weight_g": (channels, 1, 1), p + "weight_v": (channels, channels, k), p + "bias": (channels,)})
    for f in (0, 2, 4, 6):
        p = f"flow.flows.{f}."
        keys.update({p + "pre.weight": (192, 96, 1), p + "pre.bias": (192,), p + "post.weight": (96, 192, 1), p + "post.bias": (96,),
                     p + "enc.cond_layer.weight_g": (1536, 1, 1), p + "enc.cond_layer.weight_v": (1536, 512, 1),
                     p + "enc.cond_layer.bias": (1536,)})
        for i in range(4):
            out = 384 if i < 3 else 192
            keys.update({f"{p}enc.in_layers.{i}.weight_g": (384, 1, 1), f"{p}enc.in_layers.{i}.weight_v": (384, 192, 5),
                         f"{p}enc.in_layers.{i}.bias": (384,), f"{p}enc.res_skip_layers.{i}.weight_g": (out, 1, 1),
                         f"{p}enc.res_skip_layers.{i}.weight_v": (out, 192, 1), f"{p}enc.res_skip_layers.{i}.bias": (out,)})
    return keys


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    return make_random_state_dict(TINY_SOVITS_HPARAMS, seed=3)


def test_full_model_has_the_official_v2_layout():
    state = SynthesizerV2(FULL_SOVITS_HPARAMS).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == official_layout()
    assert len(state) == OFFICIAL_TENSORS_WITHOUT_ENC_Q
    assert sum(v.numel() for v in state.values()) == OFFICIAL_PARAMS_WITHOUT_ENC_Q


@pytest.mark.skipif(not SHARED_KEY_LIST.is_file(), reason="the research key dump is not on this machine")
def test_full_model_matches_the_upstream_key_dump():
    expected = {}
    for line in SHARED_KEY_LIST.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape, _dtype = line.split(" ", 1)[0], line.split(" ", 1)[1].rsplit(" ", 1)[0], None
        if not key.startswith("enc_q."):
            expected[key] = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
    state = SynthesizerV2(FULL_SOVITS_HPARAMS).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == expected


def test_strict_load_of_an_fp16_checkpoint_with_enc_q(tiny_state):
    weights = {k: v.half() for k, v in tiny_state.items()}
    weights["enc_q.pre.weight"] = torch.zeros(16, 1025, 1, dtype=torch.float16)  # present in base files; dropped
    model = SynthesizerV2.from_state_dict(TINY_SOVITS_HPARAMS, weights)
    assert model.dims.mrte_hidden == TINY_SOVITS_HPARAMS["model"]["gin_channels"]
    assert all(p.dtype == torch.float32 for p in model.state_dict().values())
    with pytest.raises(RuntimeError, match="Missing key"):
        SynthesizerV2(TINY_SOVITS_HPARAMS).load_state_dict({k: v for k, v in tiny_state.items() if "flow.flows.0" not in k})


def test_weight_norm_folding_equals_the_unfolded_forward(tiny_state):
    model = SynthesizerV2.from_state_dict(TINY_SOVITS_HPARAMS, tiny_state)
    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 1024, (1, 10), generator=gen)
    phones = torch.randint(0, 732, (1, 8), generator=gen)
    ge = model.reference_ge(torch.rand(1, 1025, 30, generator=gen))
    noise = torch.randn(1, model.inter_channels, 20, generator=gen)
    with torch.no_grad():
        before = model.decode(codes, phones, ge, noise=noise, noise_scale=0.5)
        folded = model.fold_weight_norm()
        after = model.decode(codes, phones, ge, noise=noise, noise_scale=0.5)
    weight_norm_keys = [k for k in tiny_state if k.endswith("weight_g")]
    assert folded == len(weight_norm_keys)
    assert not any(k.endswith(("weight_g", "weight_v")) for k in model.state_dict())
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("transpose", [False, True])
def test_weight_norm_matches_torch_legacy_weight_norm(transpose):
    torch.manual_seed(0)
    if transpose:  # ConvTranspose1d: weight_g is per *input* channel, [in, 1, 1]
        ours = WeightNormConvTranspose1d(6, 4, 8, stride=4, padding=2)
        theirs = nn.utils.weight_norm(nn.ConvTranspose1d(6, 4, 8, stride=4, padding=2))
    else:
        ours = WeightNormConv1d(6, 4, 5, dilation=3, padding=6)
        theirs = nn.utils.weight_norm(nn.Conv1d(6, 4, 5, dilation=3, padding=6))
    theirs.load_state_dict({"weight_g": torch.rand_like(theirs.weight_g) + 0.5, "weight_v": torch.randn_like(theirs.weight_v),
                            "bias": torch.randn_like(theirs.bias)})
    assert theirs.weight_g.shape[0] == (6 if transpose else 4)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(1, 6, 17)
    torch.testing.assert_close(ours(x), theirs(x))
    torch.testing.assert_close(ours.folded()(x), theirs(x))


def _vits_relative_embeddings(emb: torch.Tensor, length: int, window: int) -> torch.Tensor:
    pad = max(length - (window + 1), 0)
    start = max((window + 1) - length, 0)
    padded = F.pad(emb, (0, 0, pad, pad)) if pad > 0 else emb
    return padded[:, start : start + 2 * length - 1]


def _vits_rel_to_abs(x: torch.Tensor) -> torch.Tensor:
    b, h, length, _ = x.shape
    x = F.pad(x, (0, 1)).reshape(b, h, length * 2 * length)
    x = F.pad(x, (0, length - 1)).reshape(b, h, length + 1, 2 * length - 1)
    return x[:, :, :length, length - 1 :]


def _vits_abs_to_rel(x: torch.Tensor) -> torch.Tensor:
    b, h, length, _ = x.shape
    x = F.pad(x, (0, length - 1)).reshape(b, h, length * length + length * (length - 1))
    return F.pad(x, (length, 0)).reshape(b, h, length, 2 * length)[:, :, :, 1:]


def _vits_attention(attn: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """The pad/reshape formulation of VITS `attentions.MultiHeadAttention` (the oracle)."""
    b, c, t = x.shape
    heads, k = attn.n_heads, attn.k_channels
    q = attn.conv_q(x).view(b, heads, k, t).transpose(2, 3) / math.sqrt(k)
    key = attn.conv_k(x).view(b, heads, k, t).transpose(2, 3)
    value = attn.conv_v(x).view(b, heads, k, t).transpose(2, 3)
    scores = q @ key.transpose(-2, -1)
    rel_k = _vits_relative_embeddings(attn.emb_rel_k, t, attn.window_size)
    scores = scores + _vits_rel_to_abs(q @ rel_k.unsqueeze(0).transpose(-2, -1))
    p = torch.softmax(scores, dim=-1)
    out = p @ value
    rel_v = _vits_relative_embeddings(attn.emb_rel_v, t, attn.window_size)
    out = out + _vits_abs_to_rel(p) @ rel_v.unsqueeze(0)
    return attn.conv_o(out.transpose(2, 3).reshape(b, c, t))


@pytest.mark.parametrize("length", [1, 2, 4, 5, 6, 13])
def test_relative_attention_matches_the_vits_pad_reshape_formulation(length):
    torch.manual_seed(length)
    attn = MultiHeadAttention(8, 8, 2, window_size=4)
    x = torch.randn(1, 8, length)
    with torch.no_grad():
        torch.testing.assert_close(attn(x, x), _vits_attention(attn, x), rtol=1e-5, atol=1e-6)


def test_prompt_tokens_are_the_nearest_codebook_entries(tiny_state):
    model = SynthesizerV2.from_state_dict(TINY_SOVITS_HPARAMS, tiny_state)
    ssl = torch.randn(1, 768, 41, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        tokens = model.extract_prompt_tokens(ssl)
        projected = model.ssl_proj(ssl)[0].t()
        brute = torch.cdist(projected, model.quantizer.vq.layers[0]._codebook.embed).argmin(dim=1)
    assert tokens.shape == (20,)
    assert torch.equal(tokens, brute)


@pytest.mark.parametrize("speed,frames", [(1.0, 24), (1.25, 20), (0.5, 49)])
def test_decode_length_and_level(tiny_state, speed, frames):
    model = SynthesizerV2.from_state_dict(TINY_SOVITS_HPARAMS, tiny_state)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        ge = model.reference_ge(torch.rand(1, 1025, 25, generator=gen))
        audio = model.decode(torch.randint(0, 1024, (1, 12), generator=gen), torch.randint(0, 732, (1, 6), generator=gen), ge,
                             speed=speed)
    assert audio.shape == (1, 1, 640 * frames)
    assert 0.05 < float(audio.std()) < 0.7  # audible, and tanh is not saturated
    assert float((audio.abs() > 0.99).float().mean()) < 0.01
