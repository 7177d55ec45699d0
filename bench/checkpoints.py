"""What signed checkpoints of the audit chain cost (cds/audit/checkpoint.py).

In one process, as a worker does: decisions over the fhir_examples mix (pipeline + audit commit, each with a
fresh hookInstance), then bare audit appends of a real decision's payload, each without checkpoints and with
a checkpoint every N entries (the default 1000, and 10 and 1 to bring the cost out). Then the cost of one
checkpoint (read head, Ed25519 signature, append under a file lock, fsync) and its size in bytes.

    .venv/bin/python bench/checkpoints.py
    .venv/bin/python bench/checkpoints.py --decisions 300 --appends 3000
    .venv/bin/python bench/checkpoints.py --database postgresql+psycopg://cds:cds@127.0.0.1/cds_test

The PostgreSQL run empties the audit tables of the database it is given. Asserts nothing about the figures;
exits non-zero if a chain does not verify against its checkpoints.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from cds.audit import AuditStore
from cds.audit.checkpoint import Checkpoints, CheckpointSigner, generate_key_pair, load_public_keys, read_checkpoints
from cds.audit.checkpoint import unsigned as unsigned_checkpoints
from cds.audit.group import Pending
from cds.pipeline import EXAMPLES_EVALUATION_TIME, Pipeline
from cds.service.records import decision_payload

ROOT = Path(__file__).resolve().parent.parent
EVERY = (None, 1000, 10, 1)  # None: no checkpoints


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=200, help="decisions per configuration")
    parser.add_argument("--appends", type=int, default=2000, help="bare audit appends per configuration")
    parser.add_argument("--database", help="a PostgreSQL URL (default: a fresh SQLite file per run)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the configurations, interleaved")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cds-bench-checkpoints-"))
    generate_key_pair(work / "key.pem", work / "key.pub")
    signer = CheckpointSigner.from_file(work / "key.pem")
    keys = load_public_keys([work / "key.pub"])
    pipeline = Pipeline()
    requests = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((ROOT / "fhir_examples").glob("*.json"))]
    payload = json.dumps(_payload(pipeline, requests[0]))
    shown = make_url(args.database).render_as_string(hide_password=True) if args.database else None
    print(f"database: {shown or 'SQLite (WAL, synchronous=FULL) in ' + str(work)}")
    for i in range(2 * len(requests)):  # warm-up: every example once through the pipeline and the rules
        pipeline.run(requests[i % len(requests)], now=EXAMPLES_EVALUATION_TIME)
    print(f"median of {args.rounds} rounds, configurations interleaved (this machine's speed drifts)")
    failed = False
    for label, count, work_unit in (
        ("decisions/s (pipeline + audit)", args.decisions, lambda store, i: _decide(pipeline, store, requests, i)),
        ("appends/s (audit only)", args.appends, lambda store, i: _append(store, payload, i)),
    ):
        rates: dict[int | None, list[float]] = {every: [] for every in EVERY}
        for _ in range(args.rounds):
            for every in EVERY:
                rate, ok = _run(args.database, work, signer, keys, every, count, work_unit)
                rates[every].append(rate)
                failed |= not ok
        for every, measured in rates.items():
            name = "no checkpoints" if every is None else f"a checkpoint every {every}"
            each = ", ".join(f"{r:.0f}" for r in measured)
            print(f"{label:34} {name:24} {statistics.median(measured):8.1f}  ({each})")
    per_ms, size = _one_checkpoint(args.database, work, signer)
    print(f"one checkpoint (head, sign, append, fsync): median {per_ms:.3f} ms; {size} bytes a line")
    return 1 if failed else 0


def _payload(pipeline: Pipeline, request: dict[str, Any]) -> dict[str, Any]:
    from datetime import UTC, datetime

    outcome = pipeline.run(request, now=EXAMPLES_EVALUATION_TIME)
    return decision_payload(
        service="imatinib-order-sign",
        hook=request["hook"],
        received=datetime.now(UTC),
        client={},
        request=request,
        status="ok",
        http_status=200,
        latency_ms=1.0,
        outcome=outcome,
    )


def _decide(pipeline: Pipeline, store: AuditStore, requests: list[dict[str, Any]], i: int) -> None:
    body = dict(requests[i % len(requests)], hookInstance=str(uuid.uuid4()))
    outcome = pipeline.run(body, now=EXAMPLES_EVALUATION_TIME)
    payload = {"hookInstance": body["hookInstance"], "cards": outcome.cards, "trace": outcome.trace()}
    entry = Pending.of("decision", body["hookInstance"], "imatinib-" + body["hook"], payload, ())
    store.record(entry).result()


def _append(store: AuditStore, payload: str, i: int) -> None:
    store.record(Pending("decision", f"h-{i}", "imatinib-order-sign", payload)).result()


def _fresh_store(database: str | None, work: Path) -> AuditStore:
    if database is None:
        return AuditStore(f"sqlite:///{work}/{uuid.uuid4().hex}.sqlite3")
    store = AuditStore(database)
    with store.engine.begin() as conn:
        for table in ("audit_entries", "audit_cards"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
        conn.exec_driver_sql("UPDATE audit_head SET seq = 0, entry_hash = '" + "0" * 64 + "'")
    return store


def _run(
    database: str | None,
    work: Path,
    signer: CheckpointSigner,
    keys: Any,
    every: int | None,
    count: int,
    unit: Callable[[AuditStore, int], None],
) -> tuple[float, bool]:
    store = _fresh_store(database, work)
    path = work / f"{uuid.uuid4().hex}.jsonl"
    if every is not None:
        store.checkpoints = Checkpoints(store.head, signer, path, every=every, interval_s=60)
    unit(store, 0)  # warm-up
    started = time.perf_counter()
    for i in range(1, count + 1):
        unit(store, i)
    elapsed = time.perf_counter() - started
    store.dispose()  # the last checkpoint
    ok = True
    if every is not None:
        checkpoints = read_checkpoints(path)
        reopened = AuditStore(database or store.url, create=False)
        ok = not unsigned_checkpoints(checkpoints, keys) and reopened.verify({c.seq: c.head for c in checkpoints}).ok
        reopened.dispose()
        if not ok:
            print(f"the chain does not verify against {path}", file=sys.stderr)
    return count / elapsed, ok


def _one_checkpoint(database: str | None, work: Path, signer: CheckpointSigner) -> tuple[float, int]:
    store = _fresh_store(database, work)
    store.append("decision", "h", "s", {})
    path = work / "single.jsonl"
    writer = Checkpoints(store.head, signer, path, every=10**9, interval_s=3600)
    times = []
    for _ in range(200):
        started = time.perf_counter()
        writer.write_now()
        times.append((time.perf_counter() - started) * 1000)
    writer.close()
    store.dispose()
    lines = path.read_bytes().splitlines(keepends=True)
    return statistics.median(times), len(lines[0])


if __name__ == "__main__":
    sys.exit(main())
