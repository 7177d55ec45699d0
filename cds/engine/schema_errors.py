"""Schema errors (E002) in words: which field is wrong, at the line of its key, and what was probably meant."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jsonschema import ValidationError

from cds.engine.spelling import did_you_mean
from cds.engine.yamlpos import Located, Path_

_TYPES = {
    "string": "text",
    "object": "a block of fields",
    "array": "a list",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
}


def explain(error: ValidationError, located: Located, leaf_ops: Iterable[str]) -> list[tuple[tuple[int, int], str]]:
    """(line and column, message) for one schema error; an unexpected-fields error gives one per field."""
    path: Path_ = tuple(error.absolute_path)
    schema, instance = error.schema, error.instance
    if error.validator == "additionalProperties" and isinstance(instance, dict) and isinstance(schema, dict):
        return [_unexpected(located, path, key, instance, schema) for key in _extra_keys(instance, schema)]
    where = located.where_key(path)
    name = _name(path)
    if error.validator == "required" and isinstance(error.validator_value, list):
        if len(path) == 2 and path[0] == "rules" and isinstance(instance.get("id"), str):
            name = f"rule {instance['id']}"
        missing = [k for k in error.validator_value if k not in instance]
        return [(where, f"{name} needs `{key}:`") for key in missing]
    if error.validator == "oneOf" and "when" in path and isinstance(instance, dict):
        ops = list(leaf_ops) + ["all", "any", "not"]
        hint = "".join(did_you_mean(str(k), ops) for k in instance if k not in ops)
        return [(where, f"not a condition (expected one of {', '.join(ops)}){hint}")]
    if error.validator == "enum" and isinstance(error.validator_value, list):
        allowed = [str(v) for v in error.validator_value]
        hint = did_you_mean(str(instance), allowed) or f"; use one of {', '.join(allowed)}"
        return [(where, f"{name} cannot be `{instance}`{hint}")]
    if error.validator == "type" and instance is None:
        return [(where, f"{name} is empty")]
    if error.validator == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return [
            (where, f"{name} should be {' or '.join(_TYPES.get(str(t), str(t)) for t in wanted)}; got {instance!r}")
        ]
    return [(where, f"{'/'.join(map(str, path)) or 'file'}: {error.message}")]


def _extra_keys(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    allowed = schema.get("properties", {})
    return [str(k) for k in instance if k not in allowed]


def _unexpected(
    located: Located, path: Path_, key: str, instance: Mapping[str, Any], schema: Mapping[str, Any]
) -> tuple[tuple[int, int], str]:
    allowed: Mapping[str, Any] = schema.get("properties", {})
    message = f"`{key}` is not {_field_of(path)}"
    homes = [s for s in instance if s in allowed and key in (allowed[s].get("properties") or {})]
    if homes:
        line = located.where_key((*path, homes[0]))[0]
        message += f"; did you mean to indent it under `{homes[0]}:` at line {line}?"
    else:
        message += did_you_mean(key, allowed) or f"; the fields are {', '.join(allowed)}"
    return located.where_key((*path, key)), message


def _field_of(path: Path_) -> str:
    if not path:
        return "a top-level section (ruleset, rules)"
    if len(path) == 2 and path[0] == "rules":
        return "a rule field"
    if isinstance(path[-1], int):
        return f"a field of a `{path[-2]}` entry"
    return f"a field of `{path[-1]}:`"


def _name(path: Path_) -> str:
    if not path:
        return "the file"
    if isinstance(path[-1], int):
        return f"entry {path[-1] + 1} of `{path[-2]}`"
    return f"`{path[-1]}`"
