"""``imatinib-cds evaluate REQUEST.json``: the whole pipeline offline; prints the CDS Hooks response."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from cds.cli.instants import parse_instant
from cds.errors import InvalidInput


def register(sub: Any) -> None:
    parser = sub.add_parser("evaluate", help="run facts, PK, rules and cards on a CDS Hooks request file")
    parser.add_argument("request", type=Path, help="a CDS Hooks request (JSON), e.g. fhir_examples/*.json")
    parser.add_argument("--trace", action="store_true", help="add a `trace` object: facts, fired rules, dose, PK")
    parser.add_argument("--now", help="evaluation time (ISO 8601 with offset); default: the current time")
    parser.add_argument(
        "--rules", type=Path, default=None, help="rules folder (default: IMATINIB_CDS_RULES, else the shipped rules)"
    )
    parser.add_argument(
        "--explain-html",
        type=Path,
        metavar="OUT.html",
        help="also write the explanation page (self-contained HTML, plot embedded) to this file",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cds.pipeline import Pipeline, dumps
    from cds.shipped import default_rules

    try:
        raw = args.request.read_bytes()
    except OSError as exc:
        raise InvalidInput(str(args.request), f"cannot read the file: {exc.strerror}") from exc
    now = parse_now(args.now)  # check the cheap arguments before loading the rules
    pipeline = Pipeline(args.rules or default_rules())
    outcome = pipeline.run(raw, now=now)
    body: dict[str, Any] = dict(outcome.response)
    if args.trace:
        body["trace"] = outcome.trace()
    if args.explain_html is not None:
        from cds.web.pages import offline_page, offline_payload

        page = offline_page(offline_payload(outcome, received=now), pipeline.rule_set)
        try:
            args.explain_html.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(str(args.explain_html), f"cannot write the file: {exc.strerror}") from exc
    print(dumps(body))
    return 0


def parse_now(text: str | None) -> datetime | None:
    return parse_instant(text, "--now")
