"""The numpy sampler against hand-computed cases of the official `logits_to_probs` + exponential race."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.synth.sampling import (
    apply_repetition_penalty,
    apply_temperature,
    exponential_noise,
    greedy_token,
    probabilities,
    sample_token,
    top_k_filter,
    top_p_filter,
)

NEG_INF = -np.inf


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def test_repetition_penalty_divides_positive_and_multiplies_negative_once_per_distinct_token():
    logits = f32(2.0, -1.0, 0.5, 3.0)
    out = apply_repetition_penalty(logits, np.array([0, 1, 1, 1, 0]), 2.0)
    np.testing.assert_array_equal(out, f32(1.0, -2.0, 0.5, 3.0))  # -1 → -2, not -8: duplicates count once
    np.testing.assert_array_equal(logits, f32(2.0, -1.0, 0.5, 3.0))  # the caller's row is untouched


def test_repetition_penalty_ignores_ids_outside_a_shortened_row():
    # for steps 0..10 the EOS column is dropped, so an id == len(row) must not wrap or raise
    out = apply_repetition_penalty(f32(1.0, 1.0), np.array([2, 1]), 2.0)
    np.testing.assert_array_equal(out, f32(1.0, 0.5))


def test_a_seen_mask_penalises_exactly_as_the_ids_do():
    """The decode loop passes a boolean mask over the vocabulary (1025 columns) instead of the ids; the penalised row
    must be bit-identical, for the full row and for the row with the EOS column dropped."""
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 1025, size=300)  # duplicates, and EOS (1024) itself
    seen = np.zeros(1025, dtype=bool)
    seen[ids] = True
    for width in (1025, 1024):
        logits = rng.standard_normal(width).astype(np.float32)
        for penalty in (1.35, 1.0, 0.8):
            np.testing.assert_array_equal(apply_repetition_penalty(logits, seen, penalty), apply_repetition_penalty(logits, ids, penalty))
    assert apply_repetition_penalty(f32(1.0, -1.0), np.zeros(1025, dtype=bool), 2.0).tolist() == [1.0, -1.0]


def test_penalised_logits_feed_the_argmax_stop_test():
    # token 0 leads before the penalty; once penalised, column 1 (say EOS) is the argmax the stop test sees
    logits = f32(3.0, 2.0, -5.0)
    picked = sample_token(logits, np.array([0]), top_k=3, top_p=1.0, temperature=1.0, repetition_penalty=2.0,
                          noise=f32(1.0, 1.0, 1.0))
    assert picked.argmax == 1
    assert greedy_token(logits, np.array([0]), repetition_penalty=2.0).argmax == 1
    assert greedy_token(logits, np.array([], dtype=np.int64), repetition_penalty=2.0).argmax == 0


def test_top_p_always_keeps_the_first_even_below_its_probability():
    out = top_p_filter(f32(0.0, 5.0, 1.0), 1e-6)
    np.testing.assert_array_equal(out, f32(NEG_INF, 5.0, NEG_INF))


def test_top_p_drops_where_the_cumulative_softmax_exceeds_p():
    logits = np.log(f32(0.5, 0.3, 0.2))  # sorted already; cumulative 0.5, 0.8, 1.0
    assert np.isfinite(top_p_filter(logits, 0.7)).tolist() == [True, False, False]
    assert np.isfinite(top_p_filter(logits, 0.85)).tolist() == [True, True, False]
    np.testing.assert_array_equal(top_p_filter(logits, 1.0), logits)  # top_p = 1 is off


def test_top_k_keeps_every_tie_at_the_pivot():
    np.testing.assert_array_equal(top_k_filter(f32(1.0, 3.0, 3.0, 2.0), 2), f32(NEG_INF, 3.0, 3.0, NEG_INF))
    np.testing.assert_array_equal(top_k_filter(f32(1.0, 2.0, 2.0, 3.0), 2), f32(NEG_INF, 2.0, 2.0, 3.0))
    np.testing.assert_array_equal(top_k_filter(f32(1.0, 2.0), 15), f32(1.0, 2.0))  # k = min(top_k, V)


def test_temperature_is_floored_at_1e_5():
    np.testing.assert_allclose(apply_temperature(f32(1e-5, -2e-5), 0.0), f32(1.0, -2.0))
    _, probs = probabilities(f32(1.0, 1.001, 0.0), np.array([], dtype=np.int64), top_k=3, top_p=1.0,
                             temperature=0.0, repetition_penalty=1.0)
    assert not np.isnan(probs).any()
    np.testing.assert_allclose(probs, f32(0.0, 1.0, 0.0), atol=1e-6)


def test_order_is_penalty_then_top_p_then_temperature_then_top_k():
    # the penalty turns [4, 3, 0] into [2, 3, 0]; top_p then keeps the new leader and the original one (cum 0.73, 1.0)
    logits = f32(4.0, 3.0, 0.0)
    penalised, probs = probabilities(logits, np.array([0]), top_k=3, top_p=0.98, temperature=0.5, repetition_penalty=2.0)
    np.testing.assert_array_equal(penalised, f32(2.0, 3.0, 0.0))
    expected = np.exp(f32(4.0, 6.0)) / np.exp(f32(4.0, 6.0)).sum()  # (2, 3) / 0.5, then softmax
    np.testing.assert_allclose(probs, [expected[0], expected[1], 0.0], rtol=1e-6)


def test_exponential_race_takes_argmax_of_probs_over_noise():
    logits = np.log(f32(0.5, 0.5))
    common = dict(top_k=2, top_p=1.0, temperature=1.0, repetition_penalty=1.0)
    assert sample_token(logits, np.array([], dtype=np.int64), noise=f32(2.0, 1.0), **common).token == 1
    assert sample_token(logits, np.array([], dtype=np.int64), noise=f32(1.0, 2.0), **common).token == 0
    with pytest.raises(ValueError, match="one per column"):
        sample_token(logits, np.array([], dtype=np.int64), noise=f32(1.0), **common)


def test_race_frequencies_follow_the_probabilities():
    rng = np.random.default_rng(0)
    logits = np.log(f32(0.6, 0.3, 0.1))
    counts = np.zeros(3)
    for _ in range(4000):
        picked = sample_token(logits, np.array([], dtype=np.int64), top_k=3, top_p=1.0, temperature=1.0,
                              repetition_penalty=1.0, noise=exponential_noise(rng, 3))
        counts[picked.token] += 1
    np.testing.assert_allclose(counts / counts.sum(), [0.6, 0.3, 0.1], atol=0.03)


def test_greedy_is_the_argmax_of_the_penalised_row():
    picked = greedy_token(f32(1.0, 5.0, 4.0), np.array([1]), repetition_penalty=1.35)
    assert picked.token == picked.argmax == 2
