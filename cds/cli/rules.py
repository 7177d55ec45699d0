"""``imatinib-cds rules check | test | schema | show | diff | export``: the pharmacist's tools for rule files.

Without a rules folder, every command reads IMATINIB_CDS_RULES if set, else the shipped rule pack.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from cds.cli import rules_export, rules_review
from cds.engine.diagnostics import Diagnostic
from cds.engine.ruleset import RuleSet, check_rules, load_rules, load_rules_partly
from cds.errors import CdsError, InvalidInput
from cds.shipped import default_rules

EXIT_DIFFERENT = 1  # with --exit-code, as diff(1) and git diff; trouble is 2 (InvalidInput), so never ambiguous


def register(sub: Any) -> None:
    rules = sub.add_parser("rules", help="check, test and inspect rule files")
    commands = rules.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="lint rule files; every problem as file:line:col CODE message")
    check.add_argument("path", nargs="?", type=Path, default=default_rules())
    check.set_defaults(func=run_check)

    test = commands.add_parser(
        "test",
        help="run the tests written next to the rules: every rule that loads, even while `rules check` reports "
        "errors; failing cases (FAIL) and missing boundary tests (MISS) by name",
    )
    test.add_argument("path", nargs="?", type=Path, default=default_rules())
    test.add_argument("--engine", choices=("durable", "reference"), default="durable")
    test.add_argument(
        "--requests-root",
        type=Path,
        action="append",
        metavar="DIR",
        help="folder the tests' `request:` paths start from, e.g. a repository checkout (default: the folder "
        "holding the rules folder, then the checkout the package runs from); cases whose request is not found "
        "are skipped",
    )
    test.set_defaults(func=run_test)

    schema = commands.add_parser("schema", help="print the JSON Schema of rule files (for editors)")
    schema.set_defaults(func=run_schema)

    show = commands.add_parser("show", help="print one rule as written, or --all --markdown for the committee")
    show.add_argument("rule_id", nargs="?")
    show.add_argument("--all", action="store_true", help="every active rule (with --markdown: docs/rules.md)")
    show.add_argument("--markdown", action="store_true", help="the catalogue as markdown, with evidence and tests")
    show.add_argument("--rules", type=Path, default=default_rules())
    show.set_defaults(func=run_show)

    diff = commands.add_parser(
        "diff",
        help="what changed between two rule directories, by meaning (rules, policy, terminology, PK models)",
        description="Compare two rules directories as loaded: formatting, comments and YAML anchors never show "
        "as changes. Markdown for the committee, or --json. Exit status: 0 (also when they differ, unless "
        "--exit-code), 1 with --exit-code when they differ, 2 when a side is missing or does not load.",
    )
    diff.add_argument("old", type=Path, metavar="OLD_DIR")
    diff.add_argument("new", type=Path, metavar="NEW_DIR")
    diff.add_argument("--json", action="store_true", help="the differences as JSON")
    diff.add_argument("--exit-code", action="store_true", help="exit 1 when the rule sets differ (as git diff)")
    diff.set_defaults(func=run_diff)

    which = commands.add_parser(
        "which",
        help="the rule files a recorded rule-set digest stands for (rules folder, git history, audit log)",
        description="Find the rule files behind a digest recorded with a decision (`audit show`, the explanation "
        "page): the rules folder itself, the commits of its git history with that digest, and with --db the "
        "version the audit log recorded with it. Exit status 1 when nothing matches.",
    )
    which.add_argument("digest", metavar="DIGEST", help="the digest or its first 6 or more characters")
    which.add_argument("--rules", type=Path, default=default_rules(), help="rules folder (its git history too)")
    which.add_argument("--db", help="audit database URL: also list what the log recorded with the digest")
    which.set_defaults(func=run_which)

    rules_review.register(commands)  # committee tools: trace, audit, catalogue
    rules_export.register(commands)


def run_check(args: argparse.Namespace) -> int:
    rule_set, diagnostics = check_rules(args.path)
    for diagnostic in diagnostics:
        print(diagnostic)
        if diagnostic.fix:
            print(f"    fix: {diagnostic.fix}")
    print(check_summary(diagnostics, len(rule_set.rules) if rule_set else 0))
    return 1 if rule_set is None else 0


def check_summary(diagnostics: Sequence[Diagnostic], active_rules: int) -> str:
    """The last line of `rules check`: with errors the rule set is not loaded (the service would refuse it)."""
    errors = sum(d.severity == "error" for d in diagnostics)
    counts = f"{errors} error(s), {len(diagnostics) - errors} warning(s)"
    return f"not loaded: {counts}" if errors else f"{counts}; {active_rules} active rule(s)"


def run_test(args: argparse.Namespace) -> int:
    """Runs the tests of every rule that loads, even while `rules check` reports errors (a policy value just
    changed): the failing cases, then the boundary tests still missing, by name."""
    from cds.engine.boundary import missing_boundary_tests
    from cds.engine.evaluate import RuleEngine
    from cds.engine.testing import run_rule_tests

    rule_set, diagnostics = load_rules_partly(args.path)
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        print(f"rules check reports {len(errors)} error(s): testing the {len(rule_set.rules)} rule(s) that load")
    engine = RuleEngine(rule_set, backend=args.engine)
    results = run_rule_tests(engine, _request_loader(args.path, args.requests_root or (), rule_set))
    width = max((len(r.rule_id) for r in results), default=10)
    for result in results:
        status = "skip" if result.skipped else "pass" if result.passed else "FAIL"
        print(f"{status}  {result.rule_id:<{width}}  {result.test}")
        for failure in result.failures:
            print(f"      {result.file}:{result.line} E015 {failure}")
        if result.skipped:
            print(f"      {result.file}:{result.line} {result.skipped}")
    missing = [m for rule in rule_set.rules for m in missing_boundary_tests(rule, rule_set.vocabulary)]
    for found in missing:
        for test in found.missing:
            print(f"MISS  {found.rule_id:<{width}}  {test}")
        print(f"      {found.file}:{found.line} E010 threshold {found.threshold}; {found.nearest_tests()}")
    failed = sum(not r.passed for r in results)
    skipped = sum(bool(r.skipped) for r in results)
    ran = len(results) - skipped
    note = f"; {skipped} skipped: their requests are not here (see --requests-root)" if skipped else ""
    gaps = f"; {sum(len(m.missing) for m in missing)} boundary test(s) missing" if missing else ""
    print(f"{ran} cases ran: {ran - failed} passed, {failed} failed{note}{gaps}")
    return 1 if failed or errors else 0


def _request_loader(rules_dir: Path, roots: Sequence[Path], rule_set: RuleSet) -> Any:
    from cds.pipeline import ExampleRequests  # rule tests may name a fhir_examples request

    return ExampleRequests(rules_dir, roots, rule_set)


def run_schema(args: argparse.Namespace) -> int:
    from cds.engine.schema import rule_file_schema

    json.dump(rule_file_schema(), sys.stdout, indent=2)
    print()
    return 0


def run_show(args: argparse.Namespace) -> int:
    rule_set = load_rules(args.rules)
    if args.all:
        from cds.engine.catalogue import render_catalogue

        if args.markdown:
            print(render_catalogue(rule_set), end="")
        else:
            for rule in rule_set.rules:
                print(f"{rule.id}\t{rule.ruleset_id}@{rule.ruleset_version}\t{rule.title}")
        return 0
    if not args.rule_id:
        print("imatinib-cds: give a RULE_ID, or --all", file=sys.stderr)
        return 2
    try:
        rule = rule_set.rule(args.rule_id)
    except KeyError:
        print(f"imatinib-cds: no rule {args.rule_id} in {args.rules}", file=sys.stderr)
        return 1
    print(f"# {rule.id} - {rule.title}")
    print(f"# {rule.file}:{rule.line}  ruleset {rule.ruleset_id}@{rule.ruleset_version}")
    print(yaml.safe_dump(dict(rule.source), sort_keys=False, allow_unicode=True, width=110), end="")
    return 0


def run_which(args: argparse.Namespace) -> int:
    from cds.engine.provenance import commits_with_digest, recorded_with_digest
    from cds.engine.ruleset import digest_of

    digest = args.digest.strip().lower()
    if len(digest) < 6 or any(ch not in "0123456789abcdef" for ch in digest):
        raise InvalidInput("DIGEST", f"{args.digest!r} is not a digest (6 or more hexadecimal characters)")
    found = 0
    if digest_of(args.rules).startswith(digest):
        print(f"{args.rules}: the rules folder as it is now")
        found += 1
    try:
        commits = commits_with_digest(args.rules, digest)
    except CdsError as exc:
        print(f"git history not searched: {exc}")
        commits = []
    for commit in commits:
        print(f"git {commit.commit[:12]} {commit.date} {commit.subject}")
        print(f"      git archive {commit.commit[:12]} {commit.folder} | tar -x -C DIR")
    found += len(commits)
    if args.db:
        from cds.audit import AuditStore

        store = AuditStore(args.db, create=False)
        for rec in recorded_with_digest(store.export(kind="decision"), digest):
            print(f"audit log: {rec.decisions} decision(s) {rec.first} .. {rec.last}, digest {rec.digest}")
            print(f"      version {rec.version}")
            found += 1
    if not found:
        print(f"no rules with digest {digest} in {args.rules}, its git history{' or the audit log' if args.db else ''}")
    return 0 if found else 1


def run_diff(args: argparse.Namespace) -> int:
    from cds.engine.diff import diff_snapshots, load_snapshot
    from cds.engine.diff_render import render_json, render_markdown

    snapshots = []
    for name, path in (("OLD_DIR", args.old), ("NEW_DIR", args.new)):
        try:
            snapshots.append(load_snapshot(path))
        except CdsError as exc:  # exit 2, so that --exit-code's 1 only ever means "they differ"
            raise InvalidInput(name, str(exc)) from exc
    diff = diff_snapshots(*snapshots)
    print(render_json(diff) if args.json else render_markdown(diff), end="")
    return EXIT_DIFFERENT if args.exit_code and not diff.empty else 0
