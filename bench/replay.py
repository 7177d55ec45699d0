"""Throughput and memory of `audit replay` (cds/governance): recorded decisions evaluated again, one core.

Records N decisions over the fhir_examples mix (the pipeline, the service's audit payload, each with a fresh
hookInstance) into a fresh audit log, then replays them as `imatinib-cds audit replay` does (stream the log,
recompute each decision at its own time, compare, spool the changes), once with the same rules and once with
a candidate whose CML target is 600 ng/mL instead of 1000 (about a fifth of the mix changes). Prints decisions
per second and the process's resident memory every --every decisions: flat memory means streaming works.

    .venv/bin/python bench/replay.py
    .venv/bin/python bench/replay.py --decisions 20000 --every 5000
    .venv/bin/python bench/replay.py --database postgresql+psycopg://cds:cds@127.0.0.1/cds_test

The PostgreSQL run empties the audit tables of the database it is given. Asserts nothing about the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from cds.audit import AuditStore
from cds.audit.group import Pending
from cds.audit.tables import metadata
from cds.governance.replay import replay
from cds.governance.report import ReplayReport
from cds.pipeline import EXAMPLES_EVALUATION_TIME, Pipeline
from cds.service.records import decision_payload

ROOT = Path(__file__).resolve().parent.parent
BATCH = 200


def record(store: AuditStore, pipeline: Pipeline, count: int) -> None:
    examples = [p.read_bytes() for p in sorted((ROOT / "fhir_examples").glob("*.json"))]
    batch: list[Pending] = []
    for n in range(count):
        body = json.loads(examples[n % len(examples)])
        body["hookInstance"] = f"bench-{n:07d}"
        outcome = pipeline.run(body, now=EXAMPLES_EVALUATION_TIME)
        payload = decision_payload(
            service=f"imatinib-{body['hook']}",
            hook=body["hook"],
            received=datetime.now(UTC),
            client=None,
            request=body,
            status="ok",
            http_status=200,
            latency_ms=0.0,
            outcome=outcome,
            completed=body,
        )
        cards = tuple(c["uuid"] for c in outcome.cards)
        batch.append(Pending.of("decision", body["hookInstance"], payload["service"], payload, cards))
        if len(batch) == BATCH or n == count - 1:
            store.append_many(batch)
            batch = []


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(store: AuditStore, rules: Path, every: int, label: str) -> None:
    pipeline = Pipeline(rules)
    report = ReplayReport(pipeline.rule_set)
    memory = []
    cpu, started = time.process_time(), time.perf_counter()
    for n, replayed in enumerate(replay(store, pipeline), start=1):
        report.add(replayed)
        if n % every == 0:
            memory.append(f"{n}: {rss_mib():.0f}")
    wall, used = time.perf_counter() - started, time.process_time() - cpu
    report.close()
    print(
        f"{label}: {report.decisions} decisions, {report.changed} changed, {report.decisions / wall:.0f} decisions/s "
        f"({wall:.1f} s wall, {used / report.decisions * 1000:.2f} ms CPU each); RSS MiB at {', '.join(memory)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=5000)
    parser.add_argument("--every", type=int, default=1000, help="print memory every so many decisions")
    parser.add_argument("--database", help="a PostgreSQL URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the issue measures it
    work = Path(tempfile.mkdtemp(prefix="cds-bench-replay-"))
    url = args.database or f"sqlite:///{work}/audit.sqlite3"
    store = AuditStore(url)
    if args.database:
        metadata.drop_all(store.engine)
        store.dispose()
        store = AuditStore(url)
    candidate = work / "candidate"
    shutil.copytree(ROOT / "rules", candidate)
    for name, old, new in (
        ("policy.yaml", "value: 1000 ng/mL", "value: 600 ng/mL"),
        ("imatinib/trough.yaml", " 1000 ng/mL", " 600 ng/mL"),
        ("imatinib/trough.yaml", " 999 ng/mL", " 599 ng/mL"),
        ("imatinib/trough.yaml", " 990 ng/mL", " 590 ng/mL"),
    ):
        path = candidate / name
        path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    started = time.perf_counter()
    record(store, Pipeline(ROOT / "rules"), args.decisions)
    print(f"recorded {args.decisions} decisions in {time.perf_counter() - started:.1f} s ({url.split(':')[0]})")
    run(store, ROOT / "rules", args.every, "same rules")
    run(store, candidate, args.every, "CML target 600")
    store.dispose()
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
