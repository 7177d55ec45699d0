"""Model files: loading, validation of the format, covariate equations (pk.md 1.1 derived checks)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from cds.errors import EstimationError
from cds.pk.model import MODELS_DIR, load_model, typical_values
from cds.pk.predict import steady_state_conc

WIDMER = load_model("imatinib-widmer2006")

# pk.md 1.1 table: (male, gist) -> CL, V, k, t1/2, Css 3 h 400 q24, Cmin 400 q24, 600 q24, 200 q12
PK_MD_TABLE = [
    pytest.param(1.0, 0.0, (16.596, 393.2, 0.04221, 16.42, 1336, 623, 935, 828), id="male-CML"),
    pytest.param(0.0, 1.0, (12.004, 300.8, 0.03991, 17.37, 1820, 886, 1329, 1158), id="female-GIST"),
    pytest.param(0.5, 0.5, (14.300, 347.0, 0.04121, 16.82, 1541, 732, 1098, 966), id="unknown-half"),
]


@pytest.mark.parametrize(("male", "gist", "expected"), PK_MD_TABLE)
def test_widmer_typical_values_match_pk_md_table(male: float, gist: float, expected: tuple[float, ...]) -> None:
    """pk.md 1.1 derived checks, tolerance 0.5 % as stated there."""
    tv = typical_values(WIDMER, {"weight_kg": 70, "age_y": 50, "male": male, "gist": gist})
    k = tv.cl_l_h / tv.v_l
    args = (tv.cl_l_h, tv.v_l, tv.ka_per_h)
    got = (
        tv.cl_l_h,
        tv.v_l,
        k,
        math.log(2) / k,
        float(steady_state_conc(400, 24, *args, 3.0)),
        float(steady_state_conc(400, 24, *args, 24.0)),
        float(steady_state_conc(600, 24, *args, 24.0)),
        float(steady_state_conc(200, 12, *args, 12.0)),
    )
    assert got == pytest.approx(expected, rel=5e-3)


def test_widmer_omega_has_the_cl_v_correlation() -> None:
    omega = WIDMER.omega_matrix()
    assert omega[0, 0] == pytest.approx(0.356**2)
    assert omega[1, 1] == pytest.approx(0.629**2)
    assert omega[0, 1] == pytest.approx(0.798 * 0.356 * 0.629)
    assert WIDMER.sigma_prop == 0.3138


def test_petain_model_uses_the_same_format_with_power_effects_and_eta_on_ka() -> None:
    petain = load_model(MODELS_DIR / "imatinib-petain2008.yaml")
    assert petain.eta_parameters == ("CL", "KA")
    tv = typical_values(petain, {"weight_kg": 54, "age_y": 50, "agp_g_l": 1.13, "albumin_g_l": 38})
    assert (tv.cl_l_h, tv.v_l, tv.ka_per_h) == pytest.approx((7.29, 202.0, 1.03))
    heavy = typical_values(petain, {"weight_kg": 108, "age_y": 50, "agp_g_l": 2.26, "albumin_g_l": 38})
    assert heavy.cl_l_h == pytest.approx(7.29 * 2**0.56 * 2**-0.65)
    assert heavy.v_l == pytest.approx(202 * 2**0.79 * 2**-1.01)


def test_missing_covariate_with_default_is_used_and_reported() -> None:
    petain = load_model("imatinib-petain2008")
    tv = typical_values(petain, {"weight_kg": 54, "age_y": 50})
    assert tv.cl_l_h == pytest.approx(7.29)
    assert any("agp_g_l unknown" in w for w in tv.warnings)


def test_missing_required_covariate_raises() -> None:
    with pytest.raises(EstimationError, match="weight_kg"):
        typical_values(WIDMER, {"age_y": 50, "male": 1, "gist": 0})


@pytest.mark.parametrize(
    ("covariates", "flag"),
    [
        pytest.param({"weight_kg": 120, "age_y": 50}, True, id="heavy"),
        pytest.param({"weight_kg": 70, "age_y": 18}, True, id="young"),
        pytest.param({"weight_kg": 110, "age_y": 88}, False, id="on-the-boundary"),
    ],
)
def test_validity_domain_flags_without_failing(covariates: dict[str, float], flag: bool) -> None:
    tv = typical_values(WIDMER, {**covariates, "male": 1, "gist": 0})
    assert tv.out_of_domain is flag
    assert any("validity domain" in w for w in tv.warnings) is flag


def test_implausible_covariate_is_an_error() -> None:
    with pytest.raises(EstimationError, match=r"Invalid `weight_kg`: got 500 kg"):
        typical_values(WIDMER, {"weight_kg": 500, "age_y": 50, "male": 1, "gist": 0})


def test_unknown_model_name_is_an_error() -> None:
    with pytest.raises(EstimationError, match="cannot read PK model 'no-such-model'"):
        load_model("no-such-model")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        pytest.param(
            "correlation:\n    - [1.0, 0.798]\n    - [0.798, 1.0]",
            "correlation:\n    - [1.0, 1.2]\n    - [1.2, 1.0]",
            "not positive definite",
            id="omega",
        ),
        pytest.param("covariate: age_y, center: 50", "covariate: height_cm, center: 50", "undeclared", id="cov"),
        pytest.param("typical: 14.3", "typical: -14.3", "CL.typical must be a positive", id="typical"),
        pytest.param(
            "{covariate: male, center: 0.5, scale: 0.5, coefficient: 1.49}",
            "{covariate: male, expression: __import__('os'), coefficient: 1.49}",
            "exactly the keys",
            id="no-expressions",
        ),
        pytest.param("one-compartment-first-order-absorption", "two-compartment", "structure", id="structure"),
    ],
)
def test_invalid_model_files_are_rejected(tmp_path: Path, old: str, new: str, message: str) -> None:
    source = (MODELS_DIR / "imatinib-widmer2006.yaml").read_text()
    assert old in source
    path = tmp_path / "model.yaml"
    path.write_text(source.replace(old, new, 1))
    with pytest.raises(EstimationError, match=message):
        load_model(path)


def test_model_is_immutable() -> None:
    with pytest.raises(AttributeError):
        WIDMER.sigma_prop = 0.1  # type: ignore[misc]
    assert isinstance(WIDMER.omega, tuple)
    assert np.all(np.linalg.eigvalsh(WIDMER.omega_matrix()) > 0)
