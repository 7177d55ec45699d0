"""pk_facts: exactly the pk.* names of rules/facts.yaml, in their units and ranges, never None or NaN."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.engine.vocabulary import load_vocabulary
from cds.pk import Regimen, estimate_exposure, pk_facts
from cds.pk.examples import example_covariates, example_doses, example_levels, example_regimen

FACTS_YAML = Path(__file__).resolve().parents[2] / "rules" / "facts.yaml"
ALL_PK_FACTS = {
    "pk.method",
    "pk.cmin_pred",
    "pk.cmin_p05",
    "pk.cmin_p95",
    "pk.p_target",
    "pk.loglinear_cmin",
    "pk.proposed_daily_mg",
    "pk.out_of_domain",
}


def _facts(*samples: tuple[float, float], **kwargs: object) -> dict[str, float | str | bool]:
    options = {"target_ng_ml": 1000.0, "proposal_threshold": 0.5, **kwargs}
    estimate = estimate_exposure(
        "imatinib-widmer2006", example_covariates(), example_regimen(), example_doses(), example_levels(*samples),
        **options,  # type: ignore[arg-type]
    )  # fmt: skip
    return pk_facts(estimate)


def test_vocabulary_declares_exactly_these_pk_facts() -> None:
    vocabulary = load_vocabulary(FACTS_YAML)
    assert {name for name in vocabulary.facts if name.startswith("pk.")} == ALL_PK_FACTS


@pytest.mark.parametrize("samples", [((3, 1500),), ((24, 1500), (3, 2000)), ((12, 300),)], ids=str)
def test_map_estimate_gives_every_fact_within_the_declared_range(samples: tuple) -> None:
    facts = _facts(*samples, proposal_threshold=0.2)
    assert set(facts) == ALL_PK_FACTS
    assert facts["pk.method"] == "map"
    vocabulary = load_vocabulary(FACTS_YAML)
    for name, value in facts.items():
        assert vocabulary[name].accepts(value), (name, value)
    assert facts["pk.cmin_p05"] <= facts["pk.cmin_pred"] <= facts["pk.cmin_p95"]  # type: ignore[operator]


def test_a_priori_facts_omit_the_log_linear_value() -> None:
    estimate = estimate_exposure(
        "imatinib-widmer2006", example_covariates(), Regimen(400, 24), target_ng_ml=1000, proposal_threshold=0.5
    )
    facts = pk_facts(estimate)
    assert facts["pk.method"] == "apriori"
    assert set(facts) == ALL_PK_FACTS - {"pk.loglinear_cmin"}
    assert facts["pk.out_of_domain"] is False


def test_no_proposal_means_no_proposal_fact() -> None:
    facts = _facts((3, 1500), proposal_threshold=0.99, caps_max_daily_mg=300)
    assert "pk.proposed_daily_mg" not in facts
    assert None not in facts.values()


def test_values_are_in_canonical_units_and_rounded() -> None:
    facts = _facts((3, 1500))
    assert facts["pk.cmin_pred"] == 630.0  # ng/mL, 0.1 resolution (Tucuxi 629.98)
    assert facts["pk.loglinear_cmin"] == 634.1  # pk.md 4.1: Wang on (3 h, 1500) gives 634
    assert facts["pk.proposed_daily_mg"] in (100.0, 200.0, 300.0, 400.0, 600.0, 800.0)
