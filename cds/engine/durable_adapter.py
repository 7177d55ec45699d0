"""durable_rules behind a small, safe facade (the only module that imports durable).

The pattern follows the measured behaviour of durable-rules 2.0.28: the Host's background dispatcher is
disabled; one lock serialises calls into the C engine; ruleset names carry the rule-set digest so a reload
never collides with a registered name; a catch-all rule makes every document handled; after any engine error
the Host is considered poisoned and rebuilt, never touched again for that session.

Rulesets are built and registered by the Host, but a document is not asserted through the Host's Python
driver: per fired rule that builds closures and state objects and round-trips the state and the matched
document through JSON, about half of an evaluation. ``_fire`` makes the engine calls the driver makes, in the
same order (assert_fact, start_action_for_state, then update_state and complete_and_start_action per fired
rule), and takes each fired rule's name from its action message instead of running a Python action.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from durable import engine as durable_engine

from cds.engine.compile import CATCH_ALL
from cds.errors import EngineError

_engine = durable_engine.durable_rules_engine  # the C extension the Host drives

# Session ids only need to be unique among one process's live sessions; a shared counter is, across
# matchers, reloads and threads, and costs far less than uuid4. The pid keeps ids distinct in logs.
_SESSIONS = itertools.count()


def _no_action(c: Any) -> None:
    """Registered for every rule; never run, since ``_fire`` reads fired rules from the engine's messages."""


class _QuietHost(durable_engine.Host):  # type: ignore[misc]
    def _run(self) -> None:
        """No dispatcher or timer threads: they segfault under concurrent callers."""

    def get_action(self, name: str) -> Any:
        return _no_action


def _fired_rule(message: str) -> str:
    """The rule name an action message starts with: ``{"<rule>":{"m":{...the matched document...}}}``.

    Rule names are rule ids (no quotes or escapes); the caller checks the name is one of the chunk's rules.
    """
    end = message.find('"', 2)
    if not message.startswith('{"') or end < 0:
        raise EngineError(f"unexpected action message from durable_rules: {message[:80]!r}")
    return message[2:end]


class DurableMatcher:
    """Evaluates documents against compiled chunks; returns the rule ids that matched, in priority order."""

    def __init__(self, name: str, chunks: Sequence[dict[str, Any]]) -> None:
        self._name = name
        self._chunks = [copy.deepcopy(chunk) for chunk in chunks]
        self._lock = threading.Lock()
        self._build()

    def _build(self) -> None:
        self._host = _QuietHost()
        self._names = [f"{self._name}/c{i}" for i in range(len(self._chunks))]
        # register_rulesets deletes the 'run' keys of what it is given: always hand it a copy
        try:
            self._host.register_rulesets({n: copy.deepcopy(c) for n, c in zip(self._names, self._chunks, strict=True)})
        except Exception as exc:  # e.g. error 113: the conditions expand beyond what the C engine can build
            rules = sorted(rid for chunk in self._chunks for rid in chunk if rid != CATCH_ALL)
            raise EngineError(
                f"durable_rules could not compile {self._name} ({exc}); simplify the conditions of {', '.join(rules)}"
                " (many `any` blocks multiply into alternatives: derive an intermediate fact instead)"
            ) from exc
        self._handles = [self._host.get_ruleset(n)._handle for n in self._names]
        self._rules = [frozenset(chunk) for chunk in self._chunks]
        self._poisoned = False

    def match(self, document: dict[str, Any]) -> list[str]:
        return self.match_chunks(dict.fromkeys(range(len(self._names)), document))

    def match_chunks(self, documents: Mapping[int, dict[str, Any]]) -> list[str]:
        """Assert each document into the chunk it is keyed by (chunks not given are not asserted)."""
        with self._lock:
            if self._poisoned:
                self._build()
            hits: list[str] = []
            for i, document in documents.items():
                hits += self._assert(i, document)
            return list(dict.fromkeys(hits))  # an $or fires once per matching branch

    def _assert(self, chunk: int, document: dict[str, Any]) -> list[str]:
        sid = f"{os.getpid()}-{next(_SESSIONS)}"
        fact = json.dumps(dict(document, t="ctx", sid=sid), ensure_ascii=False)
        try:
            hits = self._fire(chunk, fact)
        except Exception as exc:  # the C engine raises plain Exceptions with error codes
            self._poisoned = True
            raise EngineError(f"rule engine failed on ruleset {self._names[chunk]}: {exc}") from exc
        _engine.delete_state(self._handles[chunk], sid)  # only after success: never touch a failed session
        return hits

    def _fire(self, chunk: int, fact: str) -> list[str]:
        handle, rules = self._handles[chunk], self._rules[chunk]
        code, state_offset = _engine.assert_fact(handle, fact)
        if code != 0:  # 1 not handled (the catch-all rules it out), 2 already observed, 3 deferred
            raise EngineError(f"assert_fact returned code {code}")
        started = _engine.start_action_for_state(handle, state_offset)
        if started is None:
            raise EngineError("no rule fired, not even the catch-all")
        state, message = started
        hits = []
        while message is not None:
            rule = _fired_rule(message)
            if rule not in rules:
                raise EngineError(f"action message for unknown rule {rule!r}")
            if rule != CATCH_ALL:
                hits.append(rule)
            _engine.update_state(handle, state)  # unchanged, but the driver always writes it back: so do we
            message = _engine.complete_and_start_action(handle, state_offset)
        return hits
