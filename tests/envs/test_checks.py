"""The shared argument checks (``twostage_gym.core.checks``) and the memory estimates built on them."""

from __future__ import annotations

import decimal
import fractions
import math

import numpy as np
import pytest

from twostage_gym.core import checks
from twostage_gym.core.checks import (
    check_memory,
    choice,
    format_bytes,
    integer,
    nonnegative_int,
    number,
    optional_positive_int,
    positive_int,
)
from twostage_gym.core.late_stage import LateStageRanker

NOT_INTEGERS = [True, False, np.bool_(True), 2.0, 2.5, "3", None, [3], np.array(3), np.float64(3.0), 1 + 0j]
NOT_NUMBERS = [
    True, np.bool_(False), "0.1", "1", None, [0.1], (0.1,), np.array(0.1), np.array([0.1]), 1 + 0j,
    fractions.Fraction(1, 4), decimal.Decimal("0.1"),
]  # fmt: skip


@pytest.mark.parametrize("value", [1, 7, np.int8(3), np.uint64(5), np.int64(10**12), 10**30])
def test_positive_int_accepts_integers_and_returns_python_ints(value):
    out = positive_int("n_items", value)
    assert out == int(value) and type(out) is int


@pytest.mark.parametrize("value", [*NOT_INTEGERS, 0, -5, np.int64(0)])
def test_positive_int_refuses_with_the_name(value):
    with pytest.raises(ValueError, match=r"^n_items must be"):
        positive_int("n_items", value)


def test_integer_ranges():
    assert nonnegative_int("world_seed", 0) == 0
    with pytest.raises(ValueError, match=r"world_seed must be an integer >= 0, got -1"):
        nonnegative_int("world_seed", -1)
    assert integer("s", 4, 1, 4) == 4
    with pytest.raises(ValueError, match=r"s must be an integer in \[1, 4\], got 5"):
        integer("s", 5, 1, 4)
    with pytest.raises(ValueError, match=r"s must be an integer <= 4"):
        integer("s", 5, high=4)
    assert optional_positive_int("max_episode_steps", None) is None
    assert optional_positive_int("max_episode_steps", np.int32(3)) == 3
    with pytest.raises(ValueError, match="max_episode_steps"):
        optional_positive_int("max_episode_steps", 0)


@pytest.mark.parametrize(
    "value", [0.1, 3, np.float32(0.25), np.float64(2.0), np.int64(4), np.uint8(1), np.float16(0.5)]
)
def test_number_accepts_reals_and_returns_the_same_float(value):
    out = number("noise_std", value, low=0.0)
    assert out == float(value) and type(out) is float


@pytest.mark.parametrize("value", NOT_NUMBERS)
def test_number_refuses_non_numbers_bools_and_strings(value):
    with pytest.raises(ValueError, match=r"^noise_std must be a real number"):
        number("noise_std", value, low=0.0)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float32("nan"), 10**400])
def test_number_refuses_non_finite(value):
    with pytest.raises(ValueError, match=r"^reward_scale must be a finite number > 0"):
        number("reward_scale", value, low=0.0, low_open=True)


def test_number_interval_ends():
    assert number("esr_temperature", 1e-6, 1e-6, 1e6) == 1e-6
    assert number("esr_temperature", 1e6, 1e-6, 1e6) == 1e6
    with pytest.raises(ValueError, match=r"esr_temperature must be a number in \[1e-06, 1e\+06\]"):
        number("esr_temperature", 1e-7, 1e-6, 1e6)
    with pytest.raises(ValueError, match=r"x must be a number in \(0, 1\)"):
        number("x", 1, 0, 1, low_open=True, high_open=True)
    with pytest.raises(ValueError, match=r"x must be a finite number < 1"):
        number("x", 2, high=1, high_open=True)
    with pytest.raises(ValueError, match=r"x must be a finite number, got inf"):
        number("x", math.inf)


def test_choice():
    assert choice("lsr", "noisy", ("optimal", "noisy")) == "noisy"
    assert choice("render_mode", None, ("ansi",), allow_none=True) is None
    for bad in (None, "greedy", ["noisy"], np.array(["noisy", "optimal"]), 1):
        with pytest.raises(ValueError, match=r"^lsr must be one of"):
            choice("lsr", bad, ("optimal", "noisy"))


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(64 * 2**30) == "64.0 GiB"
    assert format_bytes(2**60) == "1024.0 PiB"


def test_check_memory_names_the_sizes_and_reads_the_limit_at_call_time(monkeypatch):
    assert check_memory({"n_items": 10}, {"a": 100, "b": 20}) == 120
    monkeypatch.setattr(checks, "MEMORY_LIMIT_BYTES", 100)
    with pytest.raises(ValueError, match=r"n_items=10, dim=2: .* about 120 B \(the largest part, a: 100 B\)"):
        check_memory({"n_items": 10, "dim": 2}, {"a": 100, "b": 20})
    with pytest.raises(ValueError, match=r"above the limit of 100 B .*; pass world_seed"):
        check_memory({"n_items": 10}, {"a": 101}, advice="pass world_seed")


def test_the_default_limit_is_64_gib():
    assert checks.MEMORY_LIMIT_BYTES == 64 * 2**30


def test_noisy_lsr_exactness_is_decided_without_the_full_binomial_sum():
    # sum_{i<L} C(K, i) at K = L = 10^5 has ~30,000 digits and took many minutes; the capped
    # sum answers at once (this would hang, not fail, if the cap were lost).
    lsr = LateStageRanker("noisy")
    assert not lsr.is_exact(10**5, 10**5)
    assert lsr.is_exact(10, 5) and not lsr.is_exact(200, 3)
    assert lsr.working_memory(10, 1) == 0 and LateStageRanker("uniform").working_memory(10**5, 10**5) == 0
    assert lsr.working_memory(10**5, 10**5) == 24 * 1000 * 10**5  # Monte-Carlo: 1000 rankings of K items
