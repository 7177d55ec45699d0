"""durable_rules behind a small, safe facade (the only module that imports durable).

The pattern follows the measured behaviour of durable-rules 2.0.28: the Host's background dispatcher is
disabled; one lock serialises calls into the C engine; ruleset names carry the rule-set digest so a reload
never collides with a registered name; every call's state is checked for a swallowed action exception;
after any engine error the Host is considered poisoned and rebuilt, never touched again for that session.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from durable import engine as durable_engine

from cds.engine.compile import CATCH_ALL, NOOP
from cds.errors import EngineError

Action = Callable[[Any], None]


class _QuietHost(durable_engine.Host):  # type: ignore[misc]
    def __init__(self, actions: dict[str, Action]) -> None:
        self._actions = actions
        super().__init__()

    def _run(self) -> None:
        """No dispatcher or timer threads: they segfault under concurrent callers."""

    def get_action(self, name: str) -> Action:
        return self._actions[name]


def _record_hit(rule_id: str) -> Action:
    def action(c: Any) -> None:
        hits = c.s.hits or []
        hits.append(rule_id)
        c.s.hits = hits

    return action


class DurableMatcher:
    """Evaluates documents against compiled chunks; returns the rule ids that matched, in priority order."""

    def __init__(self, name: str, chunks: Sequence[dict[str, Any]]) -> None:
        self._name = name
        self._chunks = [copy.deepcopy(chunk) for chunk in chunks]
        self._lock = threading.Lock()
        self._build()

    def _build(self) -> None:
        actions: dict[str, Action] = {NOOP: lambda c: None}
        for chunk in self._chunks:
            actions.update({body["run"]: _record_hit(rid) for rid, body in chunk.items() if rid != CATCH_ALL})
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
        with self._lock:
            if self._poisoned:
                self._build()
            hits: list[str] = []
            for name in self._names:
                hits += self._assert(name, document)
            return list(dict.fromkeys(hits))  # an $or fires once per matching branch

    def _assert(self, name: str, document: dict[str, Any]) -> list[str]:
        sid = uuid.uuid4().hex
        try:
            state = self._host.assert_fact(name, dict(document, t="ctx", sid=sid))
        except Exception as exc:  # the C engine raises plain Exceptions with error codes
            self._poisoned = True
            raise EngineError(f"rule engine failed on ruleset {name}: {exc}") from exc
        if "exception" in state:
            self._poisoned = True
            raise EngineError(f"rule action failed in ruleset {name}: {state['exception']}")
        self._host.delete_state(name, sid)  # only after success; the catch-all guarantees it was handled
        return [h for h in state.get("hits") or [] if isinstance(h, str)]
