"""durable_rules behind a small, safe facade (the only module that imports durable).

The pattern follows the measured behaviour of durable-rules 2.0.28: the Host's background dispatcher is
disabled; one lock serialises calls into the C engine; ruleset names carry the rule-set digest so a reload
never collides with a registered name; every call's state is checked for a swallowed action exception;
after any engine error the Host is considered poisoned and rebuilt, never touched again for that session.
"""

from __future__ import annotations

import copy
import itertools
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from durable import engine as durable_engine

from cds.engine.compile import CATCH_ALL, NOOP
from cds.errors import EngineError

Action = Callable[[Any], None]

# Session ids only need to be unique among one process's live sessions; a shared counter is, across
# matchers, reloads and threads, and costs far less than uuid4. The pid keeps ids distinct in logs.
_SESSIONS = itertools.count()


class _QuietHost(durable_engine.Host):  # type: ignore[misc]
    def __init__(self, actions: dict[str, Action]) -> None:
        self._actions = actions
        super().__init__()

    def _run(self) -> None:
        """No dispatcher or timer threads: they segfault under concurrent callers."""

    def get_action(self, name: str) -> Action:
        return self._actions[name]


def _record_hit(rule_id: str, hits: dict[str, list[str]]) -> Action:
    # Hits go to the list of the action's own session, not into durable state: writing state costs JSON
    # round trips per fired rule. An unknown sid raises, which durable records as a swallowed exception.
    def action(c: Any) -> None:
        hits[c.s.sid].append(rule_id)

    return action


class DurableMatcher:
    """Evaluates documents against compiled chunks; returns the rule ids that matched, in priority order."""

    def __init__(self, name: str, chunks: Sequence[dict[str, Any]]) -> None:
        self._name = name
        self._chunks = [copy.deepcopy(chunk) for chunk in chunks]
        self._lock = threading.Lock()
        self._hits: dict[str, list[str]] = {}  # sid -> rule ids, only while that sid's assert runs
        self._build()

    def _build(self) -> None:
        actions: dict[str, Action] = {NOOP: lambda c: None}
        for chunk in self._chunks:
            hits = {body["run"]: _record_hit(rid, self._hits) for rid, body in chunk.items() if rid != CATCH_ALL}
            actions.update(hits)
        self._host = _QuietHost(actions)
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
                hits += self._assert(self._names[i], document)
            return list(dict.fromkeys(hits))  # an $or fires once per matching branch

    def _assert(self, name: str, document: dict[str, Any]) -> list[str]:
        sid = f"{os.getpid()}-{next(_SESSIONS)}"
        hits = self._hits[sid] = []
        try:
            state = self._host.assert_fact(name, dict(document, t="ctx", sid=sid))
        except Exception as exc:  # the C engine raises plain Exceptions with error codes
            self._poisoned = True
            raise EngineError(f"rule engine failed on ruleset {name}: {exc}") from exc
        finally:
            del self._hits[sid]
        if "exception" in state:
            self._poisoned = True
            raise EngineError(f"rule action failed in ruleset {name}: {state['exception']}")
        self._host.delete_state(name, sid)  # only after success; the catch-all guarantees it was handled
        return hits
