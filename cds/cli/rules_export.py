"""``imatinib-cds rules export DIR``: the shipped rule pack copied into a folder, the start of local edits."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cds.shipped import RULES_ENV, export_rules, shipped_rules


def register(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="copy the shipped rule pack into DIR to edit it locally (then serve it with --rules DIR)",
    )
    export.add_argument("dest", type=Path, metavar="DIR", help="the folder to write (created if needed)")
    export.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    export.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    written = export_rules(args.dest, force=args.force)
    print(f"{len(written)} file(s) of the rule pack {shipped_rules()} written to {args.dest}")
    print(f"next: imatinib-cds rules check {args.dest}; serve them with --rules {args.dest} or {RULES_ENV}")
    return 0
