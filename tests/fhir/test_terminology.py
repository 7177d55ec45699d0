"""Terminology as data: value sets load, carry provenance, and match by code, prefix and name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds.errors import RuleError
from cds.fhir import default_terminology
from cds.fhir.terminology import Coding, Concept, load_terminology
from tests.fhir.helpers import ROOT, RXNORM

LABEL_NAMED = ["dexamethasone", "phenytoin", "carbamazepine", "rifampin", "rifabutin", "rifapentine", "phenobarbital"]


def _concept(system: str | None, code: str | None, display: str | None = None, text: str | None = None) -> Concept:
    return Concept((Coding(system, code, display),), text)


def test_every_member_says_where_it_comes_from() -> None:
    for value_set in default_terminology().value_sets.values():
        for member in value_set.members:
            assert member.status in ("V", "V1", "U", "local") and member.source, (value_set.name, member.name)


@pytest.mark.parametrize("name", [*LABEL_NAMED, "St John's wort"])
def test_label_named_inducers_are_strong(name: str) -> None:
    match = default_terminology()["cyp3a4-strong-inducers"].match(Concept((), f"{name} 300 MG Oral Tablet"))
    assert match is not None and match.member.name == name


def test_imatinib_codes_with_strengths() -> None:
    imatinib = default_terminology()["imatinib"]
    for code, strength in (("403878", 100), ("403879", 400), ("404588", 100), ("404589", 400), ("282388", None)):
        match = imatinib.match(_concept(RXNORM, code))
        assert match is not None and match.by == "code" and match.member.strength_mg == strength
    for atc in ("L01EA01", "L01XE01"):
        assert imatinib.match(_concept("http://www.whocc.no/atc", atc)) is not None
    assert imatinib.match(_concept("http://hl7.org/fhir/sid/ndc", "0078-0401-34")) is not None


def test_name_fallback_and_topical_forms() -> None:
    terms = default_terminology()
    by_name = terms["cyp3a4-strong-inducers"].match(_concept(RXNORM, "198202", "rifampin 300 MG Oral Capsule"))
    assert by_name is not None and by_name.by == "name"
    assert terms["topical-forms"].match(Concept((), "ketoconazole 2% shampoo")) is not None
    assert terms["topical-forms"].match(Concept((), "ketoconazole 200 MG Oral Tablet")) is None
    assert terms["cyp3a4-strong-inhibitors"].match(Concept((), "imatinib")) is None


def test_lab_names_match_only_results_sent_as_text() -> None:
    """match_names: uncoded - "AST (SGOT)" without a code is AST; a coded AST/ALT ratio is not, by its name."""
    ast = default_terminology()["ast"]
    assert ast.match(Concept((), "AST (SGOT)")) is not None
    assert ast.match(Concept((), "Aspartate aminotransferase")) is not None
    ratio = "Aspartate aminotransferase/Alanine aminotransferase [Enzymatic activity ratio] in Serum or Plasma"
    assert ast.match(_concept("http://loinc.org", "16325-3", ratio)) is None
    assert ast.match(Concept((), "Last dose")) is None
    assert default_terminology()["alt"].match(Concept((), "ALT (SGPT)")) is not None


def test_match_names_takes_true_false_or_uncoded(tmp_path: Path) -> None:
    (tmp_path / "systems.yaml").write_text("systems: {}\n")
    (tmp_path / "labs.yaml").write_text("value_sets:\n  x:\n    match_names: sometimes\n    members: []\n")
    with pytest.raises(RuleError, match="match_names is true, false or 'uncoded'"):
        load_terminology(tmp_path)


def test_icd10_prefixes() -> None:
    terms = default_terminology()
    icd = "http://hl7.org/fhir/sid/icd-10-cm"
    assert terms["cml"].match(_concept(icd, "C92.10")) is not None
    assert terms["cml"].match(_concept(icd, "C9212")) is not None
    assert terms["gist"].match(_concept(icd, "C49.A2")) is not None
    assert terms["cml"].match(_concept(icd, "C92.00")) is None


def test_only_parse_imports_fhir_resources_and_only_r4b() -> None:
    for path in (ROOT / "cds").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fhir.resources"):
                assert path == ROOT / "cds" / "fhir" / "parse.py", path
                assert (node.module or "").startswith("fhir.resources.R4B."), node.module


def test_value_set_names_are_citable() -> None:
    names = set(default_terminology().value_sets)
    assert {"cyp3a4-strong-inducers", "cyp3a4-moderate-inducers", "cyp3a4-strong-inhibitors"} <= names
    assert all(n == n.lower() and " " not in n for n in names)
    assert Path(ROOT / "rules" / "terminology" / "README.md").exists()


NAMED_SETS = sorted(n for n, v in default_terminology().value_sets.items() if v.names is not None)
ALL_WORDS = sorted({w for n in NAMED_SETS for m in default_terminology()[n].members for w in m.words})


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(NAMED_SETS),
    st.lists(
        st.one_of(
            st.sampled_from(ALL_WORDS).map(lambda w: w.upper() if len(w) % 2 else w.title()),
            st.text(alphabet="abc -/'(),.\nİıſK", max_size=8),
        ),
        max_size=6,
    ),
    st.sampled_from(["", " ", "-", "x", "\n", "'"]),
)
def test_the_quick_no_name_check_never_hides_a_match(name: str, parts: list[str], glue: str) -> None:
    """Names are matched by one regex search; the cheaper check before it may only skip searches that fail."""
    value_set = default_terminology()[name]
    concept = Concept((), glue.join(parts) or None)
    assert value_set.names is not None
    found = value_set.names.search(concept.names_text)
    if value_set.words is not None and not value_set.words.may_occur(concept):
        assert found is None
    assert (value_set.match(concept) is not None) == (found is not None)
