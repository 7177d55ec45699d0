"""HTML rendering of the explanation page, the rule catalogue, a rule's feedback page and the plain error pages
(Jinja2, autoescaped).

The stylesheet is inlined, so every page (and the offline file of ``evaluate --explain-html``) is self-contained:
no CDN, no web fonts, no second request except the token-protected plot image.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from cds.audit.stats import FeedbackStats, RuleStats
from cds.engine.ruleset import RuleSet
from cds.web.catalogue import build_catalogue
from cds.web.explain import Explanation, build_explanation, data_uri
from cds.web.feedback import REASON_DISPLAY, trend_alt, week_rows
from cds.web.markdown import render_markdown


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("cds.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["breakable"] = breakable
    env.filters["markdown"] = render_markdown  # card detail: no links (none are on the allow-list)
    env.filters["percent"] = percent
    env.globals["css"] = Markup(resources.files("cds.web").joinpath("static/web.css").read_text(encoding="utf-8"))
    return env


def breakable(version: object) -> Markup:
    """A rule set version (``a@1.0.0+b@1.1.0+...``) that may wrap after each ``+``; the parts are escaped."""
    return Markup("+<wbr>").join(str(version).split("+"))


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def render(template: str, **context: Any) -> str:
    context.setdefault("show_nav", True)
    context.setdefault("rules_href", "/rules")
    return environment().get_template(template).render(**context)


def explanation_page(explanation: Explanation, plot_src: str | None, *, rules_href: str = "/rules") -> str:
    return render("explain.html", ex=explanation, plot_src=plot_src, rules_href=rules_href)


def catalogue_page(
    rule_set: RuleSet, query: str, stats: FeedbackStats | None = None, *, rules_href: str = "/rules"
) -> str:
    """``stats`` None: the feedback figures could not be read (the page says so and lists the rules)."""
    cat = build_catalogue(rule_set, query)
    return render("catalogue.html", cat=cat, query=query, fb=stats, rules_href=rules_href)


def rule_feedback_page(
    rule_id: str, title: str, stats: FeedbackStats, plot_src: str | None, *, rules_href: str = "/rules"
) -> str:
    """One rule's feedback figures, its weekly trend (``plot_src``, a data: URI) and its weeks as a table."""
    rule = stats.rules.get(rule_id) or RuleStats(title)
    return render(
        "rule.html",
        rule_id=rule_id,
        title=title or rule.title,
        fb=stats,
        rule=rule,
        weeks=week_rows(rule),
        flagged=stats.fatigue_candidate(rule_id),
        plot_src=plot_src,
        plot_alt=trend_alt(rule_id, rule) if plot_src else "",
        reasons=REASON_DISPLAY,
        rules_href=rules_href,
    )


def error_page(heading: str, message: str) -> str:
    return render("error.html", heading=heading, message=message, show_nav=False)


def offline_page(payload: Mapping[str, Any], rule_set: RuleSet | None) -> str:
    """A self-contained explanation of a decision that was not recorded (the plot embedded as a data: PNG)."""
    from cds.web.plots import PlotUnavailable, plot_png

    explanation = build_explanation({"payload": payload}, rule_set)
    plot_src = None
    if explanation.plot_note is None:
        try:
            plot_src = data_uri(plot_png(payload))
        except PlotUnavailable as exc:
            explanation = _with_note(explanation, str(exc))
    return render("explain.html", ex=explanation, plot_src=plot_src, show_nav=False)


def _with_note(explanation: Explanation, note: str) -> Explanation:
    from dataclasses import replace

    return replace(explanation, plot_note=note)


def offline_payload(outcome: Any, received: datetime | None = None) -> dict[str, Any]:
    """The decision payload the service would have recorded for ``outcome`` (a ``cds.pipeline.Outcome``)."""
    from cds.service.records import decision_payload

    return decision_payload(
        service=f"imatinib-{outcome.request.hook}",
        hook=outcome.request.hook,
        received=received or datetime.now(UTC),
        client=None,
        request=None,
        status="ok (offline evaluation)",
        http_status=200,
        latency_ms=0.0,
        outcome=outcome,
    )
