"""Condition status, CML phase and adverse-event severity, read the ways EHRs send them (clinical-rules.md §9.1).

Each reader says how it recognised what it read (a code, a display or free text, and on which element), so the
decision trace shows why a diagnosis counts, which phase was taken and where a grade came from. Names and
aliases live in rules/terminology/ (value sets); only the order in which they are tried lives here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cds.fhir.terminology import Concept, Match, Terminology, ValueSet

PHASE_SETS = (("chronic", "cml-phase-chronic"), ("accelerated", "cml-phase-accelerated"), ("blast", "cml-phase-blast"))
# Most severe first: "moderate to severe" is read as severe.
SEVERITY_SETS = (
    ("severe", "severity-severe", "severity_severe_grade"),
    ("moderate", "severity-moderate", "severity_moderate_grade"),
    ("mild", "severity-mild", "severity_mild_grade"),
)
_GRADE_TEXT = re.compile(r"\bgrade\s*([0-5])\b", re.IGNORECASE)


@dataclass(frozen=True)
class Labelled:
    """A concept and the element it came from, e.g. ('Condition.stage.summary', concept)."""

    element: str
    concept: Concept | None


@dataclass(frozen=True)
class Found:
    value: str
    how: str  # e.g. "code on Condition.stage.summary", "text of Condition.code"


@dataclass(frozen=True)
class Grade:
    grade: int
    how: str


def how_matched(match: Match, concept: Concept, value_set: ValueSet, element: str) -> str:
    """'code on X', 'display of X' or 'text of X': what the value set recognised in the concept."""
    if match.by == "code":
        return f"code on {element}"
    text = concept.text or ""
    if value_set.names is not None and value_set.names.search(text):
        return f"text of {element}"
    return f"display of {element}"


def first_match(value_set: ValueSet, concepts: Iterable[Labelled]) -> str | None:
    """How the first concept the value set recognises was matched; codes anywhere beat names anywhere."""
    found = [
        how_matched(match, labelled.concept, value_set, labelled.element)
        for labelled in concepts
        if labelled.concept is not None and (match := value_set.match(labelled.concept)) is not None
    ]
    return min(found, key=lambda how: not how.startswith("code"), default=None)  # min keeps the first of equals


def status_concept(concept: Concept | None) -> Concept | None:
    """A status CodeableConcept whose bare codes (no system) also count as text, as some EHRs send them."""
    if concept is None:
        return None
    bare = [c.code for c in concept.codings if c.code and not c.system]
    if not bare:
        return concept
    return Concept(concept.codings, "\n".join(t for t in (concept.text, *bare) if t))


def diagnosis_ends(
    terms: Terminology, clinical_status: Concept | None, verification_status: Concept | None
) -> str | None:
    """Why a Condition no longer stands (resolved/inactive, refuted/entered-in-error), or None when it stands.

    Active, recurrence, relapse and remission keep the diagnosis: remission is the treatment working."""
    status = Labelled("Condition.clinicalStatus", status_concept(clinical_status))
    ended = first_match(terms["condition-ended"], [status])
    if ended is not None:
        return f"clinical status resolved or inactive ({ended})"
    verification = Labelled("Condition.verificationStatus", status_concept(verification_status))
    refuted = first_match(terms["condition-unconfirmed"], [verification])
    if refuted is not None:
        return f"verification refuted or entered in error ({refuted})"
    return None


def cml_phase(
    terms: Terminology,
    extra_codes: Mapping[tuple[str, str], str],
    extra_words: Mapping[str, str],
    concepts: Sequence[Labelled],
) -> Found | None:
    """The CML phase the concepts name: a code first (value sets, then the codes rules/mapping.yaml configures),
    then a display or text (value-set names and aliases, then the configured words).

    Two different phases at the same level (e.g. text naming both chronic and blast phase) give 'conflicting':
    the safest reading is that the phase is not known."""
    hits = _phase_hits(terms, concepts)
    coded = [(phase, how) for phase, how in hits if how.startswith("code")]
    coded += [
        (phase, f"configured code on {c.element}")
        for c in concepts
        for coding in (c.concept.codings if c.concept else ())
        if (phase := extra_codes.get((coding.system or "", coding.code or "")))
    ]
    named = [(phase, how) for phase, how in hits if not how.startswith("code")]
    named += [
        (phase, f"configured words in {c.element}")
        for c in concepts
        if c.concept is not None
        for word, phase in extra_words.items()
        if word in c.concept.names_text.lower()
    ]
    for level in (coded, named):
        phases = sorted({phase for phase, _ in level})
        if len(phases) == 1:
            return Found(phases[0], level[0][1])
        if len(phases) > 1:
            return Found("conflicting", "; ".join(f"{phase} ({how})" for phase, how in level))
    return None


def _phase_hits(terms: Terminology, concepts: Sequence[Labelled]) -> list[tuple[str, str]]:
    hits = []
    for phase, set_name in PHASE_SETS:
        value_set = terms[set_name]
        for labelled in concepts:
            if labelled.concept is None:
                continue
            found = value_set.match(labelled.concept)
            if found is not None:
                hits.append((phase, how_matched(found, labelled.concept, value_set, labelled.element)))
    return hits


def grade_of(terms: Terminology, severity_grades: Mapping[str, int], concepts: Sequence[Labelled]) -> Grade | None:
    """A CTCAE grade: from a grade code, else 'Grade N' text, else a severity (mild/moderate/severe) read as the
    grade rules/policy.yaml assigns to it. The first concept that gives one wins."""
    for labelled in concepts:
        concept = labelled.concept
        if concept is None:
            continue
        found = terms["ctcae-grades"].match(concept)
        if found is not None and found.member.grade is not None:
            return Grade(found.member.grade, f"CTCAE grade, code on {labelled.element}")
        for text in (concept.text, *(c.display for c in concept.codings)):
            hit = _GRADE_TEXT.search(text or "")
            if hit:
                return Grade(int(hit.group(1)), f"CTCAE grade, text of {labelled.element}")
        severity = _severity(terms, severity_grades, labelled)
        if severity is not None:
            return severity
    return None


def _severity(terms: Terminology, severity_grades: Mapping[str, int], labelled: Labelled) -> Grade | None:
    assert labelled.concept is not None
    for word, set_name, parameter in SEVERITY_SETS:
        value_set = terms[set_name]
        found = value_set.match(labelled.concept)
        if found is None:
            continue
        how = how_matched(found, labelled.concept, value_set, labelled.element)
        grade = severity_grades.get(parameter)
        if grade is None:
            return None  # no policy for this severity: not a grade (the event is reported as ungraded)
        return Grade(grade, f"severity {word} ({how}) read as grade {grade} (policy.{parameter})")
    return None


def serious_grade(terms: Terminology, severity_grades: Mapping[str, int], seriousness: Concept | None) -> Grade | None:
    """AdverseEvent.seriousness 'serious' read as the grade policy.ae_serious_grade gives (non-serious: nothing)."""
    if seriousness is None:
        return None
    value_set = terms["ae-serious"]
    found = value_set.match(status_concept(seriousness))
    grade = severity_grades.get("ae_serious_grade")
    if found is None or found.member.name != "serious" or grade is None:
        return None
    how = how_matched(found, seriousness, value_set, "AdverseEvent.seriousness")
    return Grade(grade, f"seriousness serious ({how}) read as grade {grade} (policy.ae_serious_grade)")
