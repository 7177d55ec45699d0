"""The plot is redrawn deterministically from the recorded inputs; proposals and missing inputs."""

from __future__ import annotations

from typing import Any

import pytest

from cds.web import plots
from tests.web.conftest import Site
from tests.web.helpers import WITH_PK


def payload_of(site: Site, name: str) -> dict[str, Any]:
    entry = site.audit.decision(site.decisions[name].hook_instance)
    assert entry is not None
    payload: dict[str, Any] = entry["payload"]
    return payload


def test_the_redraw_is_deterministic_and_matches_the_recorded_estimate(site: Site) -> None:
    payload = payload_of(site, WITH_PK[0])
    first, second = plots.plot_png(payload), plots.plot_png(payload)
    assert first == second
    run = plots.replay(payload["pk"]["inputs"])
    assert run.estimate.cmin_pred_ng_ml == pytest.approx(payload["pk"]["cmin_pred"], rel=1e-9)
    assert run.estimate.p_target == payload["pk"]["p_target"]


def test_proposed_regimen_is_the_composed_dose_else_the_pk_proposal(site: Site) -> None:
    payload = payload_of(site, WITH_PK[0])
    assert plots.proposed_regimen(payload) == (600.0, 24.0)
    payload["dose"] = {"action": "none", "steps": []}
    assert plots.proposed_regimen(payload) == (800.0, 12.0)  # the ladder gives 800 mg/day as 400 mg q12h
    payload["pk"]["proposed_daily_mg"] = None
    assert plots.proposed_regimen(payload) is None
    assert plots.plot_png(payload)[:4] == b"\x89PNG"  # no proposal: no proposed curve, still a plot


def test_unreadable_inputs_are_reported_not_drawn(site: Site) -> None:
    payload = payload_of(site, WITH_PK[0])
    payload["pk"]["inputs"] = {"model": "imatinib-widmer2006"}
    reason = plots.plot_available(payload)
    assert reason is not None and "cannot be read back" in reason
    with pytest.raises(plots.PlotUnavailable):
        plots.plot_png(payload)
    assert plots.plot_available({"pk": None}) == (
        "No PK estimate was made for this decision, so there is no concentration-time plot."
    )
