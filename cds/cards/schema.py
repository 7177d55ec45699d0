"""JSON Schemas for CDS Hooks 2.0 requests and responses, written from the specification.

Stricter than the specification where it says SHALL NOT: no null, no empty string, array or object (the
response's `cards` may be empty); summary at most 139 characters; `selectionBehavior` whenever there are
suggestions; `display` on every override reason; uuids on cards and suggestions (we always send them).
"""

from __future__ import annotations

from typing import Any

_TEXT = {"type": "string", "minLength": 1}
_URL = {"type": "string", "pattern": "^https?://"}
_UUID = {"type": "string", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}
_RESOURCE = {"type": "object", "required": ["resourceType"], "properties": {"resourceType": _TEXT}}


def _coding(display_required: bool) -> dict[str, Any]:
    required = ["system", "code", "display"] if display_required else ["system", "code"]
    return {
        "type": "object",
        "required": required,
        "additionalProperties": False,
        "properties": {"system": _TEXT, "code": _TEXT, "display": _TEXT},
    }


_ACTION = {
    "type": "object",
    "required": ["type", "description"],
    "additionalProperties": False,
    "properties": {
        "type": {"enum": ["create", "update", "delete"]},
        "description": _TEXT,
        "resource": _RESOURCE,
        "resourceId": {"type": "string", "pattern": "^[A-Za-z]+/[A-Za-z0-9.-]{1,64}$"},
    },
    "allOf": [
        {"if": {"properties": {"type": {"enum": ["create", "update"]}}}, "then": {"required": ["resource"]}},
        {"if": {"properties": {"type": {"const": "delete"}}}, "then": {"required": ["resourceId"]}},
    ],
}

_CARD = {
    "type": "object",
    "required": ["uuid", "summary", "indicator", "source"],
    "additionalProperties": False,
    "properties": {
        "uuid": _UUID,
        "summary": {"type": "string", "minLength": 1, "maxLength": 139},
        "detail": _TEXT,
        "indicator": {"enum": ["info", "warning", "critical"]},
        "source": {
            "type": "object",
            "required": ["label"],
            "additionalProperties": False,
            "properties": {"label": _TEXT, "url": _URL, "icon": _URL, "topic": _coding(False)},
        },
        "suggestions": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["label", "uuid"],
                "additionalProperties": False,
                "properties": {
                    "label": _TEXT,
                    "uuid": _UUID,
                    "isRecommended": {"type": "boolean"},
                    "actions": {"type": "array", "minItems": 1, "items": _ACTION},
                },
            },
        },
        "selectionBehavior": {"enum": ["at-most-one", "any"]},
        "overrideReasons": {"type": "array", "minItems": 1, "items": _coding(True)},
        "links": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["label", "url", "type"],
                "additionalProperties": False,
                "properties": {
                    "label": _TEXT,
                    "url": _URL,
                    "type": {"enum": ["absolute", "smart"]},
                    "appContext": _TEXT,
                    "autolaunchable": {"type": "boolean"},
                },
            },
        },
    },
    "dependentRequired": {"suggestions": ["selectionBehavior"]},
}


def response_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "CDS Hooks 2.0 service response (imatinib-cds)",
        "type": "object",
        "required": ["cards"],
        "additionalProperties": False,
        "properties": {
            "cards": {"type": "array", "items": _CARD},
            "systemActions": {"type": "array", "minItems": 1, "items": _ACTION},
        },
    }


def request_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "CDS Hooks 2.0 service request",
        "type": "object",
        "required": ["hook", "hookInstance", "context"],
        "properties": {
            "hook": _TEXT,
            "hookInstance": _TEXT,
            "fhirServer": _URL,
            "fhirAuthorization": {
                "type": "object",
                "required": ["access_token", "token_type", "expires_in", "scope", "subject"],
                "properties": {
                    "access_token": _TEXT,
                    "token_type": {"const": "Bearer"},
                    "expires_in": {"type": "integer"},
                    "scope": _TEXT,
                    "subject": _TEXT,
                    "patient": _TEXT,
                },
            },
            "context": {"type": "object"},
            "prefetch": {"type": "object", "additionalProperties": {"anyOf": [_RESOURCE, {"type": "null"}]}},
        },
        "dependentRequired": {"fhirAuthorization": ["fhirServer"]},
    }


def feedback_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "CDS Hooks 2.0 feedback",
        "type": "object",
        "required": ["feedback"],
        "properties": {
            "feedback": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["card", "outcome", "outcomeTimestamp"],
                    "properties": {
                        "card": _TEXT,
                        "outcome": {"enum": ["accepted", "overridden"]},
                        "acceptedSuggestions": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": "object", "required": ["id"], "properties": {"id": _TEXT}},
                        },
                        "overrideReason": {
                            "type": "object",
                            "minProperties": 1,
                            "properties": {"reason": _coding(False), "userComment": _TEXT},
                        },
                        "outcomeTimestamp": {"type": "string", "format": "date-time"},
                    },
                    "if": {"properties": {"outcome": {"const": "accepted"}}},
                    "then": {"required": ["acceptedSuggestions"]},
                },
            }
        },
    }
