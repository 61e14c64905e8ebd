"""twostage-gym: Gymnasium environments for two-stage recommender and retrieval systems.

Importing the package registers every environment, so ``gym.make("TwoStage/Nominators-v0")``
works after ``import twostage_gym`` (or directly as ``gym.make("twostage_gym:TwoStage/...")``).
"""

from importlib.metadata import PackageNotFoundError, version

from twostage_gym.envs import ENV_IDS, register_envs

try:
    __version__ = version("twostage-gym")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

register_envs()

__all__ = ["ENV_IDS", "__version__", "register_envs"]
