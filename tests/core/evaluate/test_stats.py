"""Paired bootstrap, McNemar's exact test and the Wilson interval against explicit loops and scipy."""

import numpy as np
import pytest
from scipy import stats as sp

from core.evaluate import metrics as M
from core.evaluate import stats as S


def _systems(n=200, seed=7):
    # Per-question scores in [0, 1] for two correlated systems, b a little better.
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 1, n)
    b = np.clip(a + rng.normal(0.05, 0.2, n), 0, 1)
    return a.tolist(), b.tolist()


def test_identical_systems_give_zero_difference():
    a, _ = _systems(50)
    interval = S.paired_bootstrap(a, list(a), resamples=500, seed=3)
    assert interval.diff == 0.0
    assert interval.a == interval.b == pytest.approx(np.mean(a))
    assert interval.low <= 0 <= interval.high
    assert not interval.excludes_zero
    assert S.mcnemar_exact([True, False, True], [True, False, True]).p_value == 1.0


def test_resample_indices_are_seeded_with_replacement():
    idx = S.resample_indices(10, 50, seed=4)
    assert idx.shape == (50, 10)
    assert idx.min() >= 0 and idx.max() < 10
    assert np.array_equal(idx, S.resample_indices(10, 50, seed=4))
    assert not np.array_equal(idx, S.resample_indices(10, 50, seed=5))


def _loop_interval(a, b, statistic, indices, confidence=0.95):
    diffs = []
    for row in indices:
        diffs.append(statistic([b[i] for i in row]) - statistic([a[i] for i in row]))
    tail = (1 - confidence) / 2 * 100
    return np.percentile(diffs, [tail, 100 - tail])


@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_mean_interval_equals_an_explicit_loop(confidence):
    a, b = _systems(60)
    indices = S.resample_indices(60, 1000, seed=11)
    low, high = _loop_interval(a, b, lambda xs: float(np.mean(xs)), indices, confidence)
    interval = S.paired_bootstrap(a, b, resamples=1000, confidence=confidence, seed=11)
    assert interval.low == pytest.approx(low, rel=1e-12, abs=1e-12)
    assert interval.high == pytest.approx(high, rel=1e-12, abs=1e-12)
    assert interval.diff == pytest.approx(np.mean(b) - np.mean(a))
    assert (interval.resamples, interval.confidence, interval.seed) == (1000, confidence, 11)
    # Passing the same indices gives the same interval (one set shared by every metric of a comparison).
    shared = S.paired_bootstrap(a, b, indices=indices, confidence=confidence, seed=11)
    assert (shared.low, shared.high) == (interval.low, interval.high)


def test_corpus_bleu_interval_equals_an_explicit_loop():
    refs = [[f"the patient has sinus rhythm at {i} beats per minute"] for i in range(20)]
    preds_a = [f"patient has sinus rhythm at {i} bpm" if i % 3 else "no idea" for i in range(20)]
    preds_b = [f"the patient has sinus rhythm at {i} beats" for i in range(20)]
    a, b = M.bleu_stats(preds_a, refs), M.bleu_stats(preds_b, refs)
    indices = S.resample_indices(20, 200, seed=2)
    low, high = _loop_interval(a, b, M.bleu_from_stats, indices)
    interval = S.paired_bootstrap(a, b, statistic=M.bleu_from_stats, indices=indices, seed=2)
    assert (interval.low, interval.high) == (pytest.approx(low), pytest.approx(high))
    assert interval.a == M.corpus_bleu(preds_a, refs)
    assert interval.b == M.corpus_bleu(preds_b, refs)
    assert interval.diff == pytest.approx(interval.b - interval.a)
    assert interval.excludes_zero and interval.low > 0
    assert interval.to_dict()["excludes_zero"] is True


def test_mean_interval_agrees_with_scipy_bootstrap():
    a, b = _systems(200)

    def mean_diff(x, y, axis=-1):
        return np.mean(y, axis=axis) - np.mean(x, axis=axis)

    ref = sp.bootstrap((np.array(a), np.array(b)), mean_diff, paired=True, vectorized=True, n_resamples=2000,
                       confidence_level=0.95, method="percentile", rng=np.random.default_rng(0))  # fmt: skip
    ours = S.paired_bootstrap(a, b, resamples=2000, seed=0)
    # Different resamples, the same percentile interval: close, not equal.
    assert abs(ours.low - ref.confidence_interval.low) < 0.02
    assert abs(ours.high - ref.confidence_interval.high) < 0.02
    assert ours.low < ours.diff < ours.high


@pytest.mark.parametrize(("only_a", "only_b"), [(0, 6), (6, 0), (1, 0), (3, 10), (20, 25), (5, 5), (12, 3), (1, 1)])
def test_mcnemar_exact_equals_scipy_binomtest(only_a, only_b):
    a = [True] * 7 + [True] * only_a + [False] * only_b + [False] * 4
    b = [True] * 7 + [False] * only_a + [True] * only_b + [False] * 4
    test = S.mcnemar_exact(a, b)
    assert (test.both_right, test.only_a, test.only_b, test.both_wrong) == (7, only_a, only_b, 4)
    expected = sp.binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue
    assert test.p_value == pytest.approx(expected, rel=1e-12)


def test_mcnemar_with_no_discordant_pair_is_one():
    assert S.mcnemar_exact([True, False], [True, False]).p_value == 1.0
    assert S.mcnemar_exact([], []).p_value == 1.0
    assert S.mcnemar_exact([1, 0, 1], [True, False, True]).to_dict() == {
        "both_right": 2, "only_a": 0, "only_b": 0, "both_wrong": 1, "p_value": 1.0}  # fmt: skip


def test_separation_warnings():
    few = S.separation_warnings(10, S.mcnemar_exact([True] * 10, [True] * 10))
    assert len(few) == 2
    assert "10 questions" in few[0]
    assert "disagree on exact match for 0 questions" in few[1]
    five = S.mcnemar_exact([True] * 5 + [False] * 195, [False] * 5 + [False] * 195)
    assert S.separation_warnings(200, five) == [
        "The systems disagree on exact match for 5 questions; McNemar's test cannot reach p < 0.05 with fewer than 6."
    ]
    enough = S.mcnemar_exact([True] * 12 + [False] * 8 + [True] * 180, [False] * 12 + [True] * 8 + [True] * 180)
    assert enough.only_a + enough.only_b == 20
    assert S.separation_warnings(200, enough) == []
    assert S.separation_warnings(30) == []
    assert len(S.separation_warnings(29)) == 1


def test_wilson_interval():
    assert S.wilson(0, 0) == (0.0, 1.0)
    low, high = S.wilson(337, 340)
    assert low == pytest.approx(0.974, abs=5e-4)
    assert high == pytest.approx(0.997, abs=5e-4)
    ref = sp.binomtest(337, 340).proportion_ci(confidence_level=0.95, method="wilson")
    assert (low, high) == (pytest.approx(ref.low, abs=1e-7), pytest.approx(ref.high, abs=1e-7))
    assert S.wilson(0, 10)[0] == 0.0
    assert S.wilson(10, 10)[1] == pytest.approx(1.0)  # exactly 1 in exact arithmetic


def test_length_mismatch_and_empty_input_are_refused():
    with pytest.raises(ValueError, match="same questions"):
        S.paired_bootstrap([1.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="No questions"):
        S.paired_bootstrap([], [])
    with pytest.raises(ValueError, match="same questions"):
        S.mcnemar_exact([True], [True, False])
