"""Posterior and interval statistics for bandit arms."""
