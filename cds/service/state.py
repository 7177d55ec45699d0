"""What the running service holds: config, the current pipeline (swapped atomically on reload), audit, auth."""

from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from cds.audit import AuditStore
from cds.audit.stats import FatigueRule
from cds.errors import CdsError, RuleLoadError
from cds.pipeline import Pipeline
from cds.service.auth_failures import AuthFailureLog
from cds.service.config import ServiceConfig
from cds.service.health import CachedWriteProbe
from cds.service.metrics import Metrics
from cds.service.rate_limit import RefusalLimiter
from cds.web.feedback import FeedbackFigures
from cds.web.links import LinkSigner, explain_path

log = logging.getLogger("cds.service")


@dataclass
class ServiceState:
    config: ServiceConfig
    pipeline: Pipeline
    audit: AuditStore
    signer: LinkSigner
    authenticator: Any | None = None  # cds.service.auth.ClientAuthenticator when clients are trusted
    metrics: Metrics = field(default_factory=Metrics)
    reload_lock: threading.Lock = field(default_factory=threading.Lock)
    write_probe: CachedWriteProbe = field(init=False)
    auth_failures: AuthFailureLog = field(init=False)
    refusals: RefusalLimiter = field(init=False)
    feedback_figures: FeedbackFigures = field(init=False)  # what the rule pages show (cds.web.feedback)

    def __post_init__(self) -> None:
        self.write_probe = CachedWriteProbe(self.audit.probe)
        config = self.config
        self.auth_failures = AuthFailureLog(
            self.audit.engine,
            max_keys=config.auth_failure_keys,
            flush_s=config.auth_failure_flush_s,
            observer=self.metrics.auth_refused,
        )
        self.refusals = RefusalLimiter(config.refusal_burst, config.refusal_rate_per_s)
        self.feedback_figures = FeedbackFigures(
            self.audit,
            FatigueRule.create(config.fatigue_override_rate, config.fatigue_min_shown),
            entries=config.feedback_stats_entries,
            ttl_s=config.feedback_stats_cache_s,
        )
        self.audit.on_commit = self.metrics.audit_committed
        self.metrics.serving(self.pipeline.rule_set)

    def explain_url(self, hook_instance: str, client: str = "") -> str:
        return f"{self.config.base}{explain_path(hook_instance)}?token={self.signer.token(hook_instance, client)}"

    def reload_rules(self) -> bool:
        """Validate and compile the rule files anew, then swap; an invalid set is refused and the old one serves."""
        with self.reload_lock:
            try:
                fresh = Pipeline(self.config.rules_dir, explain_url=self.explain_url, clock=self.pipeline.clock)
            except RuleLoadError as exc:
                log.error("rule reload refused; still serving %s", self.pipeline.rule_set.version)
                for diagnostic in exc.diagnostics:
                    log.error("  %s", diagnostic)
                return False
            except CdsError as exc:
                log.error("rule reload refused (%s); still serving %s", exc, self.pipeline.rule_set.version)
                return False
            old = self.pipeline.rule_set
            self.pipeline = fresh  # a single reference assignment: requests see the old or the new set
            self.metrics.serving(fresh.rule_set)
            if gc.get_freeze_count():  # frozen at start-up: keep the new set out of the collector too
                freeze_loaded_objects()
            log.info(
                "rules reloaded: %s (%s) -> %s (%s)",
                old.version,
                old.digest[:12],
                fresh.rule_set.version,
                fresh.rule_set.digest[:12],
            )
            return True


def freeze_loaded_objects() -> None:
    """Keep what is loaded once (rules, models, terminology) out of the cyclic garbage collector.

    A full collection walked all of it every second or two under load, 75-100 ms each time, and that pause
    was the tail latency; objects made per request are still collected as before.
    """
    gc.collect()
    gc.freeze()
