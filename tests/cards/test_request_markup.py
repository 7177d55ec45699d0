"""Issue 15 item 2: markup in any FHIR text field must not survive into a card's summary, detail or labels.

Every example request is sent with each hostile text in every text field a card can show: CodeableConcept.text
and Coding.display (conditions, medications, observation codes), Dosage.text, note text, valueString and
valueQuantity.unit. EHRs render detail as GitHub-flavoured markdown with raw HTML; the summary is plain text.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from cds.pipeline import EXAMPLES_EVALUATION_TIME, Pipeline
from tests.conftest import ROOT
from tests.hostile import HOSTILE, HOSTILE_IDS

EXAMPLES = sorted((ROOT / "fhir_examples").glob("*.json"))
_ESCAPED = re.compile(r"\\.")  # a backslash-escaped character is shown as itself, never read as markup


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline()


def poisoned(node: Any, hostile: str) -> Any:
    """``node`` with ``hostile`` in every text field (appended, so that text matching still finds the
    concept; a valueString and a unit replaced, so the reading fails and the card quotes them)."""
    if isinstance(node, list):
        return [poisoned(item, hostile) for item in node]
    if not isinstance(node, dict):
        return node
    found = {key: poisoned(value, hostile) for key, value in node.items()}
    for key in ("text", "display"):
        if isinstance(found.get(key), str):
            found[key] = f"{found[key]} {hostile}"
    if "valueString" in found:
        found["valueString"] = hostile
    if isinstance(found.get("valueQuantity"), dict) and "unit" in found["valueQuantity"]:
        found["valueQuantity"] = {**found["valueQuantity"], "unit": hostile}
        found["valueQuantity"].pop("code", None)
    return found


def markup_left(text: str) -> list[str]:
    """What a markdown renderer with raw HTML would read as markup in ``text`` (escapes removed first)."""
    bare = _ESCAPED.sub("", text)
    found = [m for m in ("<script", "<img", "<https", "](", "://", "www.") if m in bare]
    found += [line for line in bare.splitlines() if line.lstrip().startswith("#")]
    return found


@pytest.mark.parametrize("hostile", HOSTILE, ids=HOSTILE_IDS)
def test_no_request_markup_reaches_a_card(pipeline: Pipeline, hostile: str) -> None:
    reached = 0
    for path in EXAMPLES:
        body = poisoned(json.loads(path.read_bytes()), hostile)
        outcome = pipeline.run(json.dumps(copy.deepcopy(body)).encode(), now=EXAMPLES_EVALUATION_TIME)
        for card in outcome.cards:
            summary, detail = card["summary"], card.get("detail", "")
            labels = [s["label"] for s in card.get("suggestions", [])]
            assert "\n" not in summary and not markup_left(summary), (path.name, summary)
            assert not markup_left(detail), (path.name, detail)
            assert not any(markup_left(label) for label in labels), (path.name, labels)
            reached += sum(word in summary + detail for word in ("alert", "evil", "STOP IMATINIB"))
    assert reached, "the hostile text never reached a card: the test would not see a leak"
