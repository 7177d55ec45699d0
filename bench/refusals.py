"""Cost of a flood of unauthenticated calls: requests/s and bytes written to the audit database per 10,000.

Three ways of answering the same flood (POSTs without a token to the order-sign service of a service that
trusts one client), each on a fresh SQLite audit log, in process (httpx over ASGI, one call at a time):

  per-call rows   what the service did before 2026-12-06: each refusal became a chain entry (fsync'd), emulated
                  here by writing that entry (the same payload, through the same group commit) after each 401
  aggregate       now: counted in memory per (minute, issuer, reason, endpoint), one row per key, flushed at
                  the end; no rate limit (refusal_burst 0), so every call is a 401
  aggregate+429   now, with the default rate limit: 401 for the first 20 refusals, then 429 with Retry-After

Bytes written are the process's write() bytes (/proc/self/io wchar) while the flood runs, with logging
silenced (so: SQLite's database, write-ahead log and shared-memory files), and the database file's growth
after a full checkpoint.

    .venv/bin/python bench/refusals.py              # 10,000 calls per mode
    .venv/bin/python bench/refusals.py --calls 2000

Asserts nothing about the figures; exits non-zero if a call got another status than expected.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cds.audit import AuditStore
from cds.audit.group import Pending
from cds.service.app import create_app
from cds.service.config import ClientConfig, ServiceConfig
from cds.service.records import decision_payload

ROOT = Path(__file__).resolve().parent.parent
BODY = json.loads((ROOT / "fhir_examples" / "order-sign-new-start-moderate-renal.json").read_text(encoding="utf-8"))
PATH = "/cds-services/imatinib-order-sign"


class PerCallRows:
    """The former behaviour: a chain entry for every refused call, committed before the answer goes out."""

    def __init__(self, app: ASGIApp, audit: AuditStore) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started: dict[str, Any] = {}
        held: list[Message] = []

        async def hold(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            held.append(message)

        await self.app(scope, receive, hold)
        if started.get("status") in (401, 429):
            body = json.loads(b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body"))
            payload = decision_payload(
                service="imatinib-order-sign",
                hook="order-sign",
                received=datetime.now(UTC),
                client=None,
                request=None,
                status="unauthorized",
                http_status=int(started["status"]),
                latency_ms=0.0,
                body=body,
            )
            await asyncio.wrap_future(
                self.audit.submit(Pending.of("decision", "unknown", "imatinib-order-sign", payload))
            )
        for message in held:
            await send(message)


def written_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def database_bytes(audit: AuditStore, db: Path) -> int:
    connection = audit.engine.raw_connection()  # autocommit: a checkpoint cannot run inside a transaction
    try:
        connection.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return db.stat().st_size


async def flood(app: ASGIApp, calls: int) -> tuple[dict[int, int], float]:
    statuses: dict[int, int] = {}
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
        started = time.perf_counter()
        for _ in range(calls):
            response = await client.post(PATH, json=BODY)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        elapsed = time.perf_counter() - started
    return statuses, elapsed


def run(mode: str, calls: int, workdir: Path) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP384R1())
    jwks = workdir / "jwks.json"
    public = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwks.write_text(json.dumps({"keys": [dict(public, kid="k1", alg="ES384", use="sig")]}))
    db = workdir / "audit.sqlite3"
    config = ServiceConfig(
        database_url=f"sqlite:///{db}",
        link_secret_file=workdir / "secret",
        trusted_clients=(ClientConfig(iss="https://ehr.example.org", jwks_file=str(jwks)),),
        auth_failure_flush_s=0,  # one flush at the end, inside the measurement
    )
    if mode != "aggregate+429":
        config = replace(config, refusal_burst=0)
    audit = AuditStore(config.database_url)
    app = create_app(config, audit=audit)
    state = app.state.service
    served: ASGIApp = PerCallRows(app, audit) if mode == "per-call rows" else app
    before_db, before_io = database_bytes(audit, db), written_bytes()
    statuses, elapsed = asyncio.run(flood(served, calls))
    state.auth_failures.flush()
    io = written_bytes() - before_io
    growth = database_bytes(audit, db) - before_db
    entries = audit.count()
    audit.dispose()
    return {"mode": mode, "statuses": statuses, "rps": calls / elapsed, "io": io, "growth": growth, "entries": entries}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the measurement is of the audit database, not of log lines
    per = 10_000 / args.calls
    print(f"{args.calls} unauthenticated POSTs per mode; bytes scaled to 10,000 calls")
    print(f"{'mode':<15} {'statuses':<24} {'req/s':>8} {'write() bytes':>14} {'db growth':>12} {'chain entries':>14}")
    ok = True
    for mode in ("per-call rows", "aggregate", "aggregate+429"):
        with tempfile.TemporaryDirectory() as tmp:
            r = run(mode, args.calls, Path(tmp))
        expected = {401} if mode != "aggregate+429" else {401, 429}
        ok &= set(r["statuses"]) <= expected
        print(
            f"{mode:<15} {json.dumps(r['statuses']):<24} {r['rps']:>8.0f} {_mib(r['io'] * per):>14}"
            f" {_mib(r['growth'] * per):>12} {r['entries']:>14}"
        )
    return 0 if ok else 1


def _mib(n: float) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


if __name__ == "__main__":
    sys.exit(main())
