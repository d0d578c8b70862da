"""Paired statistics for comparing two systems on the same questions.

A paired bootstrap interval of the difference of any metric (corpus BLEU recomputed on every resample, as
sacrebleu's paired test does) and McNemar's exact test on exact match.

Both systems answered the same questions, so the right unit of resampling is the question: one set of resampled
question indices is applied to both systems (an unpaired test on paired data, as lm-evaluation-harness does, throws
that pairing away and is far too conservative or, with correlated errors, plainly wrong).
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

# McNemar's exact test cannot reach p < 0.05 with fewer discordant questions than this (2 · 0.5^6 = 0.031).
MIN_DISCORDANT = 6
MIN_QUESTIONS = 30


@dataclass(frozen=True)
class Interval:
    """A paired bootstrap interval of ``b - a``."""

    a: float
    b: float
    diff: float
    low: float
    high: float
    resamples: int
    confidence: float
    seed: int

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly on one side of 0."""
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict:
        """Return a JSON-able dict."""
        return {**asdict(self), "excludes_zero": self.excludes_zero}


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """The resampled question indices, shape (resamples, n): one draw with replacement per row, seeded."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def paired_bootstrap(
    a: Sequence,
    b: Sequence,
    statistic: Callable[[Sequence], float] | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    indices: np.ndarray | None = None,
) -> Interval:
    """Percentile interval of ``statistic(b) - statistic(a)`` over paired resamples of the questions.

    Args:
        a: Per-question values of the first system (numbers, or any rows ``statistic`` understands, such as BLEU
            sufficient statistics).
        b: The second system's, in the same question order.
        statistic: Aggregates a list of rows into the metric; the mean when omitted.
        resamples: Bootstrap resamples (at least 1,000 in reports).
        confidence: Interval coverage.
        seed: Seed of the resampling (a report is reproducible).
        indices: Precomputed resample indices (one set shared by every metric of a comparison).

    Returns:
        The interval.

    Raises:
        ValueError: If the systems have different numbers of rows or none.
    """
    if len(a) != len(b):
        raise ValueError(f"Paired data needs the same questions: {len(a)} vs {len(b)} rows")
    if not len(a):
        raise ValueError("No questions to compare")
    if indices is None:
        indices = resample_indices(len(a), resamples, seed)
    if statistic is None:
        va, vb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        diffs = vb[indices].mean(axis=1) - va[indices].mean(axis=1)
        point_a, point_b = float(va.mean()), float(vb.mean())
    else:
        diffs = np.array([statistic([b[i] for i in row]) - statistic([a[i] for i in row]) for row in indices])
        point_a, point_b = float(statistic(list(a))), float(statistic(list(b)))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return Interval(point_a, point_b, point_b - point_a, float(low), float(high), len(indices), confidence, seed)


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact (binomial) test on paired right/wrong outcomes."""

    both_right: int
    only_a: int  # a right, b wrong
    only_b: int  # b right, a wrong
    both_wrong: int
    p_value: float

    def to_dict(self) -> dict:
        """Return a JSON-able dict."""
        return asdict(self)


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> McNemar:
    """Two-sided exact McNemar test: the discordant pairs against Binomial(n, 1/2); p = 1 when none differ.

    Raises:
        ValueError: If the two lists differ in length.
    """
    if len(a) != len(b):
        raise ValueError(f"Paired data needs the same questions: {len(a)} vs {len(b)} rows")
    pairs = list(zip((bool(x) for x in a), (bool(y) for y in b), strict=True))
    only_a = sum(x and not y for x, y in pairs)
    only_b = sum(y and not x for x, y in pairs)
    n = only_a + only_b
    # Exact two-sided p: twice the smaller tail, capped at 1 (integer arithmetic, no rounding before the end).
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1))
    p = min(1.0, 2 * tail / 2**n) if n else 1.0
    return McNemar(sum(x and y for x, y in pairs), only_a, only_b, sum(not x and not y for x, y in pairs), p)


def separation_warnings(n_questions: int, test: McNemar | None = None) -> list[str]:
    """Plain warnings when the comparison has too few questions to tell the systems apart."""
    warnings = []
    if n_questions < MIN_QUESTIONS:
        warnings.append(f"Only {n_questions} questions were scored by both systems: intervals are wide and a real "
                        f"difference may not show (use at least {MIN_QUESTIONS}).")  # fmt: skip
    if test is not None and test.only_a + test.only_b < MIN_DISCORDANT:
        warnings.append(f"The systems disagree on exact match for {test.only_a + test.only_b} questions; McNemar's "
                        f"test cannot reach p < 0.05 with fewer than {MIN_DISCORDANT}.")  # fmt: skip
    return warnings


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion (95% by default); (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
