"""``imatinib-cds serve``: the HTTP service is not built yet; say so and fail rather than pretend."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_NOT_BUILT = 3


def register(sub: Any) -> None:
    parser = sub.add_parser("serve", help="run the CDS Hooks service (not built yet)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(
        "imatinib-cds: the CDS Hooks HTTP service is not built yet (issue 4); "
        "use `imatinib-cds rules check|test` meanwhile.",
        file=sys.stderr,
    )
    return EXIT_NOT_BUILT
