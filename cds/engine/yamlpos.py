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
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)  # where a mapping key is written

    def where_key(self, path: Path_) -> tuple[int, int]:
        """Position of the key that names ``path`` (``card:``), else of its value or nearest ancestor."""
        return self.key_positions.get(path) or self.where(path)

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
        raise YamlSyntaxError(line, col, explain_yaml_error(exc, text)) from exc
    located = Located(None)
    if node is not None:
        located.data = _build(node, (), located)
    return located


def _build(node: yaml.Node, path: Path_, located: Located) -> Any:
    located.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)  # keys are scalars in our files
            where = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in result:
                first = located.key_positions[(*path, str(key))][0]
                raise YamlSyntaxError(*where, f"`{key}` is written twice in the same block (first at line {first})")
            located.key_positions[(*path, str(key))] = where
            result[key] = _build(value_node, (*path, str(key)), located)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(child, (*path, i), located) for i, child in enumerate(node.value)]
    return _scalar(node)


def explain_yaml_error(exc: yaml.MarkedYAMLError, text: str) -> str:
    """The parser's complaint in words, for the line it points at (libyaml's and PyYAML's wording)."""
    problem, context = str(exc.problem or exc), str(exc.context or "")
    mark, opened = exc.problem_mark, exc.context_mark
    lines = text.splitlines()
    row = lines[mark.line] if mark and mark.line < len(lines) else ""
    since = f" (line {opened.line + 1})" if opened else ""
    if "\t" in row[: (mark.column + 1 if mark else 0)] or "tab" in problem:
        return "tabs are not allowed, use spaces to indent"
    if "expected key" in problem or "<block mapping start>" in problem or "'-' indicator" in problem:
        indent = len(row) - len(row.lstrip(" "))
        block = f" of the block at line {opened.line + 1}" if opened else " above it"
        return (
            f"`{row.strip()}` is indented {indent} space(s), unlike the other fields{block}: "
            "indent it exactly like them"
        )
    if problem.startswith("mapping values are not allowed"):
        return 'a second `: ` on this line: put the text in quotes ("a: b"), or start the new field on its own line'
    if "flow sequence" in context or "flow mapping" in context:
        start, end = ("[", "]") if "sequence" in context else ("{", "}")
        return f"the `{start}` opened{since} is not closed here: add `{end}`, or a comma between items"
    if "quoted scalar" in context:
        return f"the quote opened{since} is never closed"
    if "cannot start any token" in problem and mark is not None and mark.column < len(row):
        return f"`{row[mark.column]}` cannot start a value: put the text in quotes"
    return f"YAML cannot be parsed: {problem}" + (f" ({context}{since})" if context else "")


_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _scalar(node: yaml.Node) -> Any:
    value = _CONSTRUCTOR.construct_object(node, deep=True)
    # dates stay ISO text so the JSON Schema and the digest see what the author wrote
    return value.isoformat() if isinstance(value, datetime.date) else value
