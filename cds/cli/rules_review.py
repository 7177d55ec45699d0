"""``imatinib-cds rules trace | audit | catalogue``: the committee's review tools for rule files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cds.engine.ruleset import load_rules
from cds.shipped import default_rules


def register(commands: Any) -> None:
    trace = commands.add_parser("trace", help="print the recommendation -> rules -> tests matrix (markdown)")
    trace.add_argument("path", nargs="?", type=Path, default=default_rules())
    trace.add_argument("--map", type=Path, default=None, help="guideline map (default: <rules>/guideline-map.yaml)")
    trace.set_defaults(func=run_trace)

    audit = commands.add_parser(
        "audit", help="static audit: unreachable rules, dose conflicts, probable duplicates, unused codes"
    )
    audit.add_argument("path", nargs="?", type=Path, default=default_rules())
    audit.add_argument("--seed", type=int, default=8, help="seed of the witness search")
    audit.set_defaults(func=run_audit)

    catalogue = commands.add_parser("catalogue", help="print every rule with its evidence as markdown")
    catalogue.add_argument("path", nargs="?", type=Path, default=default_rules())
    catalogue.add_argument("--output", "-o", type=Path, default=None, help="write to this file instead")
    catalogue.set_defaults(func=run_catalogue)


def run_trace(args: argparse.Namespace) -> int:
    from cds.engine.trace import check_trace, map_path, read_guideline_map, render_trace_markdown

    rule_set = load_rules(args.path)
    path = args.map or map_path(rule_set)
    gmap, _ = read_guideline_map(path)
    problems = check_trace(rule_set, path)
    if gmap is not None:
        print(render_trace_markdown(rule_set, gmap, problems), end="")
    else:
        for problem in problems:
            print(problem)
    return 1 if problems else 0


def run_audit(args: argparse.Namespace) -> int:
    from cds.engine.static_audit import audit_rules, render_audit

    report = audit_rules(load_rules(args.path), seed=args.seed)
    print(render_audit(report), end="")
    return 1 if report.unexplained else 0


def run_catalogue(args: argparse.Namespace) -> int:
    from cds.engine.catalogue import render_catalogue

    text = render_catalogue(load_rules(args.path))
    if args.output is None:
        print(text, end="")
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0
