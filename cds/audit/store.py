"""The audit store: append, look up, export and verify the hash chain."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, delete, event, func, insert, inspect, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError, OperationalError

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
from cds.audit.migrate import add_missing_columns, present_columns
from cds.audit.sqlite import InlineCommits, SqliteAppender
from cds.audit.tables import cards, entries, head, metadata, used_jtis, write_probe
from cds.errors import CdsError

if TYPE_CHECKING:
    from cds.audit.checkpoint import Checkpoints

DEFAULT_URL = "sqlite:///var/audit.sqlite3"


def request_digest(request: Mapping[str, Any]) -> str:
    """sha256 of the request with the FHIR access token removed (it is transient and never stored)."""
    clean = dict(request)  # shallow: only the fhirAuthorization object is changed, on its own copy
    auth = clean.get("fhirAuthorization")
    if isinstance(auth, dict):
        clean["fhirAuthorization"] = {k: v for k, v in auth.items() if k != "access_token"}
    return hashlib.sha256(canonical_json(clean).encode()).hexdigest()


class AuditLogMissing(CdsError):
    """Opened to read (verify, show, export, checkpoint), but there is no audit log there."""

    code = "audit-log-missing"


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    first_broken_seq: int | None = None
    reason: str = ""


class AuditStore:
    def __init__(self, url: str = DEFAULT_URL, *, create: bool = True) -> None:
        """``create=False`` opens an existing log as it is (no file, table or column is created): for audits,
        which must never mistake a log they created for the one they were pointed at."""
        self.url = url
        if not create:
            _require_file(url)
        self.engine = _make_engine(url, create=create)
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
        self.checkpoints: Checkpoints | None = None  # signed checkpoints, when the operator configured a key
        # told of every transaction: (seconds, committed); the service's metrics
        self.on_commit: Callable[[float, bool], None] | None = None
        if create:
            _create_tables(self.engine)
            self._ensure_head()
        else:
            try:
                _require_tables(self.engine, url)
            except AuditLogMissing:
                self.engine.dispose()
                raise
        with self.engine.connect() as conn:
            self._entry_columns = [entries.c[n] for n in present_columns(conn, entries)]
            self._card_columns = [cards.c[n] for n in present_columns(conn, cards)]

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
        client: str = "",
    ) -> int:
        """Append one entry; returns its sequence number once it is committed."""
        return self.append_many([Pending.of(kind, hook_instance, service_id, payload, card_uuids, client)])[0]

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
        if self.on_commit is None:
            return self._append_many(pending)
        started = time.perf_counter()
        try:
            seqs = self._append_many(pending)
        except BaseException:
            self.on_commit(time.perf_counter() - started, False)
            raise
        self.on_commit(time.perf_counter() - started, True)
        return seqs

    def _append_many(self, pending: Sequence[Pending]) -> list[int]:
        if self._sqlite is not None:
            with self._writer:
                return self._appended(self._sqlite.append(pending))
        with self.engine.begin() as conn:
            seq, prev = conn.execute(READ_HEAD.with_for_update()).one()
            rows, links, last = chained(seq, prev, pending)
            # statements built once (SQLAlchemy compiles each new statement object anew), parameters per row
            conn.execute(INSERT_ENTRY, rows)
            conn.execute(MOVE_HEAD, {"new_seq": rows[-1]["seq"], "new_hash": last})
            if links:
                conn.execute(_LINK_CARDS, links)
        return self._appended([int(r["seq"]) for r in rows])

    def _appended(self, seqs: list[int]) -> list[int]:
        if self.checkpoints is not None:
            self.checkpoints.appended(len(seqs))
        return seqs

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

    def decision(self, hook_instance: str, client: str | None = None) -> dict[str, Any] | None:
        """The latest decision recorded for a hookInstance of ``client`` (an issuer; "" for unauthenticated
        calls), with its chain position; ``client=None`` (auditors only) takes any client's."""
        query = (
            self._select_entries()
            .where(entries.c.hook_instance == hook_instance, entries.c.kind == "decision", *_of(entries, client))
            .order_by(entries.c.seq.desc())
            .limit(1)
        )
        with self.reading() as conn:
            row = conn.execute(query).mappings().first()
        return _decoded(row) if row else None

    def card(self, card_uuid: str, client: str | None = None) -> tuple[str, int] | None:
        """The hookInstance and decision that showed a card, if ``client`` was shown it (None: any client)."""
        query = select(cards.c.hook_instance, cards.c.seq).where(cards.c.card_uuid == card_uuid, *_of(cards, client))
        with self.reading() as conn:
            row = conn.execute(query).first()
        return (str(row[0]), int(row[1])) if row else None

    def feedback_for(self, hook_instance: str, client: str | None = None) -> list[dict[str, Any]]:
        query = (
            self._select_entries()
            .where(entries.c.hook_instance == hook_instance, entries.c.kind == "feedback", *_of(entries, client))
            .order_by(entries.c.seq)
        )
        with self.reading() as conn:
            return [_decoded(r) for r in conn.execute(query).mappings()]

    def export(
        self, since: datetime | None = None, kind: str | None = None, until: datetime | None = None
    ) -> Iterator[dict[str, Any]]:
        """Entries in chain order, streamed (PostgreSQL: a server-side cursor), so memory stays flat.

        ``since`` (inclusive) and ``until`` (exclusive) bound the time an entry was written: the entries are the
        unbroken run of sequence numbers from the first written at or after ``since`` to the last written before
        ``until`` (so a slice can be verified on its own even if clocks disagreed)."""
        query = self._select_entries().order_by(entries.c.seq)
        if since is not None or until is not None:
            bounds = select(func.min(entries.c.seq), func.max(entries.c.seq))
            if since is not None:
                bounds = bounds.where(entries.c.created_at >= _stamp(since))
            if until is not None:
                bounds = bounds.where(entries.c.created_at < _stamp(until))
            with self.reading() as conn:
                low, high = conn.execute(bounds).one()
            if low is None:
                return
            query = query.where(entries.c.seq >= low, entries.c.seq <= high)
        if kind is not None:
            query = query.where(entries.c.kind == kind)
        with self.reading(stream=True) as conn:
            result = conn.execute(query)
            try:
                for row in result.mappings():
                    yield _decoded(row)
            finally:  # a reader that stops early must not leave the server-side cursor to the collector
                result.close()

    def entries_between(self, first: int, last: int) -> list[dict[str, Any]]:
        """Sequence number and hash of the entries ``first`` to ``last`` (to compare an exported slice with)."""
        query = (
            select(entries.c.seq, entries.c.entry_hash)
            .where(entries.c.seq >= first, entries.c.seq <= last)
            .order_by(entries.c.seq)
        )
        with self.reading() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def count(self) -> int:
        with self.reading() as conn:
            return int(conn.execute(select(head.c.seq).where(head.c.id == 1)).scalar_one())

    def head(self) -> tuple[int, str]:
        """The sequence number and hash of the last committed entry (what a checkpoint signs)."""
        with self.reading() as conn:
            seq, digest = conn.execute(READ_HEAD).one()
        return int(seq), str(digest)

    def verify(self, anchors: Mapping[int, str] | None = None) -> ChainReport:
        """Recompute the chain; names the first entry whose content, link or position does not hold.

        ``anchors`` (sequence number -> entry hash, from signed checkpoints kept outside the database) must
        each be met by the recomputed chain: a chain rewritten, cut short or emptied before the latest anchor
        fails even when its hashes and head were recomputed to agree. The card index (audit_cards) must be
        exactly what the chain's decisions showed."""
        anchors = dict(anchors or {})
        prev, expected_seq, count = GENESIS, 1, 0
        shown: dict[str, tuple[str, int, str | None]] = {}
        if anchors.get(0, GENESIS) != GENESIS:
            return ChainReport(False, 0, 0, "a checkpoint at entry 0 does not name the empty chain")
        with self.reading() as conn:
            for row in conn.execute(self._select_entries().order_by(entries.c.seq)).mappings():
                problem = _broken(row, prev, expected_seq) or _unanchored(row, anchors)
                if problem:
                    return ChainReport(False, count, int(row["seq"]), problem)
                prev, expected_seq, count = row["entry_hash"], expected_seq + 1, count + 1
                shown.update(_cards_shown(row))
            head_seq, head_hash = conn.execute(select(head.c.seq, head.c.entry_hash)).one()
            indexed = list(conn.execute(select(*self._card_columns)).mappings())
        if (head_seq, head_hash) != (count, prev):
            return ChainReport(
                False, count, count + 1, "the chain head does not match the last entry (entries removed)"
            )
        beyond = max(anchors, default=0)
        if beyond > count:
            return ChainReport(
                False,
                count,
                count + 1,
                f"a signed checkpoint names entry {beyond} but the log ends at entry {count} (entries removed)",
            )
        problem, seq = _card_index_problem(indexed, shown)
        if problem:
            return ChainReport(False, count, seq, problem)
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

    def reading(self, stream: bool = False) -> Connection:
        """A connection for reads only (SQLite: no write lock); ``stream`` fetches rows a batch at a time
        (PostgreSQL: a server-side cursor), for reads whose memory must stay flat."""
        options: dict[str, Any] = {_READING: True}
        if stream:
            options.update(stream_results=True, yield_per=_STREAM_ROWS)
        return self.engine.connect().execution_options(**options)

    def _select_entries(self) -> Any:
        return select(*self._entry_columns)

    def dispose(self) -> None:
        with self._group_lock:
            if self._group is not None:
                self._group.close()
                self._group = None
        if self.checkpoints is not None:
            self.checkpoints.close()  # the last checkpoint covers every entry this process wrote
            self.checkpoints = None
        self.engine.dispose()


_STREAM_ROWS = 200  # rows fetched at a time when streaming entries
_READING = "cds_reading"  # execution option of a connection that only reads
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


def _unanchored(row: Mapping[Any, Any], anchors: Mapping[int, str]) -> str:
    signed = anchors.get(int(row["seq"]))
    if signed is not None and signed != row["entry_hash"]:
        return "it differs from the signed checkpoint (the chain was rewritten)"
    return ""


def _stamp(moment: datetime) -> str:
    """``created_at`` as stored: ISO 8601 in UTC with microseconds, so text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _of(table: Any, client: str | None) -> tuple[Any, ...]:
    return () if client is None else (table.c.client == client,)


def _cards_shown(row: Mapping[Any, Any]) -> dict[str, tuple[str, int, str | None]]:
    """Card uuid -> (hookInstance, seq, client) for the cards an entry showed. Entries from before client
    scoping did not list them apart: their cards are those of the payload (what the service wrote)."""
    if row["kind"] != "decision":
        return {}
    listed = row.get("cards")
    if listed is not None:
        uuids = json.loads(listed)
    else:
        shown = json.loads(row["payload"]).get("cards")
        uuids = [c.get("uuid") for c in shown if isinstance(c, dict)] if isinstance(shown, list) else []
    return {str(u): (row["hook_instance"], int(row["seq"]), row.get("client")) for u in uuids if u}


def _card_index_problem(
    indexed: Sequence[Mapping[Any, Any]], shown: Mapping[str, tuple[str, int, str | None]]
) -> tuple[str, int | None]:
    """The card index must hold exactly the cards the chain shows, each at the decision that last showed it."""
    for row in indexed:
        expected = shown.get(row["card_uuid"])
        actual = (row["hook_instance"], int(row["seq"]), row.get("client"))
        if expected is None:
            return f"audit_cards lists card {row['card_uuid']}, which no entry of the chain showed", int(row["seq"])
        if actual != expected:
            return f"audit_cards points card {row['card_uuid']} elsewhere than the chain does", expected[1]
    absent = sorted(set(shown) - {row["card_uuid"] for row in indexed})
    if absent:
        return f"audit_cards lacks card {absent[0]}, which the chain shows", shown[absent[0]][1]
    return "", None


def _decoded(row: Mapping[Any, Any]) -> dict[str, Any]:
    out = dict(row)
    out["payload"] = json.loads(row["payload"])
    return out


def _create_tables(engine: Engine) -> None:
    """Create what is missing; workers starting together on an empty database take turns (else two
    CREATE TABLEs race and one worker dies on a duplicate-type error)."""
    if engine.dialect.name != "postgresql":
        metadata.create_all(engine)  # SQLite: BEGIN IMMEDIATE already serialises the check and the create
        with engine.begin() as conn:
            add_missing_columns(conn)
        return
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        metadata.create_all(conn)
        add_missing_columns(conn)


_SCHEMA_LOCK = 0x1D_A7_1B  # an arbitrary application-wide advisory lock id for schema creation


def _sqlite_file(url: str) -> Path | None:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        return Path(url.removeprefix("sqlite:///").split("?")[0])
    return None


def _require_file(url: str) -> None:
    path = _sqlite_file(url)
    if url.startswith("sqlite") and (path is None or not path.is_file()):
        raise AuditLogMissing(f"no audit log at {path or url}")


def _require_tables(engine: Engine, url: str) -> None:
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            present = all(inspect(conn).has_table(t.name) for t in (entries, head, cards))
    except OperationalError as exc:
        raise AuditLogMissing(f"cannot open {where}: {str(exc.orig).strip().splitlines()[0]}") from exc
    if not present:
        raise AuditLogMissing(f"no audit log in {where}")


def _make_engine(url: str, *, create: bool = True) -> Engine:
    path = _sqlite_file(url)
    if path is not None and create:
        path.parent.mkdir(parents=True, exist_ok=True)
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
        # one writer at a time: appends form one chain. A reader (AuditStore.reading) takes no lock: under WAL
        # it reads a snapshot, so a replay or a verify of a busy log never holds up the service's appends.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READING) else "BEGIN IMMEDIATE")

    return engine
