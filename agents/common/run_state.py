"""The saved state of a batched run, for resuming it after a kill (``agents.evaluate``'s ``state_file``).

A state file is written with ``torch.save`` and read with ``torch.load(..., weights_only=True)``:
it holds tensors and plain Python values only (numbers, strings, lists, dicts, None), never
pickled objects, so reading a file cannot run code. It is written to a temporary file first and
then renamed over the old one, so a kill during a save leaves the previous state intact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["FORMAT", "read_run_state", "write_run_state"]

FORMAT = 1
"""Version of the state layout; a file of another version is refused."""

_TORCH_HINT = 'saving a run\'s state needs torch: pip install "twostage-gym[torch]"'


def _torch() -> Any:
    try:
        import torch
    except ModuleNotFoundError as err:
        raise ImportError(_TORCH_HINT) from err
    return torch


def write_run_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` (with its format version) to ``path``, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _torch().save({"format": FORMAT, **state}, tmp)
    os.replace(tmp, path)


def read_run_state(path: str | os.PathLike[str], run: dict[str, Any]) -> dict[str, Any]:
    """Read the state at ``path`` and check that it is of the run described by ``run``.

    Raises:
        ValueError: the file is no run state of this format, or the state of another run.
    """
    try:
        state = _torch().load(Path(path), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a file that is not its own
        raise ValueError(f"{path} is not a readable run state: {type(err).__name__}: {err}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a run state of format {FORMAT}")
    if state.get("run") != run:
        raise ValueError(f"{path} is the state of another run ({state.get('run')}), not of {run}")
    return state
