"""Small planted rule files for the review-tool tests (trace, audit, catalogue)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_rules_root

HEADER = """ruleset:
  id: {id}
  version: 1.0.0
  status: active
  title: Planted rules for tests
  purpose: Planted rules that the review tools must judge.
  owner: tests
  authors: [{{name: tests, role: author}}]
  clinical_reviewers: []
  approved: {{by: tests, date: 2026-11-25}}
  effective_from: 2026-12-01
  review_by: 2027-12-01
  jurisdiction: US
  hit_policy: collect
  change_log: [{{version: 1.0.0, date: 2026-11-25, change: planted}}]
rules:
"""

EVIDENCE = "[{citation: planted, level: local-policy}]"


def rule(rule_id: str, when: str, then: str, tests: str, extra: str = "") -> str:
    return (
        f"  - id: {rule_id}\n    title: planted {rule_id}\n    hooks: [order-sign]\n"
        f"    evidence: {EVIDENCE}\n{extra}    when: {when}\n    then: {then}\n    tests:\n{tests}"
    )


def case(name: str, facts: str, expect: str) -> str:
    return f"      - {{name: {name}, facts: {facts}, expect: {expect}}}\n"


def root_with(tmp_path: Path, *rules: str, file_id: str = "planted", map_text: str | None = None) -> Path:
    text = HEADER.format(id=file_id) + "".join(rules)
    root = make_rules_root(tmp_path / "root", (f"{file_id}.yaml", text))
    if map_text is not None:
        (root / "guideline-map.yaml").write_text(map_text, encoding="utf-8")
    return root


# two rules on the same condition that move the dose in opposite directions
UP = rule(
    "PL-UP-001",
    "{gte: [renal.crcl, 60 mL/min]}",
    "{dose: {step: 1, of: regimen.previous_daily_mg}}",
    case("crcl 60", "{renal.crcl: 60 mL/min, regimen.daily_mg: 400 mg}", "{fired: [PL-UP-001]}")
    + case("crcl 59", "{renal.crcl: 59 mL/min}", "{not_fired: [PL-UP-001]}"),
)
DOWN = rule(
    "PL-DOWN-001",
    "{gt: [renal.crcl, 80 mL/min]}",
    "{dose: {step: -1, of: regimen.previous_daily_mg}}",
    case("crcl 81", "{renal.crcl: 81 mL/min, regimen.daily_mg: 400 mg}", "{fired: [PL-DOWN-001]}")
    + case("crcl 80", "{renal.crcl: 80 mL/min}", "{not_fired: [PL-DOWN-001]}"),
)
# the same opposite moves on exclusive conditions: no conflict
DOWN_EXCLUSIVE = rule(
    "PL-DOWN-002",
    "{lt: [renal.crcl, 40 mL/min]}",
    "{dose: {step: -1, of: regimen.previous_daily_mg}}",
    case("crcl 39", "{renal.crcl: 39 mL/min}", "{fired: [PL-DOWN-002]}")
    + case("crcl 40", "{renal.crcl: 40 mL/min}", "{not_fired: [PL-DOWN-002]}"),
)
# contradictory thresholds: CrCl below 20 and above 60 at once
CONTRADICTION = rule(
    "PL-DEAD-001",
    "{all: [{lt: [renal.crcl, 20 mL/min]}, {gt: [renal.crcl, 60 mL/min]}]}",
    "{card: {indicator: info, topic: level, summary: never}}",
    case("at 20", "{renal.crcl: 20 mL/min}", "{not_fired: [PL-DEAD-001]}")
    + case("at 19", "{renal.crcl: 19 mL/min}", "{not_fired: [PL-DEAD-001]}")
    + case("at 60", "{renal.crcl: 60 mL/min}", "{not_fired: [PL-DEAD-001]}")
    + case("at 61", "{renal.crcl: 61 mL/min}", "{not_fired: [PL-DEAD-001]}"),
)
# below the plausible range: CrCl can never be negative (range [0, 250])
OUT_OF_RANGE = rule(
    "PL-DEAD-002",
    "{lt: [renal.crcl, 0 mL/min]}",
    "{card: {indicator: info, topic: level, summary: never}}",
    case("at 0", "{renal.crcl: 0 mL/min}", "{not_fired: [PL-DEAD-002]}")
    + case("just below", "{renal.crcl: -0.5 mL/min}", "{not_fired: [PL-DEAD-002]}"),
)
# a value that no rule ever derives
NEVER_DERIVED = rule(
    "PL-DEAD-003",
    "{eq: [tdm.below_target, true]}",
    "{card: {indicator: info, topic: level, summary: never}}",
    case("given directly", "{tdm.below_target: false}", "{not_fired: [PL-DEAD-003]}"),
)
DERIVES_FALSE = rule(
    "PL-DERIVE-001",
    "{present: renal.crcl}",
    "{derive: {tdm.below_target: false}}",
    case("derives", "{renal.crcl: 50 mL/min}", "{fired: [PL-DERIVE-001]}"),
)
# presence and absence of the same fact
PRESENT_AND_MISSING = rule(
    "PL-DEAD-004",
    "{all: [{missing: renal.crcl}, {eq: [renal.crcl_method, measured]}, {present: renal.crcl}]}",
    "{card: {indicator: info, topic: level, summary: never}}",
    case("never", "{renal.crcl_method: measured}", "{not_fired: [PL-DEAD-004]}"),
)
# the same finding as PL-WARN-001 written again with another threshold: a probable duplicate
WARN = rule(
    "PL-WARN-001",
    "{lt: [renal.crcl, 40 mL/min]}",
    "{card: {indicator: warning, topic: dose, summary: CrCl low}}",
    case("crcl 39", "{renal.crcl: 39 mL/min}", "{fired: [PL-WARN-001]}")
    + case("crcl 40", "{renal.crcl: 40 mL/min}", "{not_fired: [PL-WARN-001]}"),
)
WARN_AGAIN = rule(
    "PL-WARN-002",
    "{lt: [renal.crcl, 45 mL/min]}",
    "{card: {indicator: warning, topic: dose, summary: CrCl is low}}",
    case("crcl 44", "{renal.crcl: 44 mL/min}", "{fired: [PL-WARN-002]}")
    + case("crcl 45", "{renal.crcl: 45 mL/min}", "{not_fired: [PL-WARN-002]}"),
)
# the same facts and card on an exclusive range: a ladder, not a duplicate
WARN_HIGH = rule(
    "PL-WARN-003",
    "{gte: [renal.crcl, 45 mL/min]}",
    "{card: {indicator: warning, topic: dose, summary: CrCl is high}}",
    case("crcl 45", "{renal.crcl: 45 mL/min}", "{fired: [PL-WARN-003]}")
    + case("crcl 44", "{renal.crcl: 44 mL/min}", "{not_fired: [PL-WARN-003]}"),
)
