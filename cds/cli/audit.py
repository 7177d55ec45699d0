"""``imatinib-cds audit verify | show HOOKINSTANCE | export [--since]``: for reviewers and auditors."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from typing import Any

from cds.errors import InvalidInput

DATABASE_ENV = "IMATINIB_CDS_DATABASE_URL"


def register(sub: Any) -> None:
    audit = sub.add_parser("audit", help="verify, show and export the audit log")
    audit.add_argument(
        "--db", default=None, help=f"database URL (default: ${DATABASE_ENV} or sqlite:///var/audit.sqlite3)"
    )
    commands = audit.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("verify", help="check the hash chain; names the first broken entry").set_defaults(
        func=run_verify
    )
    show = commands.add_parser("show", help="print a decision with its feedback")
    show.add_argument("hook_instance")
    show.set_defaults(func=run_show)
    export = commands.add_parser("export", help="write entries as JSON lines")
    export.add_argument("--since", help="ISO 8601 date-time with offset; default: everything")
    export.set_defaults(func=run_export)


def open_store(args: argparse.Namespace) -> Any:
    from cds.audit import AuditStore
    from cds.audit.store import DEFAULT_URL

    return AuditStore(args.db or os.environ.get(DATABASE_ENV) or DEFAULT_URL)


def run_verify(args: argparse.Namespace) -> int:
    report = open_store(args).verify()
    if report.ok:
        print(f"audit chain intact: {report.entries} entries")
        return 0
    print(
        f"audit chain BROKEN at entry {report.first_broken_seq}: {report.reason} "
        f"({report.entries} entries before it verify)"
    )
    return 1


def run_show(args: argparse.Namespace) -> int:
    store = open_store(args)
    decision = store.decision(args.hook_instance)
    if decision is None:
        print(f"imatinib-cds: no decision recorded for hookInstance {args.hook_instance}", file=sys.stderr)
        return 1
    decision["feedback"] = store.feedback_for(args.hook_instance)
    print(json.dumps(decision, indent=2, ensure_ascii=False, default=str))
    return 0


def run_export(args: argparse.Namespace) -> int:
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidInput("--since", f"not an ISO 8601 date-time: {args.since!r}") from exc
        if since.tzinfo is None:
            raise InvalidInput("--since", "needs a UTC offset, e.g. 2026-11-25T00:00:00Z")
    for entry in open_store(args).export(since):
        sys.stdout.write(json.dumps(entry, ensure_ascii=False, default=str, separators=(",", ":")) + "\n")
    return 0
