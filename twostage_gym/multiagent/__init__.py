"""PettingZoo versions of the suite's environments (``pip install "twostage-gym[multiagent]"``).

Each environment is a module ``<name>_v<N>`` exposing ``parallel_env(**kwargs)``, ``env(**kwargs)``
(the AEC form) and ``raw_env`` (the ``ParallelEnv`` class), as in PettingZoo's own suites:

>>> from twostage_gym.multiagent import nominators_v0
>>> env = nominators_v0.parallel_env(n_items=20, dim=4, n_nominators=2)

Modules are imported on first use, so ``import twostage_gym`` never needs pettingzoo.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["nominators_v0"]


def __getattr__(name: str) -> ModuleType:
    # Lazy submodules: pettingzoo is imported only when a multi-agent env is asked for.
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
