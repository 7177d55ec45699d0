"""Whether a decision could be recorded right now: the audit store's write probe, cached for a moment so that a
load balancer polling /health every second costs at most one small commit per worker per interval."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("cds.service")

PROBE_TTL_S = 1.5


class CachedWriteProbe:
    def __init__(
        self, probe: Callable[[], None], ttl_s: float = PROBE_TTL_S, clock: Callable[[], float] = time.monotonic
    ):
        self._probe = probe
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()  # concurrent health checks wait for one probe instead of each writing
        self._checked_at: float | None = None
        self._writable = False

    def writable(self) -> bool:
        """True when the last probe, at most ``ttl_s`` old, committed; probes again otherwise. Blocking: call
        it from a worker thread."""
        with self._lock:
            now = self._clock()
            if self._checked_at is None or now - self._checked_at >= self._ttl_s:
                self._writable = self._try()
                self._checked_at = self._clock()
            return self._writable

    def _try(self) -> bool:
        try:
            self._probe()
        except Exception:
            log.exception("health: the audit log cannot be written")
            return False
        return True
