"""Shared fixtures: every registered environment id."""

from __future__ import annotations

import pytest

import twostage_gym

ENV_IDS = list(twostage_gym.ENV_IDS)


@pytest.fixture(params=ENV_IDS)
def env_id(request) -> str:
    """Each registered ``TwoStage/...`` id in turn."""
    return request.param
