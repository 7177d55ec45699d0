"""Service configuration: a YAML file (``--config`` or IMATINIB_CDS_CONFIG) overridden by environment variables.

| setting | env | default |
|---|---|---|
| public_base_url | IMATINIB_CDS_PUBLIC_URL | http://127.0.0.1:8080 |
| rules_dir | IMATINIB_CDS_RULES | the shipped rule pack (cds.shipped) |
| database_url | IMATINIB_CDS_DATABASE_URL | sqlite:///var/audit.sqlite3 |
| cors_origins | IMATINIB_CDS_CORS_ORIGINS (comma separated) | none |
| trusted_clients | (file only) | none: the server then binds to loopback only |
| host, port | IMATINIB_CDS_HOST, IMATINIB_CDS_PORT | 127.0.0.1, 8080 |
| max_body_bytes | IMATINIB_CDS_MAX_BODY_BYTES | 5000000 |
| link_secret_file | IMATINIB_CDS_LINK_SECRET_FILE | var/link-secret (created 0600 on first use) |
| fetch_budget_s | IMATINIB_CDS_FETCH_BUDGET_S | 1.5 |
| fhir_servers | IMATINIB_CDS_FHIR_SERVERS (comma separated) | none: missing prefetch is never fetched |
| refusal_burst | IMATINIB_CDS_REFUSAL_BURST | 20 authentication failures per client before 429 (0: no limit) |
| refusal_rate_per_s | IMATINIB_CDS_REFUSAL_RATE_PER_S | 1.0: failures per second a client may add after the burst |
| auth_failure_keys | IMATINIB_CDS_AUTH_FAILURE_KEYS | 1000 distinct failure counts held in memory |
| auth_failure_flush_s | IMATINIB_CDS_AUTH_FAILURE_FLUSH_S | 15: seconds between writes of the counts |
| checkpoint_key_file | IMATINIB_CDS_CHECKPOINT_KEY | none: no signed checkpoints (docs/deploy.md) |
| checkpoint_file | IMATINIB_CDS_CHECKPOINT_FILE | var/audit-checkpoints.jsonl |
| checkpoint_every | IMATINIB_CDS_CHECKPOINT_EVERY (entries) | 1000 |
| checkpoint_interval_s | IMATINIB_CDS_CHECKPOINT_INTERVAL_S | 60 |
| fatigue_override_rate | IMATINIB_CDS_FATIGUE_OVERRIDE_RATE | 0.5: a rule overridden on more of its cards is flagged |
| fatigue_min_shown | IMATINIB_CDS_FATIGUE_MIN_SHOWN | 10: cards a rule must have shown before it is flagged |
| feedback_stats_entries | IMATINIB_CDS_FEEDBACK_STATS_ENTRIES | 5000: latest audit entries the /rules figures cover |
| feedback_stats_cache_s | IMATINIB_CDS_FEEDBACK_STATS_CACHE_S | 300: seconds the /rules figures are reused |
| metrics_allow | IMATINIB_CDS_METRICS_ALLOW (comma separated) | 127.0.0.0/8, ::1: who may read /metrics ([]: nobody) |
| log_format | IMATINIB_CDS_LOG_FORMAT | text; json: one JSON object a line (``serve --log-format``) |
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from cds.errors import CdsError
from cds.shipped import RULES_ENV, shipped_rules

SHIPPED_RULES = shipped_rules()


LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")
# prometheus-client's multiprocess folder: `serve --workers N` sets it (cds.service.metrics); here, so that setting
# it does not import prometheus-client first (the library reads it once, when it is imported)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LOG_FORMATS = ("text", "json")


class ConfigError(CdsError):
    code = "config"


@dataclass(frozen=True)
class ClientConfig:
    iss: str
    jwks_file: str | None = None
    jku_allowlist: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceConfig:
    public_base_url: str = "http://127.0.0.1:8080"
    rules_dir: Path = SHIPPED_RULES
    database_url: str = "sqlite:///var/audit.sqlite3"
    cors_origins: tuple[str, ...] = ()
    trusted_clients: tuple[ClientConfig, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 5_000_000
    link_secret_file: Path = Path("var/link-secret")
    link_ttl_s: int = 7 * 24 * 3600
    fetch_budget_s: float = 1.5
    fhir_servers: tuple[str, ...] = ()  # base URLs the service may fetch missing prefetch from (SSRF guard)
    jwt_leeway_s: float = 5.0
    # authentication failures: counted per minute (cds.service.auth_failures), rate-limited per client
    refusal_burst: int = 20
    refusal_rate_per_s: float = 1.0
    auth_failure_keys: int = 1000
    auth_failure_flush_s: float = 15.0
    # signed checkpoints of the audit chain: the key lives apart from the database (cds.audit.checkpoint)
    checkpoint_key_file: Path | None = None
    checkpoint_file: Path = Path("var/audit-checkpoints.jsonl")
    checkpoint_every: int = 1000
    checkpoint_interval_s: float = 60.0
    # feedback statistics (cds.audit.stats): governance settings for the alert-fatigue flag, not clinical ones
    fatigue_override_rate: float = 0.5
    fatigue_min_shown: int = 10
    feedback_stats_entries: int = 5_000  # about 0.6 s to count (40 kB decisions; mostly SQLite, outside the GIL)
    feedback_stats_cache_s: float = 300.0
    # addresses or networks that may read /metrics; requests passed on by a proxy never may (cds.service.metrics)
    metrics_allow: tuple[str, ...] = LOOPBACK_NETWORKS
    log_format: str = "text"  # or "json": one object a line (cds.service.logs); applied by `serve`
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"log_format: got {self.log_format!r}, expected one of {', '.join(LOG_FORMATS)}")
        for network in self.metrics_allow:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ConfigError(f"metrics_allow: {exc}") from exc

    @property
    def base(self) -> str:
        return self.public_base_url.rstrip("/")

    def may_fetch_from(self, fhir_server: object) -> bool:
        return isinstance(fhir_server, str) and fhir_server.rstrip("/") in {s.rstrip("/") for s in self.fhir_servers}


_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "IMATINIB_CDS_PUBLIC_URL": ("public_base_url", str),
    RULES_ENV: ("rules_dir", Path),
    "IMATINIB_CDS_DATABASE_URL": ("database_url", str),
    "IMATINIB_CDS_CORS_ORIGINS": ("cors_origins", lambda v: tuple(o.strip() for o in v.split(",") if o.strip())),
    "IMATINIB_CDS_HOST": ("host", str),
    "IMATINIB_CDS_PORT": ("port", int),
    "IMATINIB_CDS_MAX_BODY_BYTES": ("max_body_bytes", int),
    "IMATINIB_CDS_LINK_SECRET_FILE": ("link_secret_file", Path),
    "IMATINIB_CDS_FETCH_BUDGET_S": ("fetch_budget_s", float),
    "IMATINIB_CDS_FHIR_SERVERS": ("fhir_servers", lambda v: tuple(o.strip() for o in v.split(",") if o.strip())),
    "IMATINIB_CDS_REFUSAL_BURST": ("refusal_burst", int),
    "IMATINIB_CDS_REFUSAL_RATE_PER_S": ("refusal_rate_per_s", float),
    "IMATINIB_CDS_AUTH_FAILURE_KEYS": ("auth_failure_keys", int),
    "IMATINIB_CDS_AUTH_FAILURE_FLUSH_S": ("auth_failure_flush_s", float),
    "IMATINIB_CDS_CHECKPOINT_KEY": ("checkpoint_key_file", Path),
    "IMATINIB_CDS_CHECKPOINT_FILE": ("checkpoint_file", Path),
    "IMATINIB_CDS_CHECKPOINT_EVERY": ("checkpoint_every", int),
    "IMATINIB_CDS_CHECKPOINT_INTERVAL_S": ("checkpoint_interval_s", float),
    "IMATINIB_CDS_FATIGUE_OVERRIDE_RATE": ("fatigue_override_rate", float),
    "IMATINIB_CDS_FATIGUE_MIN_SHOWN": ("fatigue_min_shown", int),
    "IMATINIB_CDS_FEEDBACK_STATS_ENTRIES": ("feedback_stats_entries", int),
    "IMATINIB_CDS_FEEDBACK_STATS_CACHE_S": ("feedback_stats_cache_s", float),
    "IMATINIB_CDS_METRICS_ALLOW": ("metrics_allow", lambda v: tuple(o.strip() for o in v.split(",") if o.strip())),
    "IMATINIB_CDS_LOG_FORMAT": ("log_format", str),
}


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> ServiceConfig:
    env = os.environ if env is None else env
    path = path or (Path(env["IMATINIB_CDS_CONFIG"]) if env.get("IMATINIB_CDS_CONFIG") else None)
    config = _from_file(path) if path else ServiceConfig()
    for name, (attr, parse) in _ENV.items():
        if env.get(name):
            try:
                config = replace(config, **{attr: parse(env[name])})
            except ValueError as exc:
                raise ConfigError(f"{name}: {exc}") from exc
    _check_feedback_stats(config)
    return config


def _check_feedback_stats(config: ServiceConfig) -> None:
    from cds.audit.stats import checked_min_shown, checked_threshold

    checks: tuple[tuple[str, Callable[[object], object], object], ...] = (
        ("fatigue_override_rate", checked_threshold, config.fatigue_override_rate),
        ("fatigue_min_shown", checked_min_shown, config.fatigue_min_shown),
        ("feedback_stats_entries", checked_min_shown, config.feedback_stats_entries),
    )
    for name, check, value in checks:
        try:
            check(value)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from exc
    cache_s = config.feedback_stats_cache_s
    if isinstance(cache_s, bool) or not isinstance(cache_s, int | float) or not cache_s >= 0:
        raise ConfigError(f"feedback_stats_cache_s: got {config.feedback_stats_cache_s!r}, must be 0 or more")


def _from_file(path: Path) -> ServiceConfig:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping")
    known = {f for f in ServiceConfig.__dataclass_fields__ if f != "extra"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    clients = tuple(_client(path, c) for c in raw.pop("trusted_clients", []) or [])
    for key in ("rules_dir", "link_secret_file", "checkpoint_key_file", "checkpoint_file"):
        if key in raw:
            raw[key] = (path.parent / raw[key]).resolve()
    for key in ("cors_origins", "fhir_servers", "metrics_allow"):
        if key in raw:
            if not isinstance(raw[key], list):
                raise ConfigError(f"{path}: {key} must be a list")
            raw[key] = tuple(str(item) for item in raw[key])
    return ServiceConfig(**raw, trusted_clients=clients)


def _client(path: Path, raw: Any) -> ClientConfig:
    if not isinstance(raw, dict) or not isinstance(raw.get("iss"), str):
        raise ConfigError(f"{path}: each trusted client needs an 'iss'")
    jwks = raw.get("jwks_file")
    if not jwks and not raw.get("jku_allowlist"):
        raise ConfigError(f"{path}: client {raw['iss']} needs 'jwks_file' or 'jku_allowlist'")
    return ClientConfig(
        iss=raw["iss"],
        jwks_file=str((path.parent / jwks).resolve()) if jwks else None,
        jku_allowlist=tuple(raw.get("jku_allowlist") or ()),
        tenants=tuple(raw.get("tenants") or ()),
    )
