"""Click models: from a real-valued user-item score to an expected click and a sampled click.

The simulator of the topic-item paper (*Two-Stage Neural Contextual Bandits for Adaptive
Personalised Recommendations*, Sec. 4, "Off-Policy Bandit Simulator") turns a score into a
deterministic label y = 1[score >= THRES], with THRES chosen so that positives are sparse, and
then flips the label with probability 0.1 to model the user's preference noise. The
``"bernoulli"`` model is the smooth alternative: y ~ Bernoulli(sigmoid(LOGIT_SCALE (score - c))).

Both are calibrated per world from a sample of scores (:meth:`ClickModel.calibrated`), so a
world's positive rate is set by an argument rather than by the scale of its scores.
"""

from __future__ import annotations

import numpy as np

from twostage_gym.core.checks import choice, number

__all__ = ["CLICK_MODELS", "LOGIT_SCALE", "ClickModel", "bernoulli_offset", "sigmoid", "threshold_for_rate"]

CLICK_MODELS = ("threshold", "bernoulli")

LOGIT_SCALE = 2.0
"""Slope of the Bernoulli model's logit in the score. Synthetic scores have unit scale, so a slope
of 2 lets a user's best items reach click probabilities near 0.9 while the average pair stays at
the calibrated positive rate; with a slope of 1 even the best items would click about half the time."""


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow warnings: exp(-logaddexp(0, -x))."""
    return np.exp(-np.logaddexp(0.0, -np.asarray(x, dtype=np.float64)))


def threshold_for_rate(scores: np.ndarray, rate: float) -> float:
    """The score threshold that makes a share ``rate`` of ``scores`` positive (score >= threshold).

    The k-th largest score with k = max(1, round(rate * n)): exactly k of the sample are positive
    when there are no ties at the threshold.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    k = min(s.size, max(1, round(rate * s.size)))
    return float(np.partition(s, s.size - k)[s.size - k])


def bernoulli_offset(scores: np.ndarray, rate: float, scale: float = LOGIT_SCALE, iterations: int = 60) -> float:
    """The offset c with mean(sigmoid(scale (scores - c))) = ``rate``, by bisection.

    The mean decreases in c, so 60 halvings of a bracket that holds the root pin it to float
    precision.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    lo, hi = float(s.min()) - 50.0 / scale, float(s.max()) + 50.0 / scale
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if sigmoid(scale * (s - mid)).mean() > rate:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


class ClickModel:
    """Expected and sampled clicks of user-item scores.

    Args:
        kind: ``"threshold"`` (label 1[score >= threshold], flipped with probability
            ``flip_prob``) or ``"bernoulli"`` (click ~ Bernoulli(sigmoid(scale (score - threshold)))).
        threshold: THRES of the threshold model, the offset c of the Bernoulli model.
        flip_prob: the threshold model's flip probability, in [0, 0.5]; must be 0 for Bernoulli.
        scale: the Bernoulli model's logit slope.
    """

    def __init__(self, kind: str, threshold: float, flip_prob: float = 0.1, scale: float = LOGIT_SCALE) -> None:
        self.kind = choice("click_model", kind, CLICK_MODELS)
        self.threshold = number("threshold", threshold)
        self.flip_prob = number("flip_prob", flip_prob, 0.0, 0.5)
        if kind == "bernoulli" and self.flip_prob != 0.0:
            raise ValueError("flip_prob applies to the threshold click model only")
        self.scale = number("scale", scale, low=0.0, low_open=True)

    @classmethod
    def calibrated(cls, kind: str, scores: np.ndarray, positive_rate: float, flip_prob: float = 0.1) -> ClickModel:
        """The model whose positives (threshold) or mean click probability (Bernoulli) make up a
        share ``positive_rate`` of the sampled ``scores``."""
        if kind == "threshold":
            return cls(kind, threshold_for_rate(scores, positive_rate), flip_prob)
        return cls(kind, bernoulli_offset(scores, positive_rate), 0.0)

    def labels(self, scores: np.ndarray) -> np.ndarray:
        """The noiseless labels 1[score >= threshold] (bool); for Bernoulli, click probability >= 0.5."""
        return np.asarray(scores) >= self.threshold

    def expected(self, scores: np.ndarray) -> np.ndarray:
        """Click probabilities (float64), the flip included: 1 - f for a positive, f for a negative."""
        if self.kind == "threshold":
            return np.where(self.labels(scores), 1.0 - self.flip_prob, self.flip_prob)
        return sigmoid(self.scale * (np.asarray(scores, dtype=np.float64) - self.threshold))

    def sample(self, scores: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """Clicks (int64) from ``uniforms`` in [0, 1) of the same shape, one per score.

        Threshold model: the label, flipped where the uniform falls below ``flip_prob``.
        Bernoulli: a click where the uniform falls below the click probability.
        """
        if self.kind == "threshold":
            return (self.labels(scores) ^ (uniforms < self.flip_prob)).astype(np.int64)
        return (uniforms < self.expected(scores)).astype(np.int64)
