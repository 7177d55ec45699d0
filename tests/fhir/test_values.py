"""The value reader: strings with comparators, digit groups and decimal commas; what stays unreadable."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds.fhir.element import Element
from cds.fhir.request_text import escape_markdown
from cds.fhir.values import (
    ObservedValue,
    TextError,
    Unreadable,
    parse_value_text,
    read_value,
)
from tests.fhir.helpers import NOW, clone, example, find, record_of


@pytest.mark.parametrize(
    ("text", "readings", "side", "unit"),
    [
        ("<0.10", (0.1,), "below", None),
        ("< 0.10", (0.1,), "below", None),
        ("<=0.1", (0.1,), "at-or-below", None),
        ("≤0.1", (0.1,), "at-or-below", None),
        ("> 3000", (3000.0,), "above", None),
        (">=3000 ng/mL", (3000.0,), "at-or-above", "ng/mL"),
        ("0,8", (0.8,), None, None),
        ("12,50", (12.5,), None, None),
        ("0,125", (0.125,), None, None),  # digit groups never start with 0
        ("1,2345", (1.2345,), None, None),
        ("1,200", (1200.0, 1.2), None, None),  # ambiguous: thousands first, the other reading kept
        ("1,200 ng/mL", (1200.0, 1.2), None, "ng/mL"),
        ("1,200,000", (1200000.0,), None, None),
        ("1,200.5", (1200.5,), None, None),
        ("1 200", (1200.0,), None, None),
        ("1\u00a0200 ng/mL", (1200.0,), None, "ng/mL"),
        ("12 345,5", (12345.5,), None, None),
        ("1.200,5", (1200.5,), None, None),
        ("1.200.000", (1200000.0,), None, None),
        ("1.200", (1.2,), None, None),  # a dot is a decimal point
        ("0.8 10*9/L", (0.8,), None, "10*9/L"),
        ("0.8 x10^9/L", (0.8,), None, "x10^9/L"),
        ("60 mL/min/1.73m2", (60.0,), None, "mL/min/1.73m2"),
        (".5", (0.5,), None, None),
    ],
)
def test_strings_are_read(text: str, readings: tuple[float, ...], side: str | None, unit: str | None) -> None:
    parsed = parse_value_text(text)
    assert (parsed.readings, parsed.side, parsed.unit) == (readings, side, unit)


@pytest.mark.parametrize(
    "text", ["", "negative", "see comment", "BLQ", "<LLOQ", "not detected", "1,200 1,300", "approx. 5", "-", "<"]
)
def test_what_is_not_one_number_is_refused(text: str) -> None:
    with pytest.raises(TextError):
        parse_value_text(text)


@given(st.integers(1000, 10**9), st.sampled_from([",", " ", "\u00a0"]))
def test_grouped_integers_read_back(number: int, sep: str) -> None:
    text = f"{number:,}".replace(",", sep)
    assert parse_value_text(text).readings[0] == number


@given(st.integers(0, 999), st.integers(0, 99))
def test_decimal_commas_with_one_or_two_decimals_read_back(whole: int, hundredths: int) -> None:
    text = f"{whole},{hundredths:02d}"
    assert parse_value_text(text).readings == (float(f"{whole}.{hundredths:02d}"),)


@given(st.decimals(0, 10**6, places=3, allow_nan=False, allow_infinity=False), st.sampled_from(["<", "<=", ">", ">="]))
def test_plain_numbers_with_comparators_read_back(number: object, sign: str) -> None:
    text = f"{sign} {number}"
    parsed = parse_value_text(text)
    assert parsed.readings == (float(str(number)),)
    assert parsed.side == {"<": "below", "<=": "at-or-below", ">": "above", ">=": "at-or-above"}[sign]


def _read(obs: dict[str, object], hint: str | None = None) -> ObservedValue | Unreadable:
    return read_value(Element(obs, "Observation", []), hint)


def test_quantity_comparator_is_a_bound() -> None:
    found = _read({"valueQuantity": {"value": 50, "comparator": "<", "unit": "ng/mL"}})
    assert isinstance(found, ObservedValue)
    assert (found.value, found.side, found.unit) == (50.0, "below", "ng/mL")


def test_a_string_without_a_unit_takes_the_reference_range_unit_or_is_unreadable() -> None:
    found = _read({"valueString": "<0.10"}, "10*9/L")
    assert isinstance(found, ObservedValue) and found.unit == "10*9/L"
    assert isinstance(_read({"valueString": "<0.10"}), Unreadable)


@pytest.mark.parametrize(
    ("obs", "reason"),
    [
        ({"valueString": "see comment"}, "is not a number"),
        ({"valueQuantity": {"value": 3}}, "has no unit"),
        ({"valueQuantity": {"value": 3, "unit": "g", "comparator": "~"}}, "is not < <= >= >"),
        ({"valueCodeableConcept": {"text": "Below reference range"}}, "a coded answer"),
        ({"dataAbsentReason": {"coding": [{"code": "error"}]}}, "dataAbsentReason"),
        ({"valueRange": {"low": {"value": 1}}}, "valueRange where a number is expected"),
        ({}, "no value"),
    ],
)
def test_unreadable_values_say_why(obs: dict[str, object], reason: str) -> None:
    found = _read(obs)
    assert isinstance(found, Unreadable) and reason in found.reason and found.flag is None


def test_interpretation_is_the_fallback_when_no_value_can_be_read() -> None:
    flag = {"interpretation": [{"coding": [{"code": "LL"}]}]}
    found = _read({**flag})
    assert isinstance(found, Unreadable) and found.flag == "LL"
    assert "flagged LL (critically low) but no readable value" in found.describe()
    assert isinstance(_read({**flag, "valueQuantity": {"value": 0.3, "unit": "10*9/L"}}), ObservedValue)


def test_request_text_is_inert_in_markdown() -> None:
    assert escape_markdown("a <b>x</b>\n| *y* [z](u)") == "a \\<b\\>x\\</b\\> \\| \\*y\\* \\[z\\](u)"
    # headings, images and the bare URLs GFM links by itself are shown as text
    assert escape_markdown("# a ![i](u) https://e.x www.e.x") == "\\# a \\!\\[i\\](u) https\\://e.x www\\.e.x"


# --- through the whole mapper: a value written any of these ways is read as that value ------------------

NEUTRO = example("patient-view-neutropenia.json")
SIGNS = {"": None, "<": "below", "<=": "at-or-below", ">": "above", ">=": "at-or-above"}


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 9999).map(lambda n: n / 100),
    st.sampled_from(sorted(SIGNS)),
    st.sampled_from(["", " "]),
    st.sampled_from(["dot", "comma"]),
    st.sampled_from(["", " 10^9/L", " x10^9/L", " 10*9/L"]),
)
def test_an_anc_string_reads_as_its_number_and_side(value: float, sign: str, gap: str, decimal: str, unit: str) -> None:
    number = f"{value:.2f}" if decimal == "dot" else f"{value:.2f}".replace(".", ",")
    body = clone(NEUTRO)
    anc = find(body, "Observation", "lab-anc")
    anc.pop("valueQuantity")
    anc["valueString"] = f"{sign}{gap}{number}{unit}"
    anc["referenceRange"] = [{"high": {"value": 7.5, "unit": "10*9/L"}}]
    facts = record_of(body).facts
    assert facts["heme.anc"].value == value
    side = facts.get("heme.anc_censored")
    assert (side.value if side else None) == SIGNS[sign]


@pytest.mark.parametrize(
    ("rule", "want"),
    [("thousands", (1200.0, 1.2)), ("decimal", (1.2, 1200.0))],
)
def test_the_comma_rule_orders_the_readings_of_1200(rule: str, want: tuple[float, float]) -> None:
    parsed = parse_value_text("1,200", rule)
    assert parsed.readings == want and parsed.ambiguous
    assert not parse_value_text("1,200,000", rule).ambiguous


def test_the_unreadable_comma_rule_reads_neither() -> None:
    found = read_value(Element({"valueString": "1,200 ng/mL"}, "Observation", []), None, "unreadable")
    assert isinstance(found, Unreadable) and "ambiguous (1200 or 1.2" in found.reason
    plain = read_value(Element({"valueString": "1,25 ng/mL"}, "Observation", []), None, "unreadable")
    assert isinstance(plain, ObservedValue) and plain.value == 1.25  # not ambiguous: a decimal comma


def test_a_site_with_decimal_commas_reads_a_level_of_1200_as_1_2(tmp_path: Path) -> None:
    from cds.fhir import extract_record, parse_request
    from cds.fhir.settings import RULES_DIR, load_settings

    text = (RULES_DIR / "mapping.yaml").read_text(encoding="utf-8")
    path = tmp_path / "mapping.yaml"
    path.write_text(text.replace("comma_before_three_digits: thousands", "comma_before_three_digits: decimal"))
    body = clone(example("patient-view-level-string-thousands.json"))
    record = extract_record(parse_request(body), now=NOW, settings=load_settings(path))
    assert record.facts["level.conc"].value == 1.2
    assert record_of(body).facts["level.conc"].value == 1200.0
