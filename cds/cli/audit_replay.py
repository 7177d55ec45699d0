"""``imatinib-cds audit replay --rules DIR`` and ``audit shadow-report``: what candidate rules would have advised
on recorded decisions, and what a shadow rule set advised beside the live one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cds.errors import InvalidInput


def register(commands: Any, with_db: Any) -> None:
    """``with_db(parser)`` adds the database option every audit command takes."""
    replay = with_db(commands.add_parser("replay", help="re-evaluate recorded decisions with (candidate) rules"))
    replay.add_argument("--rules", type=Path, required=True, help="rule directory to evaluate with")
    replay.add_argument("--since", help="only decisions recorded since (ISO 8601 with offset)")
    replay.add_argument("--json", action="store_true", help="the whole report as JSON on stdout")
    replay.add_argument("--html", type=Path, metavar="OUT.html", help="also write the committee's report here")
    replay.set_defaults(func=run_replay)
    report = with_db(commands.add_parser("shadow-report", help="compare live and shadow advice (serve --shadow-rules)"))
    report.add_argument("--candidate", help="digest (or its start) of the shadow rule set; default: the latest")
    report.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    report.set_defaults(func=run_shadow_report)


def run_replay(args: argparse.Namespace) -> int:
    from cds.cli.audit import open_store, parse_since
    from cds.governance.replay import replay
    from cds.governance.report import ReplayReport
    from cds.pipeline import Pipeline

    since = parse_since(args.since)
    if not args.rules.is_dir():
        raise InvalidInput("--rules", f"not a rule directory: {args.rules}")
    pipeline = Pipeline(args.rules)
    store = open_store(args)
    report = ReplayReport(pipeline.rule_set)
    try:
        for replayed in replay(store, pipeline, since):
            report.add(replayed)
        if args.json:
            report.write_json(sys.stdout)
        else:
            report.write_text(sys.stdout)
        if args.html:
            try:
                report.write_html(args.html)
            except OSError as exc:
                raise InvalidInput(str(args.html), f"cannot write the file: {exc.strerror}") from exc
    finally:
        report.close()
        store.dispose()
    return 0


def run_shadow_report(args: argparse.Namespace) -> int:
    import json

    from cds.cli.audit import open_store
    from cds.governance.shadow_report import shadow_report, write_text

    store = open_store(args)
    try:
        report = shadow_report(store, args.candidate)
    finally:
        store.dispose()
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        write_text(report, sys.stdout)
    return 0
