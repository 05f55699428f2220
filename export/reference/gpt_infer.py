"""The official GPT-SoVITS decode loop (`infer_panel_naive` + `logits_to_probs`) in torch: the parity oracle.

Step by step, as in the fact sheet (§2.5, §2.6, Addendum):

* step 0 runs the prefix (text phones + prompt tokens, official mask); later steps feed the previous sample at audio
  position P + idx (positions restart at 0 for the semantic stream);
* logits come from the last position; for idx < 11 the EOS column is dropped (a view, so the in-place penalty and the
  stop test see the same row);
* repetition penalty in place over prompt + generated tokens → top_p → temperature → top_k → softmax →
  argmax(probs / q), q ~ Exp(1), one draw per column of the (possibly shortened) row;
* stop when argmax(penalised logits) or the sample is EOS (that token is dropped), or after `max_tokens` tokens.

`use_kv_cache=True` runs `Text2SemanticModel.decode_step` against growing caches (the PyTorch baseline);
`use_kv_cache=False` recomputes the whole prefix every step with the prefill mask (independent of any cache logic).
Noise: `exp_noise(n)` supplies the Exp(1) draws (so numpy and torch can share them); otherwise a `torch.Generator`
(seeded from `seed`) draws them like the official `torch.empty_like(probs).exponential_(1)` on CPU.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from export.reference.gpt import Text2SemanticModel

MIN_STEPS_BEFORE_EOS = 11
TEMPERATURE_FLOOR = 1e-5

ExpNoise = Callable[[int], Tensor]


def logits_to_probs(
    logits: Tensor,
    previous_tokens: Optional[Tensor],
    *,
    top_k: Optional[int],
    top_p: Optional[float],
    temperature: float,
    repetition_penalty: float,
) -> Tensor:
    """[1,V] logits → [1,V] probabilities. The repetition penalty writes into `logits` in place, as upstream."""
    if previous_tokens is not None and previous_tokens.numel() and repetition_penalty != 1.0:
        previous_tokens = previous_tokens.long()
        score = torch.gather(logits, dim=1, index=previous_tokens)
        score = torch.where(score < 0, score * repetition_penalty, score / repetition_penalty)
        logits.scatter_(dim=1, index=previous_tokens, src=score)
    if top_p is not None and top_p < 1.0:
        sorted_logits, sorted_indices = torch.sort(logits, descending=True)
        cum_probs = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
        remove_sorted = cum_probs > top_p
        remove_sorted[:, 0] = False
        remove = remove_sorted.scatter(dim=1, index=sorted_indices, src=remove_sorted)
        logits = logits.masked_fill(remove, -float("inf"))
    logits = logits / max(temperature, TEMPERATURE_FLOOR)
    if top_k is not None:
        kth = torch.topk(logits, min(int(top_k), logits.shape[-1])).values[:, -1:]
        logits = torch.where(logits < kth, torch.full_like(logits, -float("inf")), logits)
    return torch.softmax(logits, dim=-1)


def infer_tokens(
    model: Text2SemanticModel,
    phones: Tensor,
    bert: Tensor,
    prompt_tokens: Optional[Tensor],
    *,
    top_k: int = 15,
    top_p: float = 1.0,
    temperature: float = 1.0,
    repetition_penalty: float = 1.35,
    seed: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    exp_noise: Optional[ExpNoise] = None,
    greedy: bool = False,
    max_tokens: int = 1500,
    use_kv_cache: bool = True,
) -> list[int]:
    """Generated semantic tokens (no prompt, no EOS) for phones [X] or [1,X], bert [X,1024] or [1,X,1024], prompt [P].

    `greedy=True` is the official path with top_k = 1. `prompt_tokens=None` (or empty) is the ref-free mode.
    """
    if greedy:
        top_k = 1
    if exp_noise is None:
        if generator is None:
            generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        gen = generator

        def exp_noise(n: int) -> Tensor:
            return torch.empty(n).exponential_(1, generator=gen)

    eos = model.eos
    phones = torch.as_tensor(phones, dtype=torch.long).reshape(1, -1)
    bert = torch.as_tensor(bert, dtype=torch.float32).reshape(1, phones.shape[1], -1)
    if prompt_tokens is None:
        prompt_tokens = torch.zeros(1, 0, dtype=torch.long)
    y = torch.as_tensor(prompt_tokens, dtype=torch.long).reshape(1, -1)
    p_len = y.shape[1]
    generated: list[int] = []
    with torch.no_grad():
        logits, k_cache, v_cache = model.prefill(phones, bert, y)
        for idx in range(max_tokens):
            row = logits[:, :-1] if idx < MIN_STEPS_BEFORE_EOS else logits
            probs = logits_to_probs(
                row, y, top_k=top_k, top_p=top_p, temperature=temperature, repetition_penalty=repetition_penalty
            )
            q = exp_noise(probs.shape[-1]).to(torch.float32).reshape(1, -1)
            sample = int(torch.argmax(probs / q, dim=-1)[0])
            if int(torch.argmax(row, dim=-1)[0]) == eos or sample == eos:
                break
            generated.append(sample)
            y = torch.cat([y, torch.tensor([[sample]])], dim=1)
            if idx == max_tokens - 1:
                break
            if use_kv_cache:
                kv_len = k_cache[0].shape[1]
                logits, k_new, v_new = model.decode_step(
                    torch.tensor([[sample]]),
                    torch.tensor([p_len + idx]),
                    torch.tensor([kv_len]),
                    k_cache,
                    v_cache,
                )
                k_cache = [torch.cat([k, kn], dim=1) for k, kn in zip(k_cache, k_new)]
                v_cache = [torch.cat([v, vn], dim=1) for v, vn in zip(v_cache, v_new)]
            else:
                logits, _, _ = model.prefill(phones, bert, y)
    if not generated and p_len == 0:
        generated = [0]  # upstream's "bad zero prediction" fallback in ref-free mode
    return generated
