"""`imatinib-cds pk estimate`: exit codes, JSON keys, batch mode and one-line errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cds.cli.main import main

PATIENT: dict[str, Any] = {
    "model": "imatinib-widmer2006",
    "patient": {"sex": "male", "age_y": 50, "weight_kg": 70, "indication": "CML"},
    "regimen": {"dose_mg": 400, "interval_h": 24, "since": "2026-01-01T08:00:00Z"},
    "levels": [{"time": "2026-02-19T11:00:00Z", "ng_ml": 1500}],
}
REQUIRED_KEYS = {
    "cl", "v", "eta", "cmin_pred", "cmin_p05", "cmin_p95", "p_target", "converged", "loglinear_cmin", "dose_table",
    "cmin_next", "next_dose_time",
}  # fmt: skip
ROW_KEYS = {"daily_mg", "interval_h", "cmin_median", "cmin_p05", "cmin_p95", "p_target"}


def _run(tmp_path: Path, content: Any, *args: str) -> int:
    """Write ``content`` to patient.json and run the command; returns the exit code."""
    path = tmp_path / "patient.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return main(["pk", "estimate", str(path), *args])


def _with(change: dict[str, Any]) -> dict[str, Any]:
    patient = copy.deepcopy(PATIENT)
    for dotted, value in change.items():
        target = patient
        *parents, last = dotted.split(".")
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[last] = value
    return patient


def test_json_output_has_the_documented_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _run(tmp_path, PATIENT, "--json")
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert REQUIRED_KEYS <= set(out)
    assert all(ROW_KEYS <= set(row) for row in out["dose_table"])
    assert out["converged"] is True and out["method"] == "map"
    assert out["cl"] == pytest.approx(16.319, rel=2e-4)  # Tucuxi, pk.md 6.2
    assert len(out["eta"]) == 2
    assert out["target_ng_ml"] == 1000  # CML default


def test_gist_default_target_and_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run(tmp_path, _with({"patient.indication": "GIST"}), "--json")
    assert json.loads(capsys.readouterr().out)["target_ng_ml"] == 1100
    _run(tmp_path, _with({"patient.indication": "GIST"}), "--json", "--target", "760")
    assert json.loads(capsys.readouterr().out)["target_ng_ml"] == 760


def test_human_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _run(tmp_path, PATIENT)
    out = capsys.readouterr().out
    assert code == 0
    assert "steady-state trough at 400 mg q24h: 630 ng/mL" in out
    assert "log-linear (Wang 2009) trough: 634 ng/mL [unreliable: sampled 3.0 h after a dose" in out
    assert "proposed:" in out


def test_without_since_or_levels_the_patient_is_a_priori_at_steady_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    patient = _with({"regimen": {"dose_mg": 400, "interval_h": 24}, "levels": []})
    code = _run(tmp_path, patient, "--json")
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["method"] == "apriori" and out["converged"] is None and out["loglinear_cmin"] is None
    assert out["cmin_pred"] == pytest.approx(623.25, abs=0.01)


def test_batch_with_one_bad_patient_keeps_the_others(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _with({"levels": [{"time": "2026-02-19T11:00:00Z", "ng_ml": -3}]})
    code = _run(tmp_path, [PATIENT, bad, _with({"patient.indication": "GIST"})], "--json")
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert len(out) == 3
    assert out[0]["method"] == "map" and out[2]["target_ng_ml"] == 1100
    assert out[1] == {"index": 1, "error": "InvalidInput: [1].levels[0].ng_ml: got -3, must be a positive "
                      "concentration (BLQ not supported)"}  # fmt: skip


def test_batch_under_a_patients_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _with({"patient.age_y": 150})
    code = _run(tmp_path, {"patients": [bad, PATIENT]}, "--json")
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out[0]["error"].startswith("InvalidInput: patients[0].patient.age_y: Invalid `age_y`: got 150")
    assert "cmin_pred" in out[1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("{not json", "patient.json: not JSON", id="not-json"),
        pytest.param(_with({"levels.0.ng_ml": 0}), "levels[0].ng_ml: got 0, must be a positive", id="zero-level"),
        pytest.param(
            _with({"levels.0.time": "2025-12-31T08:00:00Z"}),
            "levels[0].time: Invalid `levels[0].time`: got 2025-12-31T08:00:00+00:00, must be after the first dose",
            id="level-before-first-dose",
        ),
        pytest.param(_with({"regimen.since": None}), "regimen.since: levels need dose times", id="no-doses"),
        pytest.param(_with({"levels.0.time": "2026-02-19T11:00:00"}), "needs a time zone", id="naive-time"),
        pytest.param(_with({"patient.sex": "m"}), "patient.sex: Invalid `sex`: got 'm'", id="sex"),
        pytest.param(_with({"patient.weight_kg": "70"}), "patient.weight_kg: expected a number", id="weight-string"),
        pytest.param(_with({"model": "nope"}), "model: cannot read PK model 'nope'", id="unknown-model"),
        pytest.param(_with({"regimen.interval_h": 0}), "regimen.interval_h: Invalid `regimen.interval_h`", id="tau"),
        pytest.param(_with({"doses": [{"time": "2026-01-01T08:00:00Z", "mg": 0}]}), "doses[0].mg", id="zero-dose"),
    ],
)
def test_invalid_input_is_one_line_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: Any, message: str
) -> None:
    code = _run(tmp_path, content, "--json")
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("imatinib-cds: invalid input: ")
    assert message in lines[0]


def test_missing_file_is_invalid_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pk", "estimate", str(tmp_path / "absent.json")]) == 2
    assert "cannot read the file" in capsys.readouterr().err


def test_out_of_domain_is_reported_not_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _run(tmp_path, _with({"patient.age_y": 92}), "--json")
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["out_of_domain"] is True and out["facts"]["pk.out_of_domain"] is True
    assert any("validity domain" in w for w in out["warnings"])


def test_threshold_and_cap_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run(tmp_path, PATIENT, "--json", "--threshold", "0.3", "--max-daily-mg", "600")
    out = json.loads(capsys.readouterr().out)
    assert max(row["daily_mg"] for row in out["dose_table"]) == 600
    assert out["proposed_daily_mg"] == 600 and out["proposal_threshold"] == 0.3
    assert main(["pk", "estimate", str(tmp_path / "patient.json"), "--threshold", "2"]) == 2
    assert "--threshold: got 2" in capsys.readouterr().err


def test_plot_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pk.png"
    code = _run(tmp_path, PATIENT, "--plot", str(out))
    assert code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_levels_or_dose_times(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A priori at steady state: the plot shows an arbitrary steady-state stretch, band from Omega."""
    out = tmp_path / "apriori.png"
    patient = _with({"regimen": {"dose_mg": 600, "interval_h": 24}, "levels": []})
    assert _run(tmp_path, patient, "--plot", str(out)) == 0
    assert out.stat().st_size > 1000
    assert "method apriori" in capsys.readouterr().out


def test_plot_refused_for_a_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path, [PATIENT, PATIENT], "--plot", str(tmp_path / "x.png")) == 2
    assert "--plot draws one patient" in capsys.readouterr().err
