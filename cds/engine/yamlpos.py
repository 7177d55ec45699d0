"""YAML loading that remembers where every node came from, so diagnostics can say file:line:col."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


@dataclass
class Located:
    """Plain Python data plus the 1-based (line, col) of each node, keyed by its path from the root."""

    data: Any
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Path_) -> tuple[int, int]:
        """Position of ``path``, or of its nearest ancestor that has one."""
        while path and path not in self.positions:
            path = path[:-1]
        return self.positions.get(path, (1, 1))


# libyaml is about ten times faster than the pure-Python parser; both keep positions
SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    return yaml.load(text, Loader=SafeLoader)


class YamlSyntaxError(ValueError):
    def __init__(self, line: int, col: int, message: str) -> None:
        self.line, self.col = line, col
        super().__init__(message)


def load_located(text: str) -> Located:
    try:
        node = yaml.compose(text, Loader=SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlSyntaxError(line, col, str(exc.problem or exc)) from exc
    located = Located(None)
    if node is not None:
        located.data = _build(node, (), located.positions)
    return located


def _build(node: yaml.Node, path: Path_, positions: dict[Path_, tuple[int, int]]) -> Any:
    positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)  # keys are scalars in our files
            if key in result:
                raise YamlSyntaxError(
                    key_node.start_mark.line + 1, key_node.start_mark.column + 1, f"duplicate key {key!r}"
                )
            result[key] = _build(value_node, (*path, str(key)), positions)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(child, (*path, i), positions) for i, child in enumerate(node.value)]
    return _scalar(node)


_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _scalar(node: yaml.Node) -> Any:
    value = _CONSTRUCTOR.construct_object(node, deep=True)
    # dates stay ISO text so the JSON Schema and the digest see what the author wrote
    return value.isoformat() if isinstance(value, datetime.date) else value
