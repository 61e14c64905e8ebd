"""Checks of constructor arguments, shared by every environment of the suite.

The rule (ARCHITECTURE.md, "Bad input"): an invalid constructor argument raises ``ValueError``
naming the argument, at ``make`` time; nothing is clipped, rounded or reinterpreted. So:

- an integer argument takes a Python or numpy integer, never a bool (``True`` is not a count),
  a float (``2.0`` would be a silent conversion, ``2.5`` a silent truncation) or a string;
- a real argument takes a Python or numpy integer or float, never a bool or a string (``"0.1"``
  is refused, not parsed), and must be finite;
- a size whose arrays would not fit in memory is refused with the estimated bytes, instead of a
  ``MemoryError`` (or a swapping machine) at space construction, at ``reset`` or at ``step``.

Each check returns the value converted to the Python type the environment stores, so a valid
argument gives exactly what it gave before the check existed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np

__all__ = [
    "MEMORY_LIMIT_BYTES",
    "boolean",
    "check_memory",
    "choice",
    "format_bytes",
    "index_dtype",
    "integer",
    "nonnegative_int",
    "number",
    "optional_positive_int",
    "positive_int",
]

MEMORY_LIMIT_BYTES = 64 * 2**30
"""The largest estimated allocation (bytes) an environment accepts at construction: 64 GiB.

A fixed number rather than a fraction of this machine's memory, so that whether a configuration
is valid does not depend on where it runs (a study file that is accepted on a laptop is
accepted on a cluster node, and tests give the same answer everywhere). 64 GiB is far above
every documented configuration (the largest, EarlyStageRanker-v0 with ``n_items=10**6``, needs
well under 1 GiB, and 128 sub-envs of it a few GiB) and far below the sizes that are
typos (``n_items=10**12``). A configuration under the limit can still exceed a small machine's
memory; raise or lower the limit by assigning this module attribute (it is read at each check).
"""


def _type_name(value: Any) -> str:
    return type(value).__name__


def integer(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """Check that ``value`` is an integer in [``low``, ``high``] and return it as a Python int.

    Args:
        name: the argument's name, as the user spells it (it starts the error message).
        value: the argument.
        low: the smallest valid value, or None for no bound.
        high: the largest valid value, or None for no bound.

    Raises:
        ValueError: ``value`` is a bool, not an integer (a float, a string, None, a list...),
            or outside the range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer (int or numpy integer), got {_type_name(value)} {value!r}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        if high is None:
            what = "a positive integer" if low == 1 else f"an integer >= {low}"
        elif low is None:
            what = f"an integer <= {high}"
        else:
            what = f"an integer in [{low}, {high}]"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return v


def boolean(name: str, value: Any, allow_none: bool = False) -> bool | None:
    """Check that ``value`` is a bool (Python or numpy), or None where allowed; never an int standing for one.

    Raises:
        ValueError: naming ``name``, for any other value (``1``, ``"yes"``, ``[True]``).
    """
    if value is None and allow_none:
        return None
    if not isinstance(value, (bool, np.bool_)):
        what = "a bool or None" if allow_none else "a bool"
        raise ValueError(f"{name} must be {what}, got {type(value).__name__} {value!r}")
    return bool(value)


def positive_int(name: str, value: Any) -> int:
    """``integer(name, value, low=1)``: a count such as ``n_items`` or ``num_envs``."""
    return integer(name, value, low=1)


def nonnegative_int(name: str, value: Any) -> int:
    """``integer(name, value, low=0)``: e.g. a seed."""
    return integer(name, value, low=0)


def optional_positive_int(name: str, value: Any) -> int | None:
    """None, or a positive integer (e.g. ``max_episode_steps``, where None means no limit)."""
    return None if value is None else positive_int(name, value)


def optional(check: Callable[..., Any], name: str, value: Any, *args: Any, **kwargs: Any) -> Any:
    """None, or ``check(name, value, *args, **kwargs)``: an argument where None means a default or off."""
    return None if value is None else check(name, value, *args, **kwargs)


def index_dtype(what: str, array: np.ndarray) -> None:
    """Refuse an array of ids or indices whose dtype is not an integer type that int64 holds exactly.

    Floats, bools and objects are refused, and so is uint64, whose values above 2**63 - 1 would
    wrap when cast to int64: the rule of gymnasium's integer spaces (a safe cast to int64).

    Raises:
        ValueError: naming ``what`` and the dtype.
    """
    if array.dtype.kind not in "iu" or not np.can_cast(array.dtype, np.int64):
        raise ValueError(f"{what} must be integers that int64 holds (the space's dtype), got dtype {array.dtype}")


def within_bound(what: str, array: np.ndarray, bound: float, unit: str) -> None:
    """Refuse an action array with a NaN, an infinite entry or one outside ``[-bound, bound]``.

    Args:
        what: the array's name in the message (e.g. ``"scores"``).
        array: the action, already of the space's shape and dtype.
        bound: the action space's bound.
        unit: one entry's name in the message (e.g. ``"score"``).

    Raises:
        ValueError: naming the first offending entry, its value and index.
    """
    if array.size and not (array.min() >= -bound and array.max() <= bound):  # False for NaN too
        bad = ~(np.abs(array) <= bound)
        where = np.unravel_index(int(np.argmax(bad)), array.shape)
        value, index = array[where], tuple(int(i) for i in where)
        if not np.isfinite(value):
            raise ValueError(f"{what} must be finite, got {value} at index {index}")
        raise ValueError(f"{unit} {value} at index {index} is outside the action space [-{bound:g}, {bound:g}]")


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if low == -np.inf and high == np.inf:
        return "a finite number"
    if high == np.inf:
        return f"a finite number {'>' if low_open else '>='} {low:g}"
    if low == -np.inf:
        return f"a finite number {'<' if high_open else '<='} {high:g}"
    return f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def number(
    name: str,
    value: Any,
    low: float = -np.inf,
    high: float = np.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Check that ``value`` is a finite real number in the interval and return it as a Python float.

    Args:
        name: the argument's name (it starts the error message).
        value: the argument: an int, float, numpy integer or numpy float; not a bool, a string
            (``"0.1"`` is refused, not parsed), None, an array, a list or another number type
            (a Fraction or Decimal would not mix with numpy arithmetic the way a float does).
        low, high: the interval's ends (infinite for no bound).
        low_open, high_open: whether the interval excludes ``low`` / ``high``.

    Raises:
        ValueError: naming ``name``, when ``value`` is not a real number, is NaN or infinite,
            or lies outside the interval.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(
            f"{name} must be a real number (int or float, not bool or str), got {_type_name(value)} {value!r}"
        )
    try:
        v = float(value)
    except OverflowError:  # an int beyond float range
        v = np.inf
    ok = np.isfinite(v) and (low < v if low_open else low <= v) and (v < high if high_open else v <= high)
    if not ok:
        raise ValueError(f"{name} must be {_interval(low, high, low_open, high_open)}, got {value!r}")
    return v


def choice(name: str, value: Any, options: Collection[str], allow_none: bool = False) -> str | None:
    """Check that ``value`` is one of the strings ``options`` (or None where allowed) and return it.

    Comparing only strings keeps an array or another unhashable value from raising numpy's
    ambiguous-truth error instead of a message that names the argument.
    """
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or value not in options:
        shown = tuple(options) + ((None,) if allow_none else ())
        raise ValueError(f"{name} must be one of {shown}, got {value!r}")
    return value


def format_bytes(nbytes: float) -> str:
    """``nbytes`` in binary units, e.g. ``'1.5 GiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")


def check_memory(
    sizes: Mapping[str, Any], parts: Mapping[str, int], advice: str = "reduce these sizes", owner: str = "environment"
) -> int:
    """Refuse a configuration whose estimated allocation exceeds :data:`MEMORY_LIMIT_BYTES`.

    Args:
        sizes: the size arguments that determine the estimate, by name (they are named in
            the message, so the user knows what to reduce).
        parts: the estimated bytes of the largest arrays, by what they hold.
        advice: what to do about it, ending the message.
        owner: what would allocate it (``"environment"``, ``"learner"``), for the message.

    Returns:
        The estimated total in bytes.

    Raises:
        ValueError: naming the size arguments, the estimate, its largest part and the limit.
    """
    total = int(sum(parts.values()))
    limit = MEMORY_LIMIT_BYTES
    if total > limit:
        largest = max(parts, key=parts.__getitem__)
        args = ", ".join(f"{k}={v!r}" for k, v in sizes.items())
        raise ValueError(
            f"{args}: the {owner} would allocate about {format_bytes(total)} "
            f"(the largest part, {largest}: {format_bytes(parts[largest])}), above the limit of "
            f"{format_bytes(limit)} (twostage_gym.core.checks.MEMORY_LIMIT_BYTES); {advice}"
        )
    return total
