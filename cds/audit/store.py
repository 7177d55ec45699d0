"""The audit store: append, look up, export and verify the hash chain."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import shutil
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, delete, event, insert, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError

from cds.audit.chain import (
    GENESIS,
    INSERT_ENTRY,
    MOVE_HEAD,
    READ_HEAD,
    canonical_json,
    chained,
    entry_hash,
    link_cards,
)
from cds.audit.group import GroupCommit, Pending, write_each
from cds.audit.sqlite import InlineCommits, SqliteAppender
from cds.audit.tables import cards, entries, head, metadata, used_jtis, write_probe

DEFAULT_URL = "sqlite:///var/audit.sqlite3"


def request_digest(request: Mapping[str, Any]) -> str:
    """sha256 of the request with the FHIR access token removed (it is transient and never stored)."""
    clean = dict(request)  # shallow: only the fhirAuthorization object is changed, on its own copy
    auth = clean.get("fhirAuthorization")
    if isinstance(auth, dict):
        clean["fhirAuthorization"] = {k: v for k, v in auth.items() if k != "access_token"}
    return hashlib.sha256(canonical_json(clean).encode()).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    first_broken_seq: int | None = None
    reason: str = ""


class AuditStore:
    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.url = url
        self.engine = _make_engine(url)
        # SQLite lets one writer in and makes the others poll with sleeps of up to 100 ms (its busy handler):
        # under load that, not the work, was the tail latency. Threads of one process queue on this lock
        # instead; other processes still meet the busy handler. PostgreSQL queues waiters on the row lock itself.
        self._writer: threading.Lock | contextlib.nullcontext[None] = (
            threading.Lock() if self.engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )
        self._group: GroupCommit | None = None  # started by the first submit()
        self._group_lock = threading.Lock()
        self._sqlite = SqliteAppender(self.engine) if self.engine.dialect.name == "sqlite" else None
        self._inline = InlineCommits(enabled=self._sqlite is not None)
        _create_tables(self.engine)
        self._ensure_head()

    def _ensure_head(self) -> None:
        try:
            with self.engine.begin() as conn:
                if conn.execute(select(head.c.id)).first() is None:
                    conn.execute(insert(head).values(id=1, seq=0, entry_hash=GENESIS))
        except IntegrityError:
            pass  # another worker created it first

    # --- appending -------------------------------------------------------------------------------

    def append(
        self,
        kind: str,
        hook_instance: str,
        service_id: str,
        payload: Mapping[str, Any],
        card_uuids: tuple[str, ...] = (),
    ) -> int:
        """Append one entry; returns its sequence number once it is committed."""
        return self.append_many([Pending.of(kind, hook_instance, service_id, payload, card_uuids)])[0]

    def submit(self, entry: Pending) -> Future[int]:
        """Queue an entry for the next group commit; the future holds its sequence number once committed."""
        with self._group_lock:
            if self._group is None:
                self._group = GroupCommit(self.append_many)
        return self._group.submit(entry)

    def record(self, entry: Pending) -> Future[int]:
        """For the thread that makes the decisions: commit the entry itself while commits are quick (SQLite on
        a local disk: a fraction of a millisecond), else queue it for the group writer, so that slow commits
        (a slow disk, a database across the network) never hold up the decisions behind them. Handing every
        entry to the writer thread costs more: it waits for the GIL after each statement it issues."""
        if not self._inline.worth_trying():
            return self.submit(entry)
        started = time.perf_counter()
        outcome = write_each(self.append_many, [entry])[0]
        self._inline.observe(time.perf_counter() - started)
        future: Future[int] = Future()
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
        return future

    def append_many(self, pending: Sequence[Pending]) -> list[int]:
        """Append entries in order in one transaction (one fsync); their sequence numbers once committed."""
        if self._sqlite is not None:
            with self._writer:
                return self._sqlite.append(pending)
        with self.engine.begin() as conn:
            seq, prev = conn.execute(READ_HEAD.with_for_update()).one()
            rows, links, last = chained(seq, prev, pending)
            # statements built once (SQLAlchemy compiles each new statement object anew), parameters per row
            conn.execute(INSERT_ENTRY, rows)
            conn.execute(MOVE_HEAD, {"new_seq": rows[-1]["seq"], "new_hash": last})
            if links:
                conn.execute(_LINK_CARDS, links)
        return [int(r["seq"]) for r in rows]

    # --- replay protection (the JtiStore protocol of cds.service.auth) ---------------------------

    def claim(self, jti: str, iss: str, expires_at: datetime) -> bool:
        now = datetime.now(UTC).timestamp()
        try:
            with self._writer, self.engine.begin() as conn:
                conn.execute(delete(used_jtis).where(used_jtis.c.expires_at < now))
                conn.execute(insert(used_jtis).values(jti=jti, iss=iss, expires_at=expires_at.timestamp()))
        except IntegrityError:
            return False
        return True

    # --- reading ----------------------------------------------------------------------------------

    def decision(self, hook_instance: str) -> dict[str, Any] | None:
        """The latest decision recorded for a hookInstance, with its chain position."""
        query = (
            select(entries)
            .where(entries.c.hook_instance == hook_instance, entries.c.kind == "decision")
            .order_by(entries.c.seq.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return _decoded(row) if row else None

    def card(self, card_uuid: str) -> tuple[str, int] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(cards.c.hook_instance, cards.c.seq).where(cards.c.card_uuid == card_uuid)).first()
        return (str(row[0]), int(row[1])) if row else None

    def feedback_for(self, hook_instance: str) -> list[dict[str, Any]]:
        query = (
            select(entries)
            .where(entries.c.hook_instance == hook_instance, entries.c.kind == "feedback")
            .order_by(entries.c.seq)
        )
        with self.engine.connect() as conn:
            return [_decoded(r) for r in conn.execute(query).mappings()]

    def export(self, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        query = select(entries).order_by(entries.c.seq)
        if since is not None:
            query = query.where(entries.c.created_at >= since.astimezone(UTC).isoformat(timespec="microseconds"))
        with self.engine.connect() as conn:
            for row in conn.execute(query).mappings():
                yield _decoded(row)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(head.c.seq).where(head.c.id == 1)).scalar_one())

    def verify(self) -> ChainReport:
        """Recompute the chain; names the first entry whose content, link or position does not hold."""
        prev, expected_seq, count = GENESIS, 1, 0
        with self.engine.connect() as conn:
            for row in conn.execute(select(entries).order_by(entries.c.seq)).mappings():
                problem = _broken(row, prev, expected_seq)
                if problem:
                    return ChainReport(False, count, int(row["seq"]), problem)
                prev, expected_seq, count = row["entry_hash"], expected_seq + 1, count + 1
            head_seq, head_hash = conn.execute(select(head.c.seq, head.c.entry_hash)).one()
        if (head_seq, head_hash) != (count, prev):
            return ChainReport(
                False, count, count + 1, "the chain head does not match the last entry (entries removed)"
            )
        return ChainReport(True, count)

    # --- health (cds.service /health) -------------------------------------------------------------

    def probe(self, headroom_bytes: int = 1 << 20) -> None:
        """A small committed write outside the chain (its own one-row table), then room for decisions (SQLite:
        the database's page limit and the file system's free space); raises OSError or a database error when
        the log cannot be written now: a read-only file, a full disk, a database that is down. A small write
        alone can still fit where a decision does not (freed pages are reused), hence the headroom."""
        with self._writer, self.engine.begin() as conn:
            conn.execute(delete(write_probe).where(write_probe.c.id == 1))
            conn.execute(insert(write_probe).values(id=1, written_at=time.time()))
            if self.engine.dialect.name == "sqlite":
                pragma = {n: int(conn.exec_driver_sql(f"PRAGMA {n}").scalar_one()) for n in _PAGE_PRAGMAS}
                if (pragma["max_page_count"] - pragma["page_count"]) * pragma["page_size"] < headroom_bytes:
                    raise OSError(errno.ENOSPC, "the audit database has reached its page limit")
        database = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        if database and database != ":memory:" and shutil.disk_usage(Path(database).parent).free < headroom_bytes:
            raise OSError(errno.ENOSPC, "no room left on the audit database's file system")

    def dispose(self) -> None:
        with self._group_lock:
            if self._group is not None:
                self._group.close()
                self._group = None
        self.engine.dispose()


_LINK_CARDS = link_cards(postgresql)  # SQLite appends through cds.audit.sqlite
_PAGE_PRAGMAS = ("page_size", "page_count", "max_page_count")  # read by probe()


def _broken(row: Mapping[Any, Any], prev: str, expected_seq: int) -> str:
    if row["seq"] != expected_seq:
        return f"expected entry {expected_seq} but found {row['seq']} (entries removed or reordered)"
    if row["prev_hash"] != prev:
        return "its link to the previous entry is broken"
    if entry_hash(prev, row) != row["entry_hash"]:
        return "its content was changed after it was written"
    return ""


def _decoded(row: Mapping[Any, Any]) -> dict[str, Any]:
    out = dict(row)
    out["payload"] = json.loads(row["payload"])
    return out


def _create_tables(engine: Engine) -> None:
    """Create what is missing; workers starting together on an empty database take turns (else two
    CREATE TABLEs race and one worker dies on a duplicate-type error)."""
    if engine.dialect.name != "postgresql":
        metadata.create_all(engine)  # SQLite: BEGIN IMMEDIATE already serialises the check and the create
        return
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        metadata.create_all(conn)


_SCHEMA_LOCK = 0x1D_A7_1B  # an arbitrary application-wide advisory lock id for schema creation


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _sqlite_setup(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # a committed decision survives a crash of the process
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # one writer at a time: appends form one chain

    return engine
