"""Decoding a request body with bounds, so that hostile JSON is a 400 naming what is wrong, never a 500.

Python's json module recurses once per nesting level (10^5 levels: RecursionError), refuses integers of more
than 4,300 digits with a ValueError, and accepts ``\\ud800`` escapes that later cannot be encoded as UTF-8 (the
request digest, the audit log). The bounds are checked before or while decoding, not by catching what breaks
deeper down: nesting by a scan of the bytes (strings removed, brackets counted), number length in the
decoder's number hooks, lone surrogates by a search for surrogate escapes and, only when one is found, a walk
that names where it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import accumulate
from typing import Any

from cds.errors import InvalidInput

MAX_DEPTH = 64  # FHIR requests nest some 10-15 levels; every later stage walks the tree recursively
MAX_NUMBER_CHARS = 100  # far beyond any FHIR decimal (18 significant digits) or integer

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class _NumberTooLong(ValueError):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.chars = len(text)


def decode(raw: bytes) -> Any:
    """The JSON value of a body, or InvalidInput naming the rule it breaks (never the offending value)."""
    depth = nesting_depth(raw)
    if depth > MAX_DEPTH:
        raise InvalidInput("$", f"the body nests deeper than {MAX_DEPTH} levels of arrays and objects")
    try:
        value = json.loads(raw, parse_int=_bounded_int, parse_float=_bounded_float)
    except _NumberTooLong as exc:
        raise InvalidInput(
            "$", f"a number in the body has {exc.chars} characters (at most {MAX_NUMBER_CHARS})"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput("$", f"the body is not JSON ({_position(exc)})") from None
    except (ValueError, RecursionError):  # not expected after the checks above; still a 400, not a 500
        raise InvalidInput("$", "the body is not JSON that this service can read") from None
    if _SURROGATE_ESCAPE.search(raw):
        where = next(_lone_surrogates(value, ""), None)
        if where is not None:
            raise InvalidInput(where or "$", "a string contains an unpaired UTF-16 surrogate escape (\\uD800-\\uDFFF)")
    return value


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects, brackets inside strings not counted (C-speed for the usual
    body: strings are removed by a regular expression, the rest reduced to its brackets)."""
    # without any backslash no quote is escaped: every other piece between quotes is outside the strings
    outside = b"".join(raw.split(b'"')[0::2]) if b"\\" not in raw else _STRING.sub(b"", raw)
    brackets = outside.translate(None, _NOT_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _NumberTooLong(text)
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _NumberTooLong(text)
    return float(text)


def _position(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return "it is not UTF-8"


def _lone_surrogates(value: Any, path: str) -> Iterator[str]:
    """Paths of strings (keys or values) holding a surrogate that is not part of a pair."""
    if isinstance(value, str):
        if _has_lone_surrogate(value):
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            if _has_lone_surrogate(key):
                yield f"{path} (a key)".lstrip()
            else:
                yield from _lone_surrogates(item, f"{path}.{key}".lstrip("."))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _lone_surrogates(item, f"{path}[{i}]")


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
