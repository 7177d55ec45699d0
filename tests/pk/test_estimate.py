"""estimate_exposure: intervals (seeded, with tolerances), dose table, fallbacks and bad input."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from cds.errors import EstimationError
from cds.pk import Covariates, DoseEvent, ExposureEstimate, Level, Regimen, estimate_exposure
from cds.pk.examples import (
    DAY50_DOSE,
    START,
    example_covariates,
    example_doses,
    example_levels,
    example_regimen,
)
from cds.pk.map import MapFit

MODEL = "imatinib-widmer2006"


def _estimate(*samples: tuple[float, float], **kwargs: Any) -> ExposureEstimate:
    options: dict[str, Any] = {"target_ng_ml": 1000.0, "proposal_threshold": 0.5, **kwargs}
    covariates = options.pop("covariates", example_covariates())
    regimen = options.pop("regimen", example_regimen())
    doses = options.pop("doses", example_doses())
    return estimate_exposure(MODEL, covariates, regimen, doses, example_levels(*samples), **options)


def _all_floats(value: Any) -> list[float]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [x for f in dataclasses.fields(value) for x in _all_floats(getattr(value, f.name))]
    if isinstance(value, tuple | list):
        return [x for item in value for x in _all_floats(item)]
    return [value] if isinstance(value, float) else []


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        pytest.param(((3, 1500),), (353, 620, 967), id="3h"),
        pytest.param(((24, 1500),), (772, 1038, 1374), id="24h"),
        pytest.param(((3, 1500), (24, 800)), (480, 670, 902), id="3h+24h"),
    ],
)
def test_laplace_trough_percentiles_match_pk_md(samples: tuple[tuple[float, float], ...], expected: tuple) -> None:
    """pk.md 4.1 Laplace 5/50/95 % (20 000 draws there and here); Monte-Carlo tolerance 2 %."""
    estimate = _estimate(*samples, n_draws=20000, seed=11)
    band = estimate.trough_interval
    assert band is not None
    assert (band.p05, band.p50, band.p95) == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        pytest.param(((3, 1500),), (252, 616, 1176), id="3h"),
        pytest.param(((23.98, 1500),), (501, 1079, 1824), id="23.98h"),
        pytest.param(((3, 1500), (23.98, 800)), (325, 697, 1203), id="two-levels"),
    ],
)
def test_sir_prediction_interval_matches_pk_md_peer_check(samples: tuple, expected: tuple) -> None:
    """pk.md 6.2 'our SIR + residual' column (Tucuxi's kind of interval); Monte-Carlo tolerance 4 %."""
    estimate = _estimate(*samples, n_draws=10000, seed=5, interval_method="sir")
    pi = estimate.level_prediction_interval
    assert pi is not None
    assert (pi.p05, pi.p50, pi.p95) == pytest.approx(expected, rel=0.04)


def test_prediction_interval_for_a_measured_level_is_wider_than_the_trough_interval() -> None:
    estimate = _estimate((3, 1500))
    band, pi = estimate.trough_interval, estimate.level_prediction_interval
    assert band is not None and pi is not None
    assert pi.p05 < band.p05 < band.p95 < pi.p95


def test_same_seed_same_result_and_other_seed_close() -> None:
    first, again, other = _estimate((3, 1500), seed=1), _estimate((3, 1500), seed=1), _estimate((3, 1500), seed=2)
    assert first == again
    assert first.trough_interval != other.trough_interval
    assert first.p_target == pytest.approx(other.p_target, abs=0.02)  # 4000 draws: SE of p ~ 0.003


def test_dose_table_rows_scale_and_propose_the_smallest_dose_reaching_the_threshold() -> None:
    estimate = _estimate((24, 1500), proposal_threshold=0.9)
    table = estimate.dose_table
    assert [(r.daily_mg, r.interval_h) for r in table] == [
        (100, 24), (200, 24), (300, 24), (400, 24), (600, 24), (800, 12)
    ]  # fmt: skip
    assert table[-1].dose_mg == 400
    medians = [r.cmin_median_ng_ml for r in table]
    assert medians == sorted(medians)
    assert [r.p_target for r in table] == sorted(r.p_target for r in table)
    assert table[1].cmin_median_ng_ml == pytest.approx(2 * table[0].cmin_median_ng_ml)  # linear kinetics
    reaching = [r.daily_mg for r in table if r.p_target >= 0.9]
    assert estimate.proposed_daily_mg == min(reaching)
    current = next(r for r in table if r.daily_mg == 400)
    assert current.p_target == pytest.approx(estimate.p_target, abs=1e-12)
    # the row's point estimate is the estimate's own trough (same parameters), not the draws' median
    assert current.cmin_pred_ng_ml == estimate.cmin_pred_ng_ml
    assert table[1].cmin_pred_ng_ml == pytest.approx(2 * table[0].cmin_pred_ng_ml)


def test_cap_removes_higher_doses_and_may_leave_no_proposal() -> None:
    estimate = _estimate((3, 1500), proposal_threshold=0.9, caps_max_daily_mg=400)
    assert max(r.daily_mg for r in estimate.dose_table) == 400
    assert estimate.proposed_daily_mg is None
    assert any("no ladder dose reaches" in w for w in estimate.warnings)


def test_without_levels_the_prediction_is_a_priori() -> None:
    estimate = estimate_exposure(
        MODEL, example_covariates(), Regimen(400, 24), target_ng_ml=1000, proposal_threshold=0.5
    )
    assert estimate.method == "apriori"
    assert estimate.map_fit is None and estimate.loglinear is None
    assert estimate.cmin_pred_ng_ml == pytest.approx(623.25, abs=0.01)  # pk.md 6.2, a priori
    band = estimate.trough_interval
    assert band is not None and band.p05 < estimate.cmin_pred_ng_ml < band.p95
    assert estimate.interval_method == "prior"


def test_regimen_since_without_doses_equals_explicit_doses() -> None:
    explicit = _estimate((3, 1500), doses=example_doses(50))
    implied = _estimate((3, 1500), doses=[])
    assert implied.cmin_pred_ng_ml == pytest.approx(explicit.cmin_pred_ng_ml, rel=1e-9)


def test_steady_state_before_recorded_doses() -> None:
    """Two recorded doses with no `since`: the patient is taken to be at steady state before them."""
    doses = [DoseEvent(DAY50_DOSE - timedelta(days=1), 400), DoseEvent(DAY50_DOSE, 400)]
    steady = _estimate((3, 1500), regimen=Regimen(400, 24), doses=doses)
    long_history = _estimate((3, 1500))
    assert steady.cmin_pred_ng_ml == pytest.approx(long_history.cmin_pred_ng_ml, rel=1e-6)
    assert not any("steady state" in w for w in steady.warnings)


def test_early_level_warns_not_at_steady_state() -> None:
    doses = [DoseEvent(START, 400)]
    levels = [Level(START + timedelta(hours=6), 900)]
    estimate = estimate_exposure(
        MODEL, example_covariates(), example_regimen(), doses, levels, target_ng_ml=1000, proposal_threshold=0.5
    )
    assert estimate.method == "map"
    assert any("not at steady state" in w for w in estimate.warnings)


def test_out_of_domain_covariates_are_flagged_not_refused() -> None:
    old = Covariates(sex="female", age_y=92, weight_kg=40, indication="GIST")
    estimate = _estimate((12, 900), covariates=old, target_ng_ml=1100)
    assert estimate.out_of_domain
    assert sum("outside the validity domain" in w for w in estimate.warnings) == 2


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(lambda: Level(DAY50_DOSE, 0.0), "level.ng_ml", id="zero-level"),
        pytest.param(lambda: Level(DAY50_DOSE, -5.0), "level.ng_ml", id="negative-level"),
        pytest.param(lambda: Level(datetime(2026, 1, 1), 100.0), "timezone-aware", id="naive-time"),
        pytest.param(lambda: Covariates("x", 50, 70, "CML"), "sex", id="sex"),
        pytest.param(lambda: Covariates("male", 50, 70, "ALL"), "indication", id="indication"),
        pytest.param(lambda: Regimen(0, 24), "regimen.dose_mg", id="zero-dose"),
        pytest.param(lambda: DoseEvent(DAY50_DOSE, math.nan), "dose.mg", id="nan-dose"),
    ],
)
def test_invalid_inputs_are_refused_with_the_field_named(build: Any, message: str) -> None:
    with pytest.raises(EstimationError, match=message):
        build()


def test_level_before_the_first_dose_is_refused() -> None:
    with pytest.raises(EstimationError, match=r"Invalid `levels\[0\].time`.*must be after the first dose"):
        estimate_exposure(
            MODEL, example_covariates(), example_regimen(), example_doses(),
            [Level(START - timedelta(hours=2), 500)], target_ng_ml=1000, proposal_threshold=0.5,
        )  # fmt: skip


def test_levels_without_any_dose_time_are_refused() -> None:
    with pytest.raises(EstimationError, match="give dose events or `regimen.since`"):
        estimate_exposure(
            MODEL, example_covariates(), Regimen(400, 24), [], example_levels((3, 1500)),
            target_ng_ml=1000, proposal_threshold=0.5,
        )  # fmt: skip


def test_level_after_now_is_refused() -> None:
    with pytest.raises(EstimationError, match="must not be after now"):
        _estimate((3, 1500), now=DAY50_DOSE)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("target_ng_ml", 0.0),
        ("proposal_threshold", 1.5),
        ("caps_max_daily_mg", -1.0),
        ("n_draws", 10),
        ("dose_ladder", [(400, 24), (800, 0)]),
    ],
)
def test_bad_estimator_arguments(option: str, value: Any) -> None:
    with pytest.raises(EstimationError, match=rf"Invalid `{option}"):
        _estimate((3, 1500), **{option: value})


def _failed_fit(*_: Any) -> MapFit:
    return MapFit((0.0, 0.0), ("CL", "V"), 16.6, 393.2, 0.609, 99.0, False, "ABNORMAL", 10, False, ((1, 0), (0, 1)))


@pytest.mark.parametrize(
    ("samples", "method", "cmin"),
    [
        pytest.param(((24, 900),), "measured-trough", 900.0, id="trough-sample"),
        pytest.param(((12, 900),), "loglinear", 900 * math.exp(0.041 * -12), id="loglinear"),
        pytest.param(((2, 900),), "apriori", 623.25, id="absorption-phase"),
    ],
)
def test_failed_map_falls_back(monkeypatch: pytest.MonkeyPatch, samples: tuple, method: str, cmin: float) -> None:
    monkeypatch.setattr("cds.pk.estimate.fit_map", _failed_fit)
    estimate = _estimate(*samples)
    assert estimate.method == method
    assert estimate.cmin_pred_ng_ml == pytest.approx(cmin, rel=1e-4)
    assert any("did not converge" in w for w in estimate.warnings)


@pytest.mark.parametrize("samples", [(), ((3, 1500),), ((0.2, 30000),), ((23.9, 5),), ((1, 10), (23, 40000))], ids=str)
def test_no_nan_anywhere(samples: tuple) -> None:
    estimate = _estimate(*samples, seed=3)
    values = _all_floats(estimate)
    assert values and all(np.isfinite(values))
    assert estimate.p_target is not None and 0 <= estimate.p_target <= 1


def test_datetimes_in_other_time_zones_are_equivalent() -> None:
    plus2 = timezone(timedelta(hours=2))
    cet = [Level(lv.time.astimezone(plus2), lv.ng_ml) for lv in example_levels((3, 1500))]
    assert cet[0].time.utcoffset() == timedelta(hours=2)
    a = _estimate((3, 1500))
    b = estimate_exposure(
        MODEL, example_covariates(), example_regimen(), example_doses(), cet, target_ng_ml=1000, proposal_threshold=0.5
    )
    assert a.cmin_pred_ng_ml == b.cmin_pred_ng_ml


@pytest.mark.parametrize("n", [1, 2, 7, 100, 4001])
def test_sorted_percentiles_equal_numpy_quantiles(n: int) -> None:
    from cds.pk.uncertainty import percentiles

    values = np.random.default_rng(n).lognormal(6.5, 0.4, size=n)
    got = percentiles(values)
    np.testing.assert_allclose([got.p05, got.p50, got.p95], np.quantile(values, [0.05, 0.5, 0.95]), rtol=1e-12)


def test_next_trough_at_steady_state_is_the_steady_state_trough() -> None:
    estimate = _estimate((3, 1500), doses=example_doses(50))
    assert estimate.next_dose_time == DAY50_DOSE + timedelta(days=1)
    assert estimate.cmin_next_ng_ml == pytest.approx(estimate.cmin_pred_ng_ml, rel=1e-9)


def test_next_trough_after_a_first_dose_follows_the_real_history() -> None:
    """One dose, level 6 h later: the next trough is a single-dose trough, far below steady state."""
    from cds.pk.predict import single_dose_conc

    levels = [Level(START + timedelta(hours=6), 900.0)]
    estimate = estimate_exposure(
        MODEL, example_covariates(), example_regimen(), [DoseEvent(START, 400)], levels,
        target_ng_ml=1000, proposal_threshold=0.5,
    )  # fmt: skip
    assert estimate.next_dose_time == START + timedelta(hours=24)
    expected = float(single_dose_conc(400, estimate.cl_l_h, estimate.v_l, estimate.ka_per_h, 24.0))
    assert estimate.cmin_next_ng_ml == pytest.approx(expected, rel=1e-9)
    k = estimate.cl_l_h / estimate.v_l  # one dose vs steady state: accumulation factor 1 / (1 - e^-k tau)
    assert estimate.cmin_next_ng_ml < (1 - np.exp(-24 * k)) * estimate.cmin_pred_ng_ml * 1.01


def test_next_trough_assumes_the_regimen_continued_until_now() -> None:
    """Doses recorded up to day 3, `now` on day 5 at noon: days 4 and 5 are assumed taken."""
    from cds.pk.inputs import Regimen as Reg
    from cds.pk.inputs import build_history
    from cds.pk.predict import simulate

    recorded = [DoseEvent(START + timedelta(days=i), 400) for i in range(3)]
    levels = [Level(START + timedelta(days=2, hours=5), 1200.0)]
    now = START + timedelta(days=4, hours=4)
    estimate = estimate_exposure(
        MODEL, example_covariates(), example_regimen(), recorded, levels, target_ng_ml=1000,
        proposal_threshold=0.5, now=now,
    )  # fmt: skip
    assert estimate.next_dose_time == START + timedelta(days=5)
    full = [DoseEvent(START + timedelta(days=i), 400) for i in range(5)]
    history = build_history(Reg(400, 24, since=START), full, [])
    expected = simulate(history, estimate.cl_l_h, estimate.v_l, estimate.ka_per_h, np.array([120.0]))[0, 0]
    assert estimate.cmin_next_ng_ml == pytest.approx(expected, rel=1e-9)


def test_a_priori_without_history_has_no_next_trough() -> None:
    estimate = estimate_exposure(
        MODEL, example_covariates(), Regimen(400, 24), target_ng_ml=1000, proposal_threshold=0.5
    )
    assert estimate.next_dose_time is None and estimate.cmin_next_ng_ml is None
