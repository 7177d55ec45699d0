"""Post the fhir_examples requests, re-dated to today, to a running service: a decision history to try the
governance commands on (docs/governance.md), or traffic for a shadow evaluation.

    .venv/bin/python bench/post_examples.py                      # to http://127.0.0.1:8080, once each
    .venv/bin/python bench/post_examples.py --base http://127.0.0.1:8765 --repeat 10

Each request gets a fresh hookInstance. Prints how many were answered 200; exits 1 if any was not.
"""

from __future__ import annotations

import argparse
import sys
import uuid

import httpx
from redated import load_mix


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="http://127.0.0.1:8080", help="the service's base URL")
    parser.add_argument("--repeat", type=int, default=1, help="times to post each example")
    args = parser.parse_args()
    answered, failed = 0, []
    with httpx.Client(base_url=args.base, timeout=30) as client:
        for _ in range(args.repeat):
            for path, body in load_mix():
                response = client.post(path, json=dict(body, hookInstance=f"example-{uuid.uuid4()}"))
                if response.status_code == 200:
                    answered += 1
                else:
                    failed.append(f"{path}: {response.status_code} {response.text[:200]}")
    print(f"{answered} decisions answered" + (f", {len(failed)} not:" if failed else ""))
    for line in failed[:10]:
        print("  " + line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
