"""The official GPT-SoVITS token sampler (`logits_to_probs` + exponential race) in numpy, as pure functions.

Order, as in the official code: repetition penalty (once per distinct previous token, prompt included; s<0 → s·rp,
else s/rp) → top_p (sorted descending, drop where the cumulative softmax exceeds top_p, always keep the first) →
divide by max(temperature, 1e-5) → top_k (keep logits >= the k-th largest, so ties at the pivot survive) → softmax →
argmax(probs / q) with q ~ Exp(1), one draw per logit column.

The official stop test `argmax(logits) == EOS` sees the *penalised* logits (the penalty is applied in place), so
`sample_token` returns that argmax too. Callers pass the Exp(1) noise in, which lets a torch oracle consume the very
same draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Optional

import numpy as np

TEMPERATURE_FLOOR: Final = 1e-5


@dataclass(frozen=True)
class SampledToken:
    token: int  # the sampled id
    argmax: int  # argmax of the penalised logits (the official EOS stop test reads this)


def apply_repetition_penalty(logits: np.ndarray, previous_tokens: np.ndarray, penalty: float) -> np.ndarray:
    """Return a copy of 1-D `logits` with each distinct previous id penalised once; ids outside the row are ignored.

    `previous_tokens` holds the ids, or is a boolean mask over the vocabulary (True = seen; the decode loop keeps one,
    which spares a sort per token). Both give the same float32 values."""
    previous_tokens = np.asarray(previous_tokens)
    is_mask = previous_tokens.dtype == np.bool_
    if penalty == 1.0 or not (previous_tokens.any() if is_mask else previous_tokens.size):
        return np.array(logits, dtype=np.float32, copy=True)
    factor = np.float32(penalty)
    if is_mask:  # np.where writes a new row: no copy of the logits first (the decode loop runs this per token)
        row = np.asarray(logits, dtype=np.float32)
        seen = previous_tokens[: row.shape[0]]
        if seen.shape[0] < row.shape[0]:
            seen = np.concatenate([seen, np.zeros(row.shape[0] - seen.shape[0], dtype=bool)])
        return np.where(seen, np.where(row < 0, row * factor, row / factor), row)
    out = np.array(logits, dtype=np.float32, copy=True)
    ids = np.unique(previous_tokens.astype(np.int64, copy=False))
    ids = ids[(ids >= 0) & (ids < out.shape[0])]
    scores = out[ids]
    out[ids] = np.where(scores < 0, scores * factor, scores / factor)
    return out


def top_p_filter(logits: np.ndarray, top_p: float) -> np.ndarray:
    """Mask (−inf) the tail whose cumulative softmax (descending order) exceeds top_p; the top logit always stays."""
    if top_p >= 1.0:
        return logits
    order = np.argsort(-logits, kind="stable")
    sorted_logits = logits[order]
    cum = np.cumsum(softmax(sorted_logits))
    remove_sorted = cum > top_p
    remove_sorted[0] = False
    remove = np.empty_like(remove_sorted)
    remove[order] = remove_sorted
    return np.where(remove, np.float32(-np.inf), logits).astype(np.float32)


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    if temperature == 1.0:  # x / 1 is x exactly: skip the pass (the decode loop runs this per token)
        return logits
    return (logits / np.float32(max(temperature, TEMPERATURE_FLOOR))).astype(np.float32, copy=False)


def top_k_filter(logits: np.ndarray, top_k: int) -> np.ndarray:
    """Keep logits >= the k-th largest (k = min(top_k, V)); everything below becomes −inf."""
    k = min(int(top_k), logits.shape[0])
    if k <= 0:
        return logits
    pivot = np.partition(logits, logits.shape[0] - k)[logits.shape[0] - k]
    return np.where(logits < pivot, np.float32(-np.inf), logits).astype(np.float32, copy=False)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - np.max(logits)
    e = np.exp(shifted, dtype=np.float32)
    return (e / e.sum(dtype=np.float32)).astype(np.float32, copy=False)


def probabilities(
    logits: np.ndarray,
    previous_tokens: np.ndarray,
    *,
    top_k: int,
    top_p: float,
    temperature: float,
    repetition_penalty: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The official `logits_to_probs` for one row: returns (penalised logits, probabilities)."""
    penalised = apply_repetition_penalty(logits, previous_tokens, repetition_penalty)
    filtered = top_p_filter(penalised, top_p)
    filtered = apply_temperature(filtered, temperature)
    filtered = top_k_filter(filtered, top_k)
    return penalised, softmax(filtered)


def exponential_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Exp(1) draws, one per logit column, as float32 (what the race divides by)."""
    return rng.standard_exponential(size).astype(np.float32)


def sample_token(
    logits: np.ndarray,
    previous_tokens: np.ndarray,
    *,
    top_k: int,
    top_p: float,
    temperature: float,
    repetition_penalty: float,
    noise: Optional[np.ndarray],
) -> SampledToken:
    """One official sampling step on a 1-D logits row. `noise=None` takes the greedy path: argmax of the filtered row."""
    penalised, probs = probabilities(
        logits, previous_tokens, top_k=top_k, top_p=top_p, temperature=temperature, repetition_penalty=repetition_penalty
    )
    if noise is None:
        token = int(np.argmax(probs))
    else:
        if noise.shape != probs.shape:
            raise ValueError(f"sampler noise has shape {noise.shape}, the logits row {probs.shape}; draw one per column")
        token = int(np.argmax(probs / noise))
    return SampledToken(token=token, argmax=int(np.argmax(penalised)))


def greedy_token(logits: np.ndarray, previous_tokens: np.ndarray, *, repetition_penalty: float) -> SampledToken:
    """The greedy path (top_k = 1): the argmax of the penalised logits; the stop test reads the same value."""
    penalised = apply_repetition_penalty(logits, previous_tokens, repetition_penalty)
    token = int(np.argmax(penalised))
    return SampledToken(token=token, argmax=token)
