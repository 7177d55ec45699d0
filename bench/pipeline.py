"""In-process cost of one decision, stage by stage, over the fhir_examples mix (no HTTP, no audit).

Runs each example through the pipeline's stages (request parsing, FHIR facts, PK, rules, cards) many times
and prints, per stage, the mean over the mix of each example's median: medians keep a busy machine's
outliers out, and the mean over the mix is what one call costs the server on average.

    .venv/bin/python bench/pipeline.py [--repeat 50] [--per-example]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from cds.cards import CardContext, build_cards
from cds.fhir import extract_record, fact_values, parse_request
from cds.pipeline import EXAMPLES_EVALUATION_TIME, Pipeline
from cds.pk_step import estimate_for_record

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("parse", "facts", "pk", "rules", "cards")


def stage_times(pipeline: Pipeline, raw: bytes) -> list[float]:
    """Seconds spent in each stage for one request, in the order of STAGES."""
    marks = [time.perf_counter()]
    request = parse_request(raw)
    marks.append(time.perf_counter())
    record = extract_record(
        request,
        now=EXAMPLES_EVALUATION_TIME,
        vocabulary=pipeline.rule_set.vocabulary,
        settings=pipeline.settings,
        terminology=pipeline.terminology,
    )
    marks.append(time.perf_counter())
    pk = estimate_for_record(record, pipeline.rule_set.policy)
    marks.append(time.perf_counter())
    decision = pipeline.engine.evaluate({**fact_values(record), **pk.facts}, request.hook)
    marks.append(time.perf_counter())
    context = CardContext(request.hook_instance, request.patient_id, record.draft_orders)
    build_cards(decision, context)
    marks.append(time.perf_counter())
    return [b - a for a, b in zip(marks, marks[1:], strict=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--per-example", action="store_true", help="also print each example's medians")
    args = parser.parse_args()
    pipeline = Pipeline()
    examples = {p.name: p.read_bytes() for p in sorted((ROOT / "fhir_examples").glob("*.json"))}
    medians: dict[str, list[float]] = {}
    for name, raw in examples.items():
        for _ in range(5):
            stage_times(pipeline, raw)  # warm-up
        runs = [stage_times(pipeline, raw) for _ in range(args.repeat)]
        medians[name] = [statistics.median(run[i] for run in runs) * 1000 for i in range(len(STAGES))]
    print(f"{len(examples)} fhir_examples, median of {args.repeat} runs each, ms")
    header = "".join(f"{s:>8}" for s in (*STAGES, "total"))
    print(f"{'':48}{header}")
    if args.per_example:
        for name, row in medians.items():
            print(f"{name:48}" + "".join(f"{v:8.2f}" for v in (*row, sum(row))))
    mean = [statistics.fmean(row[i] for row in medians.values()) for i in range(len(STAGES))]
    print(f"{'mean over the mix':48}" + "".join(f"{v:8.2f}" for v in (*mean, sum(mean))))


if __name__ == "__main__":
    main()
