"""``imatinib-cds audit verify [--file EXPORT] | show HOOKINSTANCE [--json] | export [--since] [--until] [--format]
[--deidentify] | stats | checkpoint | keygen``, and ``replay`` and ``shadow-report`` (cds/cli/audit_replay.py): for
reviewers and auditors. Only ``keygen`` writes a new file (``checkpoint`` appends to one); none of them ever creates
a database or writes to the chain (docs/deploy.md)."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from cds.audit.export import FORMATS
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
    verify.add_argument(
        "--file",
        type=Path,
        help="check an export (JSON lines or CSV) on its own: each entry's hash from its content and the previous "
        "hash; with --checkpoints, the signed checkpoints inside it; with --db, the database it came from",
    )
    verify.set_defaults(func=run_verify)
    show = with_db(commands.add_parser("show", help="print a decision with its feedback"))
    show.add_argument("hook_instance")
    show.add_argument("--client", help="the issuer of the client whose decision to show (default: the latest)")
    show.add_argument("--json", action="store_true", help="print the whole record (JSON) instead of a summary")
    show.set_defaults(func=run_show)
    checkpoint = with_db(commands.add_parser("checkpoint", help="append a signed checkpoint of the chain head now"))
    checkpoint.add_argument("--key", type=Path, help=f"Ed25519 private key (PEM; default ${CHECKPOINT_KEY_ENV})")
    checkpoint.add_argument("--checkpoints", type=Path, help=f"file to append to (default ${CHECKPOINT_FILE_ENV})")
    checkpoint.set_defaults(func=run_checkpoint)
    keygen = commands.add_parser("keygen", help="create an Ed25519 key pair for signing checkpoints")
    keygen.add_argument("--private-key", type=Path, required=True, help="where to write the private key (0600)")
    keygen.add_argument("--public-key", type=Path, required=True, help="where to write the public key")
    keygen.set_defaults(func=run_keygen)
    export = with_db(commands.add_parser("export", help="write entries as JSON lines or CSV"))
    export.add_argument("--since", help="entries written at or after this ISO 8601 date-time with offset")
    export.add_argument("--until", help="entries written before this ISO 8601 date-time with offset")
    export.add_argument("--format", choices=FORMATS, default="jsonl", help="jsonl (default) or csv")
    export.add_argument(
        "--deidentify",
        action="store_true",
        help="remove the kept request and record, free-text comments and links; replace patient references, "
        "hookInstances, UUIDs and FHIR ids by keyed pseudonyms (docs/deploy.md). Cannot be hash-verified",
    )
    export.add_argument(
        "--pseudonym-key",
        type=Path,
        help="file with the secret key of the pseudonyms (32 bytes or more), for pseudonyms that agree across "
        "exports; default: a one-off random key, so pseudonyms link entries within this export only",
    )
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
    checkpoints = _signed_checkpoints(args)
    if args.file is not None:
        return _verify_file(args, checkpoints)
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


def _signed_checkpoints(args: argparse.Namespace) -> list[Any]:
    from cds.audit.checkpoint import CheckpointError, load_public_keys, read_checkpoints, unsigned

    if not args.checkpoints:
        return []
    if not args.public_key:
        raise InvalidInput("--public-key", "checkpoints are trusted only with the public key(s) that signed them")
    checkpoints = read_checkpoints(args.checkpoints)
    problem = unsigned(checkpoints, load_public_keys(args.public_key))
    if problem:
        raise CheckpointError(problem)
    return checkpoints


def _verify_file(args: argparse.Namespace, checkpoints: list[Any]) -> int:
    """An exported slice on its own: its chain, then what anchors it (checkpoints, the database)."""
    from cds.audit.export import anchored_at, read_slice, verify_slice

    rows = read_slice(args.file)
    report = verify_slice(rows)
    if not report.ok:
        print(
            f"export {args.file} BROKEN at entry {report.broken_seq}: {report.reason} "
            f"({report.entries} entries before it verify)"
        )
        return 1
    if not rows:
        print(f"imatinib-cds: {args.file} holds no audit entries", file=sys.stderr)
        return 1
    print(
        f"export {args.file}: entries {report.first_seq}-{report.last_seq} ({report.entries}, written "
        f"{report.first_time} to {report.last_time}) intact: each hash recomputed from the entry's content and the "
        "previous entry's hash"
    )
    anchored = False
    if checkpoints:
        latest, problem = anchored_at(rows, {c.seq: c.head for c in checkpoints})
        if problem:
            print(f"export {args.file} does NOT match its checkpoints: {problem}")
            return 1
        if latest is None:
            inside = f"{report.first_seq}-{report.last_seq}"
            print(
                f"export {args.file} NOT anchored: none of the {len(checkpoints)} signed checkpoints is at an entry "
                f"in {inside}; export up to a checkpointed entry, or check it against the database (--db)"
            )
            return 1
        last = report.last_seq or latest
        after = ""
        if last > latest:
            later = f"entry {last} follows" if last == latest + 1 else f"entries {latest + 1}-{last} follow"
            after = f"; {later} it, chained to it only"
        print(
            f"anchored: the signed checkpoint at entry {latest} holds, and so every entry of the slice up to it{after}"
        )
        anchored = True
    if args.db:
        if not _matches_database(args, rows):
            return 1
        anchored = True
    if not anchored:
        print(
            "not anchored: give --checkpoints and --public-key, or --db, to tie the slice to the log it came from "
            "(on its own, the file shows only that no entry was changed without recomputing the hashes after it)"
        )
    return 0


def _matches_database(args: argparse.Namespace, rows: list[Any]) -> bool:
    store = open_store(args)
    try:
        seqs = {row.seq: row.entry_hash for row in rows}
        first, last = min(seqs), max(seqs)
        found = {int(e["seq"]): str(e["entry_hash"]) for e in store.entries_between(first, last)}
        head_seq, _ = store.head()
    finally:
        store.dispose()
    for seq, digest in seqs.items():
        if found.get(seq) != digest:
            print(
                f"export {args.file} does NOT match the database: entry {seq} "
                + ("is not in it" if seq not in found else "has another hash there")
            )
            return False
    print(
        f"matches the database: entries {first}-{last} have the same hashes there (its head: entry {head_seq}; "
        "`audit verify` checks the database's own chain)"
    )
    return True


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
    feedback = store.feedback_for(args.hook_instance, decision.get("client"))
    if args.json:
        decision["feedback"] = feedback
        print(json.dumps(decision, indent=2, ensure_ascii=False, default=str))
        return 0
    from cds.audit.summary import format_decision

    sys.stdout.write(format_decision(decision, feedback, store.count()))
    return 0


def parse_since(text: str | None) -> datetime | None:
    return parse_instant(text, "--since")


def run_export(args: argparse.Namespace) -> int:
    from cds.audit.export import Pseudonyms, deidentify, write_csv, write_jsonl

    since, until = parse_since(args.since), parse_instant(args.until, "--until")
    if since is not None and until is not None and until <= since:
        raise InvalidInput("--until", "must be later than --since")
    if args.pseudonym_key is not None and not args.deidentify:
        raise InvalidInput("--pseudonym-key", "only used with --deidentify")
    store = open_store(args)
    try:
        entries: Iterable[dict[str, Any]] = store.export(since, until=until)
        if args.deidentify:
            pseudonyms = Pseudonyms(_pseudonym_key(args.pseudonym_key))
            entries = (deidentify(e, pseudonyms) for e in entries)
        write = write_csv if args.format == "csv" else write_jsonl
        write(entries, sys.stdout)
    finally:
        store.dispose()
    if args.deidentify and args.pseudonym_key is None:
        print(
            "imatinib-cds: de-identified with a one-off key: pseudonyms link entries within this export only",
            file=sys.stderr,
        )
    return 0


def _pseudonym_key(path: Path | None) -> bytes:
    if path is None:
        return secrets.token_bytes(32)
    try:
        return path.read_bytes().strip()
    except OSError as exc:
        raise InvalidInput("--pseudonym-key", f"cannot read {path}: {exc.strerror or exc}") from exc


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
