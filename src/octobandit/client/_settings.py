"""What both clients are configured with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

import octobandit
from octobandit.client._retry import Retry

#: the reward buffer retries longer: nobody waits for it, and giving up loses rewards
BUFFER_RETRY = Retry(attempts=10, max_backoff=8.0)


@dataclass(frozen=True, slots=True)
class Settings:
    base_url: str
    timeout: float | None
    retry: Retry
    buffer_retry: Retry
    headers: dict[str, str]

    @classmethod
    def make(
        cls,
        base_url: str,
        api_key: str | None,
        timeout: float | None,
        *,
        retry: Retry | None,
        headers: Mapping[str, str] | None,
        buffer_retry: Retry | None,
    ) -> Settings:
        sent = {
            "user-agent": f"octobandit-python/{octobandit.__version__} httpx/{httpx.__version__}",
            "accept": "application/json",
            **(headers or {}),
        }
        if api_key is not None:
            sent["authorization"] = f"Bearer {api_key}"
        return cls(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            retry=retry if retry is not None else Retry(),
            buffer_retry=buffer_retry if buffer_retry is not None else BUFFER_RETRY,
            headers=sent,
        )
