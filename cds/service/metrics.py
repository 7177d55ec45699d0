"""Prometheus metrics for operators, served at ``GET /metrics`` (text exposition format).

| metric | type | labels |
|---|---|---|
| imatinib_cds_requests_total | counter | endpoint (route template), service (CDS service id or ""), status |
| imatinib_cds_request_duration_seconds | histogram | endpoint, service, status |
| imatinib_cds_cards_total | counter | service, indicator: cards returned |
| imatinib_cds_rule_cards_total | counter | service, rule, indicator: rule findings shown on those cards |
| imatinib_cds_feedback_total | counter | service, outcome (accepted, overridden) |
| imatinib_cds_suggestions_accepted_total | counter | service |
| imatinib_cds_auth_refusals_total | counter | endpoint, reason, throttled |
| imatinib_cds_audit_commit_seconds | histogram | (one observation per audit transaction) |
| imatinib_cds_audit_commit_failures_total | counter | (transactions that did not commit) |
| imatinib_cds_ruleset_info | gauge, 1 | version, digest (and pid with several workers) |

Label values come from the service's own vocabulary (route templates, service ids, rule ids, indicators, refusal
reasons), never from request text, so the number of series is bounded. A request costs one counter and one
histogram update: the labelled children are kept in a dictionary.

Several workers (``serve --workers N``): prometheus-client's multiprocess mode. ``serve`` points
PROMETHEUS_MULTIPROC_DIR at an empty folder before the workers start; each worker writes its values to files
there and ``/metrics``, whichever worker answers, sums the counters and histograms of all of them (the rule set
gauge keeps one series per live worker, labelled pid).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from cds.service.config import MULTIPROC_ENV
from cds.service.discovery import hook_of

if TYPE_CHECKING:
    from cds.engine.ruleset import RuleSet
    from cds.pipeline import Outcome

CONTENT_TYPE = CONTENT_TYPE_LATEST
# prometheus-client chooses where values live (memory, or files for multiprocess mode) once, when it is imported:
# read the setting then too, so that the exposition always matches
_MULTIPROCESS_DIR = os.environ.get(MULTIPROC_ENV) or None
# a call is a few milliseconds to a few hundred (docs/performance.md); fetching prefetch may take seconds
REQUEST_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# requests a proxy passed on: their peer address is the proxy's, not the caller's
FORWARDED_HEADERS = (b"forwarded", b"x-forwarded-for", b"x-real-ip")


class Metrics:
    """The service's metrics, in a registry of their own (one per app: several apps may share a process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.multiprocess_dir = _MULTIPROCESS_DIR
        r = self.registry
        by_request = ["endpoint", "service", "status"]
        self.requests = Counter("imatinib_cds_requests", "HTTP requests answered", by_request, registry=r)
        self.latency = Histogram(
            "imatinib_cds_request_duration_seconds",
            "Time from request to the end of the response",
            by_request,
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.cards = Counter("imatinib_cds_cards", "Cards returned", ["service", "indicator"], registry=r)
        self.rule_cards = Counter(
            "imatinib_cds_rule_cards",
            "Rule findings shown on cards (several rules on one topic share a card)",
            ["service", "rule", "indicator"],
            registry=r,
        )
        self.feedback = Counter(
            "imatinib_cds_feedback", "Feedback items recorded, by outcome", ["service", "outcome"], registry=r
        )
        self.accepted = Counter(
            "imatinib_cds_suggestions_accepted", "Suggestions reported accepted in feedback", ["service"], registry=r
        )
        self.auth_refusals = Counter(
            "imatinib_cds_auth_refusals",
            "Calls refused for failed client authentication (401, or 429 when throttled)",
            ["endpoint", "reason", "throttled"],
            registry=r,
        )
        self.audit_commit = Histogram(
            "imatinib_cds_audit_commit_seconds",
            "Duration of audit log transactions (one or more entries each)",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.audit_failures = Counter(
            "imatinib_cds_audit_commit_failures", "Audit log transactions that failed", registry=r
        )
        self.ruleset = Gauge(
            "imatinib_cds_ruleset_info",
            "The rule set being served (value 1; 0 for a set replaced by a reload)",
            ["version", "digest"],
            multiprocess_mode="liveall",
            registry=r,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._serving: tuple[str, str] | None = None

    # --- updates, each a few counter increments --------------------------------------------------------

    def request(self, scope: Mapping[str, Any], status: int, seconds: float) -> None:
        """One answered request, labelled by the route it matched (set in ``scope`` by the router)."""
        endpoint = getattr(scope.get("route"), "path", None) or "unmatched"
        service_id = (scope.get("path_params") or {}).get("service_id")
        service = service_id if isinstance(service_id, str) and hook_of(service_id) else ""
        key = (endpoint, service, status)
        children = self._request_children.get(key)
        if children is None:
            labels = (endpoint, service, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def decided(self, service: str, outcome: Outcome) -> None:
        """The cards of a decision that was recorded and answered."""
        for card in outcome.cards:
            self.cards.labels(service, str(card.get("indicator", ""))).inc()
        if outcome.cards:
            shown = outcome.relevance.cards if outcome.relevance is not None else outcome.decision.cards
            for spec in shown:
                self.rule_cards.labels(service, spec.rule_id, spec.indicator).inc()

    def feedback_recorded(self, service: str, items: Iterable[Mapping[str, Any]]) -> None:
        for item in items:
            self.feedback.labels(service, str(item.get("outcome"))).inc()
            accepted = item.get("acceptedSuggestions")
            if isinstance(accepted, Sequence) and accepted:
                self.accepted.labels(service).inc(len(accepted))

    def auth_refused(self, endpoint: str, reason: str, throttled: bool) -> None:
        self.auth_refusals.labels(endpoint, reason, "true" if throttled else "false").inc()

    def audit_committed(self, seconds: float, ok: bool) -> None:
        self.audit_commit.observe(seconds)
        if not ok:
            self.audit_failures.inc()

    def serving(self, rule_set: RuleSet) -> None:
        """The rule set now served (at start-up and after each reload)."""
        if self._serving is not None:
            self.ruleset.labels(*self._serving).set(0)
        self._serving = (rule_set.version, rule_set.digest)
        self.ruleset.labels(*self._serving).set(1)

    # --- exposition ------------------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The text format; with several workers, the sum over all of them."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(merged)

    def worker_stopped(self) -> None:
        """A worker that stops removes its live series (the rule set gauge); its counts stay in the sums."""
        if self.multiprocess_dir is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]


def may_scrape(scope: Mapping[str, Any], allowed: Sequence[str]) -> bool:
    """Whether a request may read /metrics: its peer address is in ``allowed`` (addresses or networks) and no
    proxy passed it on (behind a proxy on the same host, every caller would otherwise look like loopback)."""
    if any(name in FORWARDED_HEADERS for name, _ in scope.get("headers") or ()):
        return False
    client = scope.get("client")
    try:
        address = ipaddress.ip_address(client[0]) if client else None
    except ValueError:
        return False
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(network, strict=False) for network in allowed)
