"""Persisting a stateful policy's learned state (named float arrays, shape (1, K, ...)).

>>> import numpy as np
>>> state = {"w": np.arange(6.0).reshape(1, 3, 2)}
>>> back = decode_state(encode_state(state))
>>> bool((back["w"] == state["w"]).all()), back["w"].shape
(True, (1, 3, 2))
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from octobandit.policies import Policy
from octobandit.policies.base import FloatArray

State = dict[str, FloatArray]


def encode_state(state: State) -> bytes:
    """Bit-exact encoding (msgpack of shape + raw little-endian float64 bytes)."""
    return msgspec.msgpack.encode(
        {
            k: [list(v.shape), np.ascontiguousarray(v, dtype="<f8").tobytes()]
            for k, v in state.items()
        }
    )


def decode_state(blob: bytes) -> State:
    raw: dict[str, Any] = msgspec.msgpack.decode(blob)
    return {
        k: np.frombuffer(data, dtype="<f8").astype(np.float64).reshape(shape)
        for k, (shape, data) in raw.items()
    }


def load_state(policy: Policy, blob: bytes | None, k: int, dim: int) -> State:
    """The stored state, or a fresh one; grown with fresh arms if arms were added since."""
    if blob is None:
        return policy.init_state(1, k, dim)
    state = decode_state(blob)
    have = min((v.shape[1] for v in state.values()), default=k)
    if have < k:
        extra = policy.init_state(1, k - have, dim)
        state = {name: np.concatenate([v, extra[name]], axis=1) for name, v in state.items()}
    return state
