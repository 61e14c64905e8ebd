"""Hypothesis strategies of invalid input, derived from type hints and action spaces.

Every strategy here is generic: it reads a constructor's annotations or an env's action space,
so an env, agent or PettingZoo module is covered by being registered.

* :func:`invalid_for` draws values that no argument with that annotation may accept (a bool
  or a string where a number belongs, NaN, a list where a scalar belongs, an unknown choice).
* :func:`extreme_for` draws values of the right type but at the edges (negative, zero, sizes
  no memory holds, infinities): an argument either accepts them or refuses them by name.
* :func:`actions_near` draws actions around a space: right shape with out-of-range or
  non-finite entries, wrong dtypes, wrong shapes, and objects that are no array at all.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from hypothesis import strategies as st

FREE_TEXT: set[str] = set()
"""Names of ``str`` arguments that take free text, where an unknown string is no error. None so far."""

_NONE = type(None)


def hints(func: Callable[..., Any], skip: Sequence[str] = ("self", "env", "return")) -> dict[str, Any]:
    """{argument: annotation} of ``func``'s keyword arguments (resolved), without ``skip``."""
    target = func.__init__ if inspect.isclass(func) else func
    resolved = typing.get_type_hints(target)
    params = inspect.signature(target).parameters
    return {
        name: resolved.get(name, Any)
        for name, p in params.items()
        if name not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def members(annotation: Any) -> list[Any]:
    """The types a (possibly ``X | None``) annotation admits, e.g. ``[float, NoneType]``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return list(typing.get_args(annotation))
    return [annotation]


def _base(member: Any) -> Any:
    origin = typing.get_origin(member)
    return origin if origin is not None else member


def admits(member: Any, value: Any) -> bool:
    """Whether ``value`` has a type that an argument annotated ``member`` could accept."""
    base = _base(member)
    if base is _NONE:
        return value is None
    if base is bool:
        return isinstance(value, (bool, np.bool_))
    if base is int:
        return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if base is float:
        return (
            isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_))
            and math.isfinite(value)
        )
    if base is str:
        return isinstance(value, str)
    if base in (Sequence, list, tuple, typing.Sequence):
        return isinstance(value, (list, tuple, np.ndarray))
    return True  # an annotation this module does not know: anything may be valid


_WRONG_TYPES = [
    True,
    False,
    None,
    2.5,
    -0.5,
    float("nan"),
    float("inf"),
    "3",
    "0.1",
    "",
    b"1",
    1 + 2j,
    [1],
    [0.1],
    (),
    {},
    {"a": 1},
    object(),
]


def _unknown_choice() -> st.SearchStrategy[str]:
    return st.text(alphabet="abcdefghijklmnopqrstuvwxyz-+_", max_size=8).map(lambda s: f"zz-{s}")


def _bad_sequence_entries() -> st.SearchStrategy[Any]:
    """Nested sequences whose entries are no item or feature id."""
    return st.sampled_from([[[0.5]], [["a"]], [[None]], [[True]], [[float("nan")]], [[[0]]], [0.5], ["ab"], [{}]])


def invalid_for(annotation: Any, name: str) -> st.SearchStrategy[Any]:
    """Values that no argument ``name`` annotated ``annotation`` may accept."""
    admitted = members(annotation)
    if any(_base(m) is Any or (inspect.isclass(_base(m)) and _base(m) is object) for m in admitted):
        return st.nothing()  # unannotated: nothing is invalid by type
    wrong = st.sampled_from(_WRONG_TYPES).filter(lambda v: not any(admits(m, v) for m in admitted))
    options = [wrong]
    bases = {_base(m) for m in admitted}
    if str in bases and name not in FREE_TEXT:
        options.append(_unknown_choice())
    if bases & {Sequence, list, tuple, typing.Sequence}:
        options.append(_bad_sequence_entries())
    return st.one_of(options)


_EXTREME_INTS = [-1, 0, -(10**13), 10**13, 2**62, 2**63, 10**30]
_EXTREME_FLOATS = [-1.0, 0.0, -1e-300, 1e-300, 1e300, -1e300, float("inf"), float("-inf")]


def extreme_for(annotation: Any) -> st.SearchStrategy[Any]:
    """Values of an admitted type at the edges: negative, zero, beyond memory, infinite."""
    bases = {_base(m) for m in members(annotation)}
    options = []
    if int in bases:
        options.append(st.sampled_from(_EXTREME_INTS))
        options.append(st.sampled_from([np.int64(-1), np.int32(0), np.int64(2**62)]))
    if float in bases:
        options.append(st.sampled_from(_EXTREME_FLOATS))
    return st.one_of(options) if options else st.nothing()


# -- actions ---------------------------------------------------------------------------------

_OTHER_DTYPES = ["float64", "float32", "float16", "int8", "int32", "int64", "uint64", "bool", "complex64", "object"]
_NOT_ARRAYS = [None, "0", "", [], {}, [[0]], "nan", b"\x00", 1.5]


def _valid_like(space: spaces.Space, rng: np.random.Generator) -> np.ndarray:
    """An array of the space's shape and dtype whose entries are in range."""
    if isinstance(space, spaces.MultiDiscrete):
        return (rng.random(space.shape) * space.nvec).astype(space.dtype) + space.start
    if isinstance(space, spaces.Discrete):
        return np.asarray(space.start + rng.integers(space.n), dtype=space.dtype)
    if isinstance(space, spaces.MultiBinary):
        return rng.integers(0, 2, space.shape).astype(space.dtype)
    if isinstance(space, spaces.Box) and not _floating(space):
        return rng.integers(space.low, space.high, endpoint=True).astype(space.dtype)
    if isinstance(space, spaces.Box):
        low = np.maximum(space.low, -10.0)
        high = np.minimum(space.high, 10.0)
        return rng.uniform(low, high).astype(space.dtype)
    raise TypeError(f"no action strategy for {space}")


def _floating(space: spaces.Space) -> bool:
    return np.dtype(space.dtype).kind == "f"


def _specials(space: spaces.Space) -> list[Any]:
    """Entries out of the space's range or not finite."""
    if _floating(space):
        big = float(np.max(np.abs(np.where(np.isfinite(space.high), space.high, 1e30)))) * 2
        return [float("nan"), float("inf"), -float("inf"), big, -big, 3.4e38]
    if isinstance(space, spaces.Box):  # an integer Box, e.g. a batch of MultiDiscrete actions
        high = int(np.max(space.high)) + 1
    else:
        high = int(np.max(getattr(space, "nvec", getattr(space, "n", 2)))) + int(np.max(getattr(space, "start", 0)))
    return [-1, -(2**62), high, high + 7, 2**62]


@st.composite
def actions_near(draw: st.DrawFn, space: spaces.Space) -> Any:
    """An action around ``space``: mostly invalid, sometimes valid (the twin check covers both)."""
    kind = draw(st.sampled_from(["values", "values", "dtype", "shape", "not-an-array", "list"]))
    if kind == "not-an-array":
        return draw(st.sampled_from(_NOT_ARRAYS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    base = _valid_like(space, rng)
    if kind == "shape":
        shape = draw(
            st.lists(st.integers(0, max((*space.shape, 1)) + 2), min_size=0, max_size=3)
            .map(tuple)
            .filter(lambda s: s != space.shape)
        )
        return np.resize(base, shape) if base.size and math.prod(shape) else np.zeros(shape, dtype=space.dtype)
    if kind == "dtype":
        dtype = draw(st.sampled_from(_OTHER_DTYPES))
        return base.astype(dtype)
    if kind == "list":
        return base.tolist()
    out = base.astype(np.float64) if _floating(space) else base.astype(np.int64)
    if out.ndim == 0:
        out = out.reshape(())
    flat = out.reshape(-1)
    n_bad = draw(st.integers(1, min(3, max(1, flat.size))))
    for _ in range(n_bad):
        index = draw(st.integers(0, max(0, flat.size - 1)))
        value = draw(st.sampled_from(_specials(space)))
        if flat.size:
            flat[index] = value
    return flat.reshape(out.shape).astype(space.dtype, copy=False) if draw(st.booleans()) else flat.reshape(out.shape)


def contains(space: spaces.Space, action: Any) -> bool:
    """``space.contains(action)``, False where the check itself fails on a strange object."""
    try:
        with warnings.catch_warnings():  # Box.contains warns that it casts a list: not news here
            warnings.simplefilter("ignore")
            return bool(space.contains(action))
    except Exception:
        return False


def family_env_ids(family: str) -> list[str]:
    """The registered env ids whose learners are ``family``'s (ids no family plays yet are skipped)."""
    import agents
    import twostage_gym

    ids = []
    for env_id in twostage_gym.ENV_IDS:
        try:
            if agents.family_of(env_id) == family:
                ids.append(env_id)
        except ValueError:  # an env whose family has registered no learners yet
            continue
    return ids
