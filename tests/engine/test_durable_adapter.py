"""The durable_rules facade: errors surface as EngineError, a poisoned host is rebuilt, threads are safe."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from cds.engine.compile import CATCH_ALL, chunk_rules, compile_chunks, memberships
from cds.engine.durable_adapter import DurableMatcher
from cds.engine.evaluate import RuleEngine
from cds.errors import EngineError, InvalidInput


@pytest.fixture()
def matcher(rule_set: Any) -> DurableMatcher:
    rules = [r for r in rule_set.rules if "order-sign" in r.hooks and rule_set.stage_of[r.id] == 0]
    return DurableMatcher("test-adapter", compile_chunks(rules, memberships(rules)))


def test_engine_error_poisons_then_the_host_is_rebuilt(matcher: DurableMatcher) -> None:
    # the engine's JSON parser rejects exponent notation without a dot (error 204)
    with pytest.raises(EngineError, match="rule engine failed"):
        matcher.match({"renal": {"crcl": 1e-07}})
    assert matcher.match({"renal": {"crcl": 30.0}}) == ["IMA-RENAL-002"]


def test_an_unexpected_action_message_poisons_then_the_host_is_rebuilt(
    matcher: DurableMatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cds.engine import durable_adapter

    class Garbled:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def start_action_for_state(self, handle: int, offset: int) -> tuple[str, str]:
            state, _ = real.start_action_for_state(handle, offset)
            return state, '{"not-a-rule":{"m":{}}}'

    real = durable_adapter._engine
    monkeypatch.setattr(durable_adapter, "_engine", Garbled())
    with pytest.raises(EngineError, match="unknown rule 'not-a-rule'"):
        matcher.match({"renal": {"crcl": 30.0}})
    monkeypatch.undo()
    assert matcher.match({"renal": {"crcl": 30.0}}) == ["IMA-RENAL-002"]


def test_a_document_no_rule_handles_is_an_error_and_its_session_is_never_touched(rule_set: Any) -> None:
    """Without the catch-all, durable reports 'not handled'; deleting that session would segfault."""
    rules = [r for r in rule_set.rules if r.id == "IMA-RENAL-002"]
    (chunk,) = compile_chunks(rules, memberships(rules))
    del chunk[CATCH_ALL]
    matcher = DurableMatcher("test-unhandled", [chunk])
    with pytest.raises(EngineError, match="code 1"):
        matcher.match({"renal": {"crcl": 90.0}})
    assert matcher.match({"renal": {"crcl": 30.0}}) == ["IMA-RENAL-002"]


def test_tiny_numbers_are_quantised_before_the_engine(durable_engine: RuleEngine) -> None:
    decision = durable_engine.evaluate({"renal.crcl": 0.00001, "regimen.daily_mg": 400.0}, "order-sign")
    assert decision.facts["renal.crcl"] == 0.0
    assert "IMA-RENAL-003" in decision.fired_ids


@pytest.mark.parametrize(
    ("facts", "path"),
    [
        ({"renal.kidney": 3.0}, "facts.renal.kidney"),
        ({"renal.crcl": 900.0}, "facts.renal.crcl"),
        ({"renal.crcl": "35"}, "facts.renal.crcl"),
        ({"regimen.new_start": "yes"}, "facts.regimen.new_start"),
        ({"renal.crcl": float("nan")}, "facts.renal.crcl"),
        ({"dx.indication": "ALL"}, "facts.dx.indication"),
    ],
)
def test_facts_are_checked_before_evaluation(durable_engine: RuleEngine, facts: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidInput) as info:
        durable_engine.evaluate(facts, "order-sign")
    assert info.value.path == path


def test_unknown_hook_is_invalid_input(durable_engine: RuleEngine) -> None:
    with pytest.raises(InvalidInput, match="hook"):
        durable_engine.evaluate({}, "medication-prescribe")


def test_concurrent_callers_get_the_same_answers_as_one(
    durable_engine: RuleEngine, reference_engine: RuleEngine
) -> None:
    documents = [
        {"renal.crcl": float(v), "regimen.daily_mg": 800.0, "regimen.new_start": v % 2 == 0} for v in range(0, 120)
    ]
    expected = [reference_engine.evaluate(d, "order-sign").fired_ids for d in documents]
    failures: list[str] = []

    def worker() -> None:
        for _ in range(3):
            for doc, want in zip(documents, expected, strict=True):
                got = durable_engine.evaluate(doc, "order-sign").fired_ids
                if got != want:
                    failures.append(f"{doc}: {got} != {want}")

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_a_ruleset_the_engine_cannot_build_names_its_rules(rule_set: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from durable import engine as durable_engine

    def refuse(self: Any, definitions: Any) -> None:
        raise Exception("Could not create ruleset, error code: 113")

    monkeypatch.setattr(durable_engine.Host, "register_rulesets", refuse)
    rules = [r for r in rule_set.rules if r.id == "IMA-RENAL-002"]
    with pytest.raises(EngineError, match=r"error code: 113.*IMA-RENAL-002.*derive an intermediate fact"):
        DurableMatcher("test-113", compile_chunks(rules, memberships(rules)))


def test_durable_state_is_deleted_after_every_evaluation(matcher: DurableMatcher) -> None:
    """A ruleset holds at most 1,023 live sessions: more evaluations than that only work if each is deleted."""
    from cds.engine import durable_adapter

    for v in range(1100):
        matcher.match({"renal": {"crcl": float(v % 200)}})
    last = f"{os.getpid()}-{next(durable_adapter._SESSIONS) - 1}"
    with pytest.raises(Exception, match="309"):  # ERR_SID_NOT_FOUND: that session is gone
        matcher._host.get_state(matcher._names[-1], last)


def test_hits_of_concurrent_evaluations_never_mix(matcher: DurableMatcher) -> None:
    documents = [{"renal": {"crcl": float(v)}, "regimen": {"daily_mg": 400.0 + v}} for v in range(0, 150, 3)]
    expected = [matcher.match(d) for d in documents]
    assert len({tuple(e) for e in expected}) > 2  # the documents do fire different rules
    failures: list[str] = []

    def worker(offset: int) -> None:
        for i in range(len(documents) * 4):
            k = (i + offset) % len(documents)
            if (got := matcher.match(documents[k])) != expected[k]:
                failures.append(f"{documents[k]}: {got} != {expected[k]}")

    threads = [threading.Thread(target=worker, args=(n * 7,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_chunks_that_cannot_fire_are_not_asserted_and_see_only_their_facts(
    durable_engine: RuleEngine, reference_engine: RuleEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cds.engine import durable_adapter

    asserted: list[dict[str, Any]] = []
    real = durable_adapter.DurableMatcher._assert

    def spy(self: DurableMatcher, name: str, document: dict[str, Any]) -> list[str]:
        asserted.append(document)
        return list(real(self, name, document))

    monkeypatch.setattr(durable_adapter.DurableMatcher, "_assert", spy)
    facts = {"renal.crcl": 35.0, "regimen.daily_mg": 400.0, "hepatic.bilirubin_xuln": 1.0}
    decision = durable_engine.evaluate(facts, "order-sign")
    assert decision.fired_ids == reference_engine.evaluate(facts, "order-sign").fired_ids
    chunks = sum(len(chunk_rules(rules)) for rules, _ in durable_engine._plan["order-sign"])
    assert 0 < len(asserted) < chunks
    assert all(set(d) <= {"renal", "regimen", "hepatic", "_in"} for d in asserted)
    # not every chunk reads all three (comparisons on censorable facts arrive resolved under _in)
    assert any(set(d) - {"_in"} < {"renal", "regimen", "hepatic"} for d in asserted)
