"""octobandit: adaptive experiments (multi-armed bandits) in production."""

__version__ = "0.1.0"
