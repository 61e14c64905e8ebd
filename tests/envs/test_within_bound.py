"""``core.checks.within_bound``: the bound check that every scores / logits action shares."""

from __future__ import annotations

import numpy as np
import pytest

from twostage_gym.core.checks import within_bound


def test_within_bound_accepts_the_closed_interval() -> None:
    within_bound("scores", np.array([-2.0, 0.0, 2.0], dtype=np.float32), 2.0, "score")
    within_bound("scores", np.zeros(0, dtype=np.float32), 2.0, "score")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([0.0, np.nan, 3.0], "logits must be finite, got nan at index (1,)"),
        ([0.0, 1.0, -np.inf], "logits must be finite, got -inf at index (2,)"),
        ([0.0, 2.5, np.nan], "logit 2.5 at index (1,) is outside the action space [-2, 2]"),
    ],
)
def test_within_bound_names_the_first_offending_entry(values: list[float], message: str) -> None:
    with pytest.raises(ValueError) as err:
        within_bound("logits", np.array(values, dtype=np.float32), 2.0, "logit")
    assert str(err.value) == message
