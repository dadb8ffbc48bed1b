"""Per-key limits: requests per minute, tokens per minute, concurrent streams.

In-process sliding windows over the last 60 s (one replica's view: with several replicas each
enforces the limits on its own share). A request is admitted only if every limit of its key
allows it; it then holds a `Lease` until its generation ends, whose release frees its stream
slot and counts the tokens its usage reported.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from llms.adapters.usage import from_count
from llms.config import ApiKey
from llms.errors import RateLimited
from llms.wire import Usage

WINDOW_S = 60.0
# With no window to wait for, a client refused a stream slot is told to try again after this.
STREAM_RETRY_S = 1


class KeyWindow:
    """The recent activity of one key."""

    __slots__ = ("requests", "streams", "token_total", "tokens")

    def __init__(self) -> None:
        self.requests: deque[float] = deque()  # admission times
        self.tokens: deque[list[float]] = deque()  # [second, tokens] per second with usage
        self.token_total = 0
        self.streams = 0

    def prune(self, now: float) -> None:
        horizon = now - WINDOW_S
        requests = self.requests
        while requests and requests[0] <= horizon:
            requests.popleft()
        tokens = self.tokens
        while tokens and tokens[0][0] <= horizon:
            self.token_total -= int(tokens.popleft()[1])

    def add_tokens(self, now: float, count: int) -> None:
        # Finished requests of the same second share one entry (at most 60 per key); an entry
        # leaves the window when its second does, so the window is 60 s to within 1 s.
        second = math.floor(now)
        if self.tokens and self.tokens[-1][0] == second:
            self.tokens[-1][1] += count
        else:
            self.tokens.append([second, count])
        self.token_total += count


class Lease:
    """One admitted request: `release` (idempotent) frees its slot and counts its tokens."""

    __slots__ = ("_limits", "_window", "released")

    def __init__(self, limits: Limits | None, window: KeyWindow | None) -> None:
        self._limits = limits
        self._window = window
        self.released = False

    def release(self, usage: Usage | None = None) -> None:
        if self.released:
            return
        self.released = True
        window = self._window
        if window is None or self._limits is None:
            return
        window.streams -= 1
        tokens = tokens_of(usage)
        if tokens:
            window.add_tokens(self._limits.clock(), tokens)


UNLIMITED = Lease(None, None)


def tokens_of(usage: Usage | None) -> int:
    """The tokens a finished request used, by its usage (0 when the upstream reported none)."""
    # Whatever a record holds, the lease is released: a bad usage counts 0, never raises.
    if not usage or not isinstance(usage, dict):
        return 0
    total = from_count(usage.get("total_tokens"))
    if total:
        return total
    counts = (from_count(usage.get("prompt_tokens")), from_count(usage.get("completion_tokens")))
    return sum(n for n in counts if n)


class Limits:
    """The windows of every key that has a limit, by key name (names are unique)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._windows: dict[str, KeyWindow] = {}

    def window(self, key: ApiKey) -> KeyWindow:
        window = self._windows.get(key.name)
        if window is None:
            window = self._windows[key.name] = KeyWindow()
        return window

    def admit(self, key: ApiKey | None) -> Lease:
        """A lease for one request of `key`; raises 429 (with Retry-After) over any limit."""
        if key is None or (key.rpm is None and key.tpm is None and key.max_streams is None):
            return UNLIMITED
        now = self.clock()
        window = self.window(key)
        window.prune(now)
        if key.rpm is not None and len(window.requests) >= key.rpm:
            wait = window.requests[0] + WINDOW_S - now
            raise _refused(
                key,
                f"{key.rpm} requests per minute (rpm); {len(window.requests)} were made in the "
                "last 60 s",
                wait,
            )
        if key.tpm is not None and window.token_total >= key.tpm:
            raise _refused(
                key,
                f"{key.tpm} tokens per minute (tpm); {window.token_total} were used in the "
                "last 60 s",
                _tokens_wait(window, key.tpm, now),
            )
        if key.max_streams is not None and window.streams >= key.max_streams:
            raise _refused(
                key,
                f"{key.max_streams} concurrent streams (max_streams); {window.streams} are running",
                STREAM_RETRY_S,
            )
        if key.rpm is not None:
            window.requests.append(now)
        window.streams += 1
        return Lease(self, window)


def _tokens_wait(window: KeyWindow, tpm: int, now: float) -> float:
    """Seconds until enough of the window's tokens age out to go under `tpm`."""
    total = window.token_total
    for second, count in window.tokens:
        total -= int(count)
        if total < tpm:
            return second + WINDOW_S - now
    return WINDOW_S


def _refused(key: ApiKey, limit: str, wait_s: float) -> RateLimited:
    seconds = max(1, math.ceil(wait_s))
    return RateLimited(
        f"Rate limit reached for the API key {key.name!r}: {limit}. Try again in {seconds} s.",
        headers={"Retry-After": str(seconds), "retry-after-ms": str(seconds * 1000)},
    )
