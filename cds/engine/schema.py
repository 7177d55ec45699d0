"""JSON Schema of a rule file: the single definition of its structure.

The linter validates every file against it (diagnostic E002) and `imatinib-cds rules schema` exports it
so editors can complete and check rule files. Meaning (facts, units, thresholds) is checked by the linter.
"""

from __future__ import annotations

from typing import Any

HOOKS = ("order-sign", "order-select", "patient-view")
EVIDENCE_LEVELS = ("label", "guideline", "study", "local-policy", "unverified")
COMPARATORS = ("eq", "ne", "lt", "lte", "gt", "gte")
CENSORED_SIDES = ("below", "above")  # `{censored: [fact, below]}`; `{censored: fact}` is either side

_TEXT = {"type": "string", "minLength": 1}
# The clinical problems a card can be about; the card builder shows one card per topic.
CARD_TOPICS = (
    "scope",  # outside the population the advice was validated in
    "missing-data",  # data the next decision needs is missing or cannot be read
    "dose",  # anything that sets, cuts, caps, withholds or checks the dose: the composer's one recommendation
    "interaction",  # an interacting drug (what to do about the drug itself; its dose effect is under "dose")
    "level",  # interpreting a measured or estimated imatinib level
    "monitoring",  # a trough level (or other test) is due or recommended
)
_DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
_RULE_ID = {"type": "string", "pattern": r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$"}
_FACT = {"type": "string", "pattern": r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"}
_SCALAR = {"type": ["string", "number", "boolean"]}
_PERSON = {
    "type": "object",
    "required": ["name", "role"],
    "properties": {"name": _TEXT, "role": _TEXT},
    "additionalProperties": False,
}


def _binary(op: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [op],
        "additionalProperties": False,
        "properties": {op: {"type": "array", "prefixItems": [_FACT, _SCALAR], "minItems": 2, "maxItems": 2}},
    }


def _condition() -> dict[str, Any]:
    ref = {"$ref": "#/$defs/condition"}
    variants: list[dict[str, Any]] = [_binary(op) for op in COMPARATORS]
    variants += [
        {
            "type": "object",
            "required": ["between"],
            "additionalProperties": False,
            "properties": {
                "between": {
                    "type": "array",
                    "prefixItems": [_FACT, _SCALAR, _SCALAR],
                    "minItems": 3,
                    "maxItems": 3,
                }
            },
        },
        {
            "type": "object",
            "required": ["in"],
            "additionalProperties": False,
            "properties": {
                "in": {
                    "type": "array",
                    "prefixItems": [_FACT, {"type": "array", "items": _TEXT, "minItems": 1}],
                    "minItems": 2,
                    "maxItems": 2,
                }
            },
        },
        {
            "type": "object",
            "required": ["present"],
            "additionalProperties": False,
            "properties": {"present": _FACT},
        },
        {
            "type": "object",
            "required": ["missing"],
            "additionalProperties": False,
            "properties": {"missing": _FACT},
        },
        {
            "type": "object",
            "required": ["censored"],
            "additionalProperties": False,
            "properties": {
                "censored": {
                    "oneOf": [
                        _FACT,
                        {
                            "type": "array",
                            "prefixItems": [_FACT, {"enum": list(CENSORED_SIDES)}],
                            "minItems": 2,
                            "maxItems": 2,
                        },
                    ]
                }
            },
        },
        {"type": "object", "required": ["not"], "additionalProperties": False, "properties": {"not": ref}},
    ]
    for combinator in ("all", "any"):
        variants.append(
            {
                "type": "object",
                "required": [combinator],
                "additionalProperties": False,
                "properties": {combinator: {"type": "array", "items": ref, "minItems": 1}},
            }
        )
    return {"oneOf": variants}


_EVIDENCE = {
    "type": "object",
    "required": ["citation", "level"],
    "additionalProperties": False,
    "properties": {
        "citation": _TEXT,
        "url": {"type": "string", "pattern": "^https?://"},
        "level": {"enum": list(EVIDENCE_LEVELS)},
        "section": _TEXT,
        "note": _TEXT,
    },
}

_CARD = {
    "type": "object",
    "required": ["indicator", "topic", "summary"],
    "additionalProperties": False,
    "properties": {
        "indicator": {"enum": ["info", "warning", "critical"]},
        "topic": {"enum": list(CARD_TOPICS)},
        "summary": _TEXT,
        "detail": _TEXT,
        "suggestions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["label", "action"],
                "additionalProperties": False,
                "properties": {
                    "label": _TEXT,
                    "action": {"enum": ["apply-dose", "order-level", "withhold", "none"]},
                },
            },
        },
    },
}

_DOSE = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {
        "withhold": {"const": True},
        "factor": {"type": "number", "exclusiveMinimum": 0, "maximum": 4},
        "max_daily_mg": {"type": "number", "exclusiveMinimum": 0},
        "set_daily_mg": {"type": "number", "exclusiveMinimum": 0},
        "step": {"type": "integer", "minimum": -3, "maximum": 3, "not": {"const": 0}},
        "of": _FACT,
        "max_of": _FACT,
        "reason": _TEXT,
    },
}

_DERIVE = {
    "type": "object",
    "minProperties": 1,
    "propertyNames": _FACT,
    "additionalProperties": {
        "oneOf": [
            _SCALAR,
            {
                "type": "object",
                "required": ["from"],
                "additionalProperties": False,
                "properties": {"from": _FACT},
            },
        ]
    },
}

_TEST = {
    "type": "object",
    "required": ["name", "expect"],
    "additionalProperties": False,
    "properties": {
        "name": _TEXT,
        "hook": {"enum": list(HOOKS)},
        "facts": {"type": "object", "propertyNames": _FACT, "additionalProperties": _SCALAR},
        "request": _TEXT,
        "expect": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {
                "fired": {"type": "array", "items": _RULE_ID},
                "not_fired": {"type": "array", "items": _RULE_ID},
                "dose": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "action": {"enum": ["withhold", "change", "keep", "none"]},
                        "daily_mg": {"type": "number"},
                        "interval_h": {"enum": [12, 24]},
                    },
                },
                "derived": {"type": "object", "propertyNames": _FACT, "additionalProperties": _SCALAR},
                "absent": {"type": "array", "items": _TEXT},
            },
        },
    },
    "oneOf": [{"required": ["facts"]}, {"required": ["request"]}],
}

_RULE = {
    "type": "object",
    "required": ["id", "title", "hooks", "evidence", "when", "then", "tests"],
    "additionalProperties": False,
    "properties": {
        "id": _RULE_ID,
        "title": _TEXT,
        "hooks": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "evidence": {"type": "array", "items": _EVIDENCE},
        "rationale": _TEXT,
        "audit_note": _TEXT,
        # for pharmacist and P&T reviewers (attribution to verify, label revision to cite): shown in the rule
        # catalogue and on the explanation page, never on a card
        "review_note": _TEXT,
        "when": {"$ref": "#/$defs/condition"},
        "then": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {"card": _CARD, "dose": _DOSE, "derive": _DERIVE},
        },
        "tests": {"type": "array", "items": _TEST},
    },
}

_META = {
    "type": "object",
    "required": [
        "id",
        "version",
        "status",
        "title",
        "purpose",
        "owner",
        "authors",
        "clinical_reviewers",
        "approved",
        "effective_from",
        "review_by",
        "jurisdiction",
        "hit_policy",
        "change_log",
    ],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": r"^[a-z][a-z0-9-]*$"},
        "version": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
        "status": {"enum": ["draft", "active", "retired"]},
        "title": _TEXT,
        "purpose": _TEXT,
        "owner": _TEXT,
        "authors": {"type": "array", "items": _PERSON, "minItems": 1},
        "clinical_reviewers": {"type": "array", "items": _PERSON},
        "approved": {
            "type": "object",
            "required": ["by", "date"],
            "additionalProperties": False,
            "properties": {"by": _TEXT, "date": _DATE},
        },
        "effective_from": _DATE,
        "review_by": _DATE,
        "jurisdiction": _TEXT,
        "hit_policy": {"enum": ["first", "collect"]},
        "retired_ids": {"type": "array", "items": _RULE_ID},
        "change_log": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["version", "date", "change"],
                "additionalProperties": False,
                "properties": {
                    "version": _TEXT,
                    "date": _DATE,
                    "change": _TEXT,
                    "why": _TEXT,
                    "approver": _TEXT,
                },
            },
        },
    },
}


def rule_file_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://imatinib-cds.example/schemas/rule-file.json",
        "title": "imatinib-cds rule file",
        "type": "object",
        "required": ["ruleset", "rules"],
        "additionalProperties": False,
        "properties": {"ruleset": _META, "rules": {"type": "array", "items": _RULE, "minItems": 1}},
        "$defs": {"condition": _condition()},
    }
