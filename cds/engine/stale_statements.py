"""Guideline-map statements that quote a policy value the policy no longer has (E023, a warning).

A recommendation's statement often quotes the value a rule uses ("CML trough target >= 1000 ng/mL
(policy.cml_trough_target)"). When the pharmacist changes the value in rules/policy.yaml, the statement goes
stale. A statement that names a parameter (``policy.cml_trough_target``) is flagged when it quotes a value in
that parameter's unit (any number, for a plain-number parameter such as ``policy.steady_state_min_days``) and
none of the values it quotes is the parameter's current value. Statements that quote a value without naming its
parameter are not checked: a number alone does not say which parameter it stands for (tablet strengths beside
a dose cap).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from cds.engine.diagnostics import Diagnostic
from cds.engine.policy import Policy, PolicyParameter
from cds.numbers import format_number
from cds.units import Quantity

E_STALE_STATEMENT = "E023"
_POLICY_NAME = re.compile(r"\bpolicy\.([a-z][a-z0-9_]*)")
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?:\s*([A-Za-z%][\w/%*]*))?")


def stale_statements(policy: Policy, recommendations: Iterable[Any], map_file: str) -> Iterable[Diagnostic]:
    for rec in recommendations:
        named = dict.fromkeys(n for n in _POLICY_NAME.findall(rec.statement) if n in policy.parameters)
        params = [policy.parameters[n] for n in named]
        quoted = _NUMBER.findall(_POLICY_NAME.sub("", rec.statement))
        for param in params:
            stale = _stale_quote(param, quoted, params)
            if stale:
                message = (
                    f"{rec.id} quotes {stale} but policy.{param.name} is now {_value_text(param)}: "
                    "update the statement (or the policy value)"
                )
                yield Diagnostic(map_file, rec.line, 5, E_STALE_STATEMENT, message, severity="warning")
                break


def _stale_quote(param: PolicyParameter, quoted: list[tuple[str, str]], params: list[PolicyParameter]) -> str:
    """The first number the statement quotes in ``param``'s unit that no parameter in play has, or ""."""
    value = param.value
    if isinstance(value, Quantity):
        in_unit = [(float(n), f"{n} {u}") for n, u in quoted if u == value.unit]
        current = [p.value.value for p in params if isinstance(p.value, Quantity) and p.value.unit == value.unit]
    elif isinstance(value, int | float) and not isinstance(value, bool):
        in_unit = [(float(n), n) for n, _ in quoted]
        current = [float(value)]
    else:
        return ""
    if any(math.isclose(v, c) for v, _ in in_unit for c in current):
        return ""  # the statement quotes a current value (it may quote others beside it)
    return in_unit[0][1] if in_unit else ""


def _value_text(param: PolicyParameter) -> str:
    value = param.value
    if isinstance(value, Quantity):
        return f"{format_number(value.value)} {value.unit}"
    return str(value)
