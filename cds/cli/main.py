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

from cds.errors import CdsError, InvalidInput

EXIT_INVALID_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    from cds.cli import audit, evaluate, facts, pk, rules, serve

    parser = argparse.ArgumentParser(
        prog="imatinib-cds", description="CDS Hooks decision support for imatinib TDM and dose adjustment"
    )
    sub = parser.add_subparsers(dest="area", required=True, metavar="COMMAND")
    for module in (rules, facts, pk, evaluate, serve, audit):
        module.register(sub)
    return parser


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
