"""Entry point of the ``imatinib-cds`` console script.

Each area module (rules, facts, pk, evaluate, serve, audit) exposes ``register(subparsers)`` and sets ``func``
on its parsers; ``func(args)`` returns the exit code. Library errors (``CdsError``) become one line on stderr;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from cds.errors import CdsError, InvalidInput

EXIT_INVALID_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    from cds.cli import audit, config, evaluate, facts, pk, rules, serve

    parser = argparse.ArgumentParser(
        prog="imatinib-cds", description="CDS Hooks decision support for imatinib TDM and dose adjustment"
    )
    parser.add_argument(
        "--version", action=VersionAction, help="print the package version and the shipped rule pack's version"
    )
    sub = parser.add_subparsers(dest="area", required=True, metavar="COMMAND")
    for module in (rules, facts, pk, evaluate, serve, config, audit):
        module.register(sub)
    return parser


class VersionAction(argparse.Action):
    """``--version``: loads the shipped rule pack only when asked (its digest covers every file of it)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        sys.stdout.write(version_text())
        parser.exit()


def version_text() -> str:
    from cds import __version__
    from cds.engine.ruleset import load_rules
    from cds.shipped import RULES_ENV, shipped_rules

    pack = shipped_rules()
    rule_set = load_rules(pack)
    lines = [
        f"imatinib-cds {__version__}",
        f"rule pack {pack}",
        f"  version {rule_set.version}",
        f"  digest {rule_set.digest}",
    ]
    if os.environ.get(RULES_ENV):
        lines.append(f"{RULES_ENV}={os.environ[RULES_ENV]} is read instead where no rules folder is given")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except InvalidInput as exc:
        print(f"imatinib-cds: invalid input: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except CdsError as exc:
        print(f"imatinib-cds: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader went away (`... | head`): stop quietly. SIGPIPE stays ignored, as sockets need it to be.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
