"""Authentication failures, counted rather than logged one by one: anyone who can reach the port can send them.

Each failure adds one to a count in memory keyed by (minute, issuer, reason, endpoint); the counts are written
now and then (every ``flush_s`` and when the service stops) as one row per key in ``audit_auth_failures``,
adding to a row another worker or an earlier flush wrote. The issuer is a trusted client's ``iss`` that the
token claimed (not proven: the token failed), else "unknown", so an attacker cannot mint keys; the number of
keys held in memory is capped all the same (``max_keys``; beyond it failures count under reason "other").
The table is operational, outside the hash chain: it says how many calls were refused, when, and why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, Engine, Integer, MetaData, PrimaryKeyConstraint, String, Table, case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.expression import Executable

log = logging.getLogger("cds.service")

UNKNOWN = "unknown"
OVERFLOW_REASON = "other"
ENDPOINTS = ("hook", "discovery", "feedback")

metadata = MetaData()
auth_failures = Table(
    "audit_auth_failures",
    metadata,
    Column("minute", String(17), nullable=False),  # UTC, 2026-12-06T06:41Z
    Column("issuer", String(512), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("endpoint", String(16), nullable=False),
    Column("count", Integer, nullable=False),
    Column("throttled", Integer, nullable=False),  # of which answered 429 (rate limit) rather than 401
    Column("first_seen", String(40), nullable=False),
    Column("last_seen", String(40), nullable=False),
    PrimaryKeyConstraint("minute", "issuer", "reason", "endpoint"),
)

Key = tuple[str, str, str, str]  # minute, issuer, reason, endpoint


@dataclass
class Tally:
    count: int
    throttled: int
    first_seen: str
    last_seen: str

    def merge(self, other: Tally) -> None:
        self.count += other.count
        self.throttled += other.throttled
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)


class AuthFailureLog:
    """Thread-safe; ``record`` costs a dictionary update, never a database write."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_keys: int = 1000,
        flush_s: float = 15.0,
        clock: Callable[[], float] = time.time,
        observer: Callable[[str, str, bool], None] | None = None,  # (endpoint, reason, throttled): metrics
    ) -> None:
        self._engine = engine
        self._observer = observer
        self._max_keys = max_keys
        self._flush_s = flush_s
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[Key, Tally] = {}
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()
        metadata.create_all(engine)

    def record(self, endpoint: str, issuer: str | None, reason: str, *, throttled: bool = False) -> None:
        if self._observer is not None:
            self._observer(endpoint, reason, throttled)
        now = datetime.fromtimestamp(self._clock(), UTC)
        stamp = now.isoformat(timespec="milliseconds")
        key: Key = (now.strftime("%Y-%m-%dT%H:%MZ"), issuer or UNKNOWN, reason, endpoint)
        with self._lock:
            if key not in self._pending and len(self._pending) >= self._max_keys:
                key = (key[0], UNKNOWN, OVERFLOW_REASON, endpoint)
            tally = self._pending.get(key)
            if tally is None:
                self._pending[key] = Tally(1, int(throttled), stamp, stamp)
            else:
                tally.count += 1
                tally.throttled += int(throttled)
                tally.last_seen = stamp
            if self._flusher is None and self._flush_s > 0:
                self._flusher = threading.Thread(target=self._flush_now_and_then, name="auth-failures", daemon=True)
                self._flusher.start()

    def pending(self) -> dict[Key, Tally]:
        with self._lock:
            return dict(self._pending)

    def flush(self) -> int:
        """Write what was counted since the last flush; rows written. On a failure the counts are kept (still
        capped) for the next flush."""
        with self._lock:
            taken, self._pending = self._pending, {}
        if not taken:
            return 0
        try:
            with self._engine.begin() as conn:
                conn.execute(_upsert(self._engine), [_row(k, t) for k, t in taken.items()])
        except Exception:
            log.exception("auth failure counts not written; kept for the next flush")
            with self._lock:
                for key, tally in taken.items():
                    if key in self._pending:
                        self._pending[key].merge(tally)
                    elif len(self._pending) < self._max_keys:
                        self._pending[key] = tally
            return 0
        return len(taken)

    def close(self) -> None:
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join(timeout=5)
        self.flush()

    def rows(self) -> list[dict[str, object]]:
        with self._engine.connect() as conn:
            query = select(auth_failures).order_by(*auth_failures.primary_key.columns)
            return [dict(r) for r in conn.execute(query).mappings()]

    def _flush_now_and_then(self) -> None:
        while not self._stop.wait(self._flush_s):
            self.flush()


def _row(key: Key, tally: Tally) -> dict[str, object]:
    minute, issuer, reason, endpoint = key
    return {
        "minute": minute,
        "issuer": issuer,
        "reason": reason,
        "endpoint": endpoint,
        "count": tally.count,
        "throttled": tally.throttled,
        "first_seen": tally.first_seen,
        "last_seen": tally.last_seen,
    }


def _upsert(engine: Engine) -> Executable:
    """INSERT ... ON CONFLICT adding to the row (SQLite and PostgreSQL both have it)."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(auth_failures)
    new, old = statement.excluded, auth_failures.c
    upsert: Executable = statement.on_conflict_do_update(
        index_elements=list(auth_failures.primary_key.columns),
        set_={
            "count": old.count + new.count,
            "throttled": old.throttled + new.throttled,
            "first_seen": case((new.first_seen < old.first_seen, new.first_seen), else_=old.first_seen),
            "last_seen": case((new.last_seen > old.last_seen, new.last_seen), else_=old.last_seen),
        },
    )
    return upsert
