"""Appends to a SQLite audit log through the DBAPI connection, and when to commit in the caller's thread.

SQLAlchemy's execution machinery cost some 0.25 ms of CPU per append, five times SQLite's own work; the
statements are still SQLAlchemy's (cds.audit.chain), compiled once for the SQLite dialect.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.dialects import sqlite

from cds.audit.chain import INSERT_ENTRY, MOVE_HEAD, READ_HEAD, chained, link_cards

if TYPE_CHECKING:
    from cds.audit.group import Pending

SLOW_COMMIT_S = 0.001  # a local disk's fsync takes a fraction of this
PROBE_EVERY = 200  # while commits are slow, try one in the caller's thread this often


class _Statement:
    """A statement compiled once; parameters by name, bound in the compiled order."""

    def __init__(self, statement: Any) -> None:
        compiled = statement.compile(dialect=sqlite.dialect())
        self.sql = str(compiled)
        self._order = tuple(compiled.positiontup or ())
        self._defaults = dict(compiled.params)

    def args(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        merged = {**self._defaults, **values}
        return tuple(merged[name] for name in self._order)


_HEAD = _Statement(READ_HEAD)
_ENTRY = _Statement(INSERT_ENTRY)
_MOVE = _Statement(MOVE_HEAD)
_LINK = _Statement(link_cards(sqlite))


class SqliteAppender:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def append(self, pending: Sequence[Pending]) -> list[int]:
        """One transaction: BEGIN IMMEDIATE takes SQLite's write lock, so the head read is the head."""
        connection = self._engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                seq, prev = cursor.execute(_HEAD.sql, _HEAD.args({})).fetchone()
                rows, links, last = chained(seq, prev, pending)
                cursor.executemany(_ENTRY.sql, [_ENTRY.args(r) for r in rows])
                cursor.execute(_MOVE.sql, _MOVE.args({"new_seq": rows[-1]["seq"], "new_hash": last}))
                if links:
                    cursor.executemany(_LINK.sql, [_LINK.args(link) for link in links])
                cursor.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):  # SQLite may have rolled back already (e.g. disk full)
                    cursor.execute("ROLLBACK")
                raise
        finally:
            connection.close()
        return [int(r["seq"]) for r in rows]


class InlineCommits:
    """Whether the caller should commit its own entry: while commits have been quick (a moving average, so
    that one slow fsync does not decide), and once in a while when they have not, to notice a disk that got
    faster again."""

    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled
        self._average_s = 0.0
        self._skipped = 0

    def worth_trying(self) -> bool:
        if not self._enabled:
            return False
        if self._average_s <= SLOW_COMMIT_S:
            return True
        self._skipped += 1
        return self._skipped % PROBE_EVERY == 0

    def observe(self, seconds: float) -> None:
        self._average_s += (seconds - self._average_s) * 0.2
