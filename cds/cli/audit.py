"""``imatinib-cds audit verify | show HOOKINSTANCE | export [--since] | stats | checkpoint | keygen``, and ``replay``
and ``shadow-report`` (cds/cli/audit_replay.py): for reviewers and auditors. Only ``keygen`` writes a new file
(``checkpoint`` appends to one); none of them ever creates a database or writes to the chain (docs/deploy.md)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from cds.cli import audit_replay
from cds.cli.instants import parse_instant
from cds.errors import InvalidInput

DATABASE_ENV = "IMATINIB_CDS_DATABASE_URL"
CHECKPOINT_KEY_ENV = "IMATINIB_CDS_CHECKPOINT_KEY"
CHECKPOINT_FILE_ENV = "IMATINIB_CDS_CHECKPOINT_FILE"
T = TypeVar("T")


def register(sub: Any) -> None:
    audit = sub.add_parser("audit", help="verify, show and export the audit log")
    with_db(audit, default=None)
    commands = audit.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verify = with_db(commands.add_parser("verify", help="check the hash chain; names the first broken entry"))
    verify.add_argument("--checkpoints", type=Path, help="signed checkpoints (JSON lines) the chain must meet")
    verify.add_argument(
        "--public-key",
        type=Path,
        action="append",
        default=[],
        help="PEM public key that signed checkpoints (repeat for every key in use since the oldest checkpoint)",
    )
    verify.add_argument("--allow-empty", action="store_true", help="an empty log is not an error")
    verify.set_defaults(func=run_verify)
    show = with_db(commands.add_parser("show", help="print a decision with its feedback"))
    show.add_argument("hook_instance")
    show.add_argument("--client", help="the issuer of the client whose decision to show (default: the latest)")
    show.set_defaults(func=run_show)
    checkpoint = with_db(commands.add_parser("checkpoint", help="append a signed checkpoint of the chain head now"))
    checkpoint.add_argument("--key", type=Path, help=f"Ed25519 private key (PEM; default ${CHECKPOINT_KEY_ENV})")
    checkpoint.add_argument("--checkpoints", type=Path, help=f"file to append to (default ${CHECKPOINT_FILE_ENV})")
    checkpoint.set_defaults(func=run_checkpoint)
    keygen = commands.add_parser("keygen", help="create an Ed25519 key pair for signing checkpoints")
    keygen.add_argument("--private-key", type=Path, required=True, help="where to write the private key (0600)")
    keygen.add_argument("--public-key", type=Path, required=True, help="where to write the public key")
    keygen.set_defaults(func=run_keygen)
    export = with_db(commands.add_parser("export", help="write entries as JSON lines"))
    export.add_argument("--since", help="ISO 8601 date-time with offset; default: everything")
    export.set_defaults(func=run_export)
    stats = with_db(
        commands.add_parser("stats", help="per rule: cards shown, accepted, overridden, left without feedback")
    )
    stats.add_argument("--since", help="ISO 8601 date-time with offset; default: everything")
    stats.add_argument("--json", action="store_true", help="print JSON instead of tables")
    stats.add_argument(
        "--fatigue-threshold",
        help="flag rules overridden on more than this share of their cards (default: the service setting "
        "fatigue_override_rate, 0.5)",
    )
    stats.add_argument(
        "--min-shown", help="flag only rules shown at least this often (default: the setting fatigue_min_shown, 10)"
    )
    stats.set_defaults(func=run_stats)
    audit_replay.register(commands, with_db)


def with_db(parser: Any, default: Any = argparse.SUPPRESS) -> Any:
    """``--db`` before or after the command (``audit --db URL verify`` and ``audit verify --db URL``); the
    command's own option, when given, wins."""
    parser.add_argument(
        "--db", default=default, help=f"database URL (default: ${DATABASE_ENV} or sqlite:///var/audit.sqlite3)"
    )
    return parser


def open_store(args: argparse.Namespace) -> Any:
    """The existing log; an auditor pointed at the wrong place must not get a new, empty, intact one."""
    from cds.audit import AuditStore
    from cds.audit.store import DEFAULT_URL

    return AuditStore(args.db or os.environ.get(DATABASE_ENV) or DEFAULT_URL, create=False)


def run_verify(args: argparse.Namespace) -> int:
    from cds.audit.checkpoint import CheckpointError, load_public_keys, read_checkpoints, unsigned

    checkpoints = []
    if args.checkpoints:
        if not args.public_key:
            raise InvalidInput("--public-key", "checkpoints are trusted only with the public key(s) that signed them")
        checkpoints = read_checkpoints(args.checkpoints)
        problem = unsigned(checkpoints, load_public_keys(args.public_key))
        if problem:
            raise CheckpointError(problem)
    store = open_store(args)
    try:
        report = store.verify({c.seq: c.head for c in checkpoints})
    finally:
        store.dispose()
    if not report.ok:
        print(
            f"audit chain BROKEN at entry {report.first_broken_seq}: {report.reason} "
            f"({report.entries} entries before it verify)"
        )
        return 1
    if report.entries == 0 and not args.allow_empty:
        print("imatinib-cds: the audit log is empty (--allow-empty if that is expected)", file=sys.stderr)
        return 1
    anchored = ""
    if checkpoints:
        latest = max(checkpoints, key=lambda c: (c.seq, c.time))
        anchored = f"; {len(checkpoints)} signed checkpoints hold, the latest at entry {latest.seq} ({latest.time})"
    print(f"audit chain intact: {report.entries} entries{anchored}")
    return 0


def run_checkpoint(args: argparse.Namespace) -> int:
    from datetime import UTC

    from cds.audit.checkpoint import CheckpointSigner, append_checkpoint

    key = args.key or _path_from_env(CHECKPOINT_KEY_ENV, "--key")
    target = args.checkpoints or _path_from_env(CHECKPOINT_FILE_ENV, "--checkpoints")
    signer = CheckpointSigner.from_file(key)
    store = open_store(args)
    try:
        seq_and_head: Callable[[], tuple[int, str]] = store.head
        written = append_checkpoint(target, lambda: signer.sign(*seq_and_head(), datetime.now(UTC)))
    finally:
        store.dispose()
    print(f"checkpoint at entry {written.seq} ({written.head[:16]}...) signed by key {written.key_id} -> {target}")
    return 0


def run_keygen(args: argparse.Namespace) -> int:
    from cds.audit.checkpoint import generate_key_pair

    kid = generate_key_pair(args.private_key, args.public_key)
    print(f"key {kid}: private key {args.private_key} (never beside the database), public key {args.public_key}")
    return 0


def _path_from_env(name: str, option: str) -> Path:
    value = os.environ.get(name)
    if not value:
        raise InvalidInput(option, f"not given and ${name} is not set")
    return Path(value)


def run_show(args: argparse.Namespace) -> int:
    store = open_store(args)
    decision = store.decision(args.hook_instance, args.client)
    if decision is None:
        print(f"imatinib-cds: no decision recorded for hookInstance {args.hook_instance}", file=sys.stderr)
        return 1
    decision["feedback"] = store.feedback_for(args.hook_instance, decision.get("client"))
    print(json.dumps(decision, indent=2, ensure_ascii=False, default=str))
    return 0


def parse_since(text: str | None) -> datetime | None:
    return parse_instant(text, "--since")


def run_export(args: argparse.Namespace) -> int:
    since = parse_since(args.since)
    for entry in open_store(args).export(since):
        sys.stdout.write(json.dumps(entry, ensure_ascii=False, default=str, separators=(",", ":")) + "\n")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    """The fatigue flag's defaults are the service's settings (its configuration file and environment)."""
    from cds.audit.stats import FatigueRule, checked_min_shown, checked_threshold, collect_stats, format_report
    from cds.service.config import load_config

    since = parse_since(args.since)
    config = load_config()
    fatigue = FatigueRule(
        _option("--fatigue-threshold", args.fatigue_threshold, checked_threshold, config.fatigue_override_rate),
        _option("--min-shown", args.min_shown, checked_min_shown, config.fatigue_min_shown),
    )
    store = open_store(args)
    try:
        stats = collect_stats(store, fatigue, since=since)
    finally:
        store.dispose()
    if args.json:
        print(json.dumps(stats.as_json(), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(format_report(stats))
    return 0


def _option(name: str, text: str | None, check: Callable[[str], T], default: T) -> T:
    if text is None:
        return default
    try:
        return check(text)
    except ValueError as exc:
        raise InvalidInput(name, str(exc)) from exc
