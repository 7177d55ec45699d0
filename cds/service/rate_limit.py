"""A rate limit for refusals: a client (remote address and claimed issuer) whose calls keep failing
authentication gets 429 with Retry-After once it has used up a burst, instead of a 401 per call.

Only failures draw on the budget: a call that authenticates is never limited, so a real EHR behind the same
address as a misconfigured one still gets its answers. A token bucket per client (``burst`` refusals at once,
refilled at ``per_s``); at most ``max_clients`` buckets, the least recently refused forgotten first.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class RefusalLimiter:
    def __init__(
        self,
        burst: int,
        per_s: float,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst = burst
        self._per_s = per_s
        self._max_clients = max_clients
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, updated)

    @property
    def enabled(self) -> bool:
        return self._burst > 0 and self._per_s > 0

    def refuse(self, client: str) -> int | None:
        """Count one refusal for ``client``: None while within its budget (answer 401), else the seconds to
        wait before the next refusal would be within it again (answer 429 with that Retry-After)."""
        if not self.enabled:
            return None
        now = self._clock()
        with self._lock:
            tokens, updated = self._buckets.pop(client, (float(self._burst), now))
            tokens = min(float(self._burst), tokens + (now - updated) * self._per_s)
            wait = None
            if tokens >= 1:
                tokens -= 1
            else:
                wait = max(1, math.ceil((1 - tokens) / self._per_s))
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
        return wait
