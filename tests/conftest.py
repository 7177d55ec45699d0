from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cds.cards.topics import placement
from cds.engine.evaluate import RuleEngine
from cds.engine.ruleset import RuleSet, load_rules
from cds.pipeline import EXAMPLES_EVALUATION_TIME, Outcome

ROOT = Path(__file__).resolve().parent.parent


def examples_clock() -> datetime:
    """The service's clock in tests: the time fhir_examples/ are written for, so answers do not age."""
    return EXAMPLES_EVALUATION_TIME


RULES = ROOT / "rules"
POSTGRES_ENV = "IMATINIB_CDS_TEST_POSTGRES_URL"


@contextmanager
def postgres_schema(schema: str, backend: str, folder: Path) -> Iterator[str]:
    """An audit database URL: a SQLite file in ``folder``, or a fresh PostgreSQL schema of its own (dropped
    afterwards); PostgreSQL tests are skipped unless $IMATINIB_CDS_TEST_POSTGRES_URL is set (CI sets it)."""
    if backend == "sqlite":
        yield f"sqlite:///{folder}/audit.sqlite3"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (CI sets it)")
    from sqlalchemy import create_engine, text

    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(scope="session")
def rules_dir() -> Path:
    return RULES


@pytest.fixture(scope="session")
def rule_set() -> RuleSet:
    return load_rules(RULES)


@pytest.fixture(scope="session")
def durable_engine(rule_set: RuleSet) -> RuleEngine:
    return RuleEngine(rule_set)


@pytest.fixture(scope="session")
def reference_engine(rule_set: RuleSet) -> RuleEngine:
    return RuleEngine(rule_set, backend="reference")


def make_rules_root(tmp_path: Path, *rule_files: Path | tuple[str, str]) -> Path:
    """A throw-away rules root: the shipped vocabulary and policy plus the given rule files."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    shutil.copy(RULES / "facts.yaml", tmp_path / "facts.yaml")
    shutil.copy(RULES / "policy.yaml", tmp_path / "policy.yaml")
    (tmp_path / "imatinib").mkdir()
    for item in rule_files:
        if isinstance(item, Path):
            shutil.copy(item, tmp_path / "imatinib" / item.name)
        else:
            name, text = item
            (tmp_path / "imatinib" / name).write_text(text, encoding="utf-8")
    return tmp_path


def card_of_rule(outcome: Outcome, rule_id: str) -> dict[str, Any]:
    """The card that shows ``rule_id``'s finding: its topic's card, or the last card when that topic was folded
    into it (cards are per topic, not per rule)."""
    topic = placement(outcome.decision.cards, outcome.decision.dose)[rule_id]
    (card,) = [c for c in outcome.cards if c["source"]["topic"]["code"] == topic]
    return card


def dose_suggestion(card: dict[str, Any]) -> dict[str, Any]:
    """The card's one suggestion that rewrites or removes the drafts (a trough order beside it creates)."""
    (found,) = [s for s in card["suggestions"] if any(a["type"] in ("update", "delete") for a in s["actions"])]
    return found
