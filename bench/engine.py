"""Rule-engine benchmark: load + compile time and per-evaluation latency over the whole shipped rule set.

Prints figures; asserts nothing. Documents are drawn from the rules' own test cases (realistic mixes of
facts that make rules fire) and evaluated for every hook, with durable_rules and with the reference
evaluator for comparison.

    .venv/bin/python bench/engine.py [--rules rules] [--repeat 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from cds.engine.evaluate import RuleEngine
from cds.engine.ruleset import load_rules


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, default=Path("rules"))
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()

    loads = []
    for _ in range(5):
        start = time.perf_counter()
        rule_set = load_rules(args.rules)
        loaded = time.perf_counter()
        RuleEngine(rule_set)
        loads.append((loaded - start, time.perf_counter() - loaded))
    print(f"rule set {rule_set.version}: {len(rule_set.rules)} active rules, digest {rule_set.digest[:12]}")
    print(
        f"load + lint: median {statistics.median(a for a, _ in loads) * 1e3:.1f} ms; "
        f"compile + register in durable_rules: median {statistics.median(b for _, b in loads) * 1e3:.1f} ms"
    )

    cases = [(t.facts, t.hook) for r in rule_set.rules for t in r.tests if t.facts is not None]
    for backend in ("durable", "reference"):
        engine = RuleEngine(rule_set, backend=backend)
        timings = []
        fired = 0
        for i in range(args.repeat):
            facts, hook = cases[i % len(cases)]
            assert facts is not None
            start = time.perf_counter()
            decision = engine.evaluate(facts, hook)
            timings.append(time.perf_counter() - start)
            fired += len(decision.fired)
        print(
            f"{backend:>9}: one evaluation of the whole rule set (facts -> decision): "
            f"median {statistics.median(timings) * 1e3:.3f} ms, p99 {percentile(timings, 0.99) * 1e3:.3f} ms, "
            f"max {max(timings) * 1e3:.3f} ms over {args.repeat} documents ({fired / args.repeat:.1f} rules fired each)"
        )


if __name__ == "__main__":
    main()
