"""Service configuration: a YAML file (``--config`` or IMATINIB_CDS_CONFIG) overridden by environment variables.

Each setting is a field of ``ServiceConfig`` made with ``setting()``, which keeps its environment variable and its
description beside its default: the loader, ``imatinib-cds config show`` and the reference table in
docs/settings.md (``imatinib-cds config reference``) all read them from there.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields, replace
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
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class ConfigError(CdsError):
    code = "config"


@dataclass(frozen=True)
class ClientConfig:
    iss: str
    jwks_file: str | None = None
    jku_allowlist: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()


def setting(
    default: Any, doc: str, env: str | None = None, parse: Callable[[str], Any] = str, shown: str | None = None
) -> Any:
    """A ``ServiceConfig`` field with what documents it: the environment variable that overrides it (parsed with
    ``parse``), a description and, where the default is not a literal worth printing, how to show it."""
    return field(default=default, metadata={"doc": doc, "env": env, "parse": parse, "shown": shown})


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


@dataclass(frozen=True)
class ServiceConfig:
    public_base_url: str = setting(
        "",
        "the URL clients call, prefix included: the start of explanation links and the JWT audience",
        "IMATINIB_CDS_PUBLIC_URL",
        shown="follows host and port: http://HOST:PORT",
    )
    rules_dir: Path = setting(
        SHIPPED_RULES, "the rules folder (reload with SIGHUP)", RULES_ENV, Path, "the shipped rules"
    )
    database_url: str = setting(
        "sqlite:///var/audit.sqlite3",
        "the audit log (SQLAlchemy URL; PostgreSQL for several workers or hosts)",
        "IMATINIB_CDS_DATABASE_URL",
    )
    cors_origins: tuple[str, ...] = setting(
        (), "browser origins allowed to call the service", "IMATINIB_CDS_CORS_ORIGINS", _comma_list
    )
    trusted_clients: tuple[ClientConfig, ...] = setting(
        (),
        "EHRs whose JWTs are accepted (iss, jwks_file or jku_allowlist, tenants); none: the server binds to "
        "loopback only and checks no JWT",
    )
    host: str = setting("127.0.0.1", "bind address (anything but loopback needs trusted_clients)", "IMATINIB_CDS_HOST")
    port: int = setting(8080, "port", "IMATINIB_CDS_PORT", int)
    max_body_bytes: int = setting(5_000_000, "largest request body accepted", "IMATINIB_CDS_MAX_BODY_BYTES", int)
    link_secret_file: Path = setting(
        Path("var/link-secret"),
        "key that signs explanation links (created 0600 on first use; the same on every worker and host)",
        "IMATINIB_CDS_LINK_SECRET_FILE",
        Path,
    )
    link_ttl_s: int = setting(7 * 24 * 3600, "seconds an explanation link stays valid", "IMATINIB_CDS_LINK_TTL_S", int)
    fetch_budget_s: float = setting(
        1.5, "seconds allowed for fetching missing prefetch", "IMATINIB_CDS_FETCH_BUDGET_S", float
    )
    fhir_servers: tuple[str, ...] = setting(  # an allowlist: a client's fhirServer elsewhere is never called (SSRF)
        (),
        "FHIR base URLs missing prefetch may be fetched from (none: never fetched)",
        "IMATINIB_CDS_FHIR_SERVERS",
        _comma_list,
    )
    jwt_leeway_s: float = setting(5.0, "clock skew allowed on JWT times", "IMATINIB_CDS_JWT_LEEWAY_S", float)
    # authentication failures: counted per minute (cds.service.auth_failures), rate-limited per client
    refusal_burst: int = setting(
        20, "authentication failures per client before 429 (0: no limit)", "IMATINIB_CDS_REFUSAL_BURST", int
    )
    refusal_rate_per_s: float = setting(
        1.0, "failures per second a client may add after the burst", "IMATINIB_CDS_REFUSAL_RATE_PER_S", float
    )
    auth_failure_keys: int = setting(
        1000, "distinct failure counts held in memory", "IMATINIB_CDS_AUTH_FAILURE_KEYS", int
    )
    auth_failure_flush_s: float = setting(
        15.0, "seconds between writes of the failure counts", "IMATINIB_CDS_AUTH_FAILURE_FLUSH_S", float
    )
    # signed checkpoints of the audit chain: the key lives apart from the database (cds.audit.checkpoint)
    checkpoint_key_file: Path | None = setting(
        None,
        "Ed25519 key that signs checkpoints of the audit chain (none: no checkpoints)",
        "IMATINIB_CDS_CHECKPOINT_KEY",
        Path,
    )
    checkpoint_file: Path = setting(
        Path("var/audit-checkpoints.jsonl"),
        "where signed checkpoints are appended",
        "IMATINIB_CDS_CHECKPOINT_FILE",
        Path,
    )
    checkpoint_every: int = setting(1000, "entries between checkpoints", "IMATINIB_CDS_CHECKPOINT_EVERY", int)
    checkpoint_interval_s: float = setting(
        60.0, "seconds between checkpoints", "IMATINIB_CDS_CHECKPOINT_INTERVAL_S", float
    )
    # feedback statistics (cds.audit.stats): governance settings for the alert-fatigue flag, not clinical ones
    fatigue_override_rate: float = setting(
        0.5,
        "a rule overridden on more of its cards than this is flagged",
        "IMATINIB_CDS_FATIGUE_OVERRIDE_RATE",
        float,
    )
    fatigue_min_shown: int = setting(
        10, "cards a rule must have shown before it is flagged", "IMATINIB_CDS_FATIGUE_MIN_SHOWN", int
    )
    feedback_stats_entries: int = setting(  # about 0.6 s to count (40 kB decisions; mostly SQLite, outside the GIL)
        5_000, "latest audit entries the /rules figures cover", "IMATINIB_CDS_FEEDBACK_STATS_ENTRIES", int
    )
    feedback_stats_cache_s: float = setting(
        300.0, "seconds the /rules figures are reused", "IMATINIB_CDS_FEEDBACK_STATS_CACHE_S", float
    )
    # requests passed on by a proxy may never read /metrics, whatever this says (cds.service.metrics)
    metrics_allow: tuple[str, ...] = setting(
        LOOPBACK_NETWORKS,
        "addresses or networks that may read /metrics ([]: nobody)",
        "IMATINIB_CDS_METRICS_ALLOW",
        _comma_list,
    )
    log_format: str = setting(
        "text", "text, or json: one JSON object a line (applied by serve)", "IMATINIB_CDS_LOG_FORMAT"
    )
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
        """Where explanation links point and what a JWT's audience starts with: ``public_base_url``, or else the
        address the service listens on (a fixed default would send links to another server)."""
        return (self.public_base_url or listening_url(self.host, self.port)).rstrip("/")

    def may_fetch_from(self, fhir_server: object) -> bool:
        return isinstance(fhir_server, str) and fhir_server.rstrip("/") in {s.rstrip("/") for s in self.fhir_servers}


def settings() -> tuple[Field[Any], ...]:
    """Every setting, in the order of ``ServiceConfig``."""
    return tuple(f for f in fields(ServiceConfig) if f.name != "extra")


def listening_url(host: str, port: int) -> str:
    """The URL of a server bound to ``host``: a wildcard address names this machine, an IPv6 one is bracketed."""
    if host in WILDCARD_HOSTS:
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> ServiceConfig:
    env = os.environ if env is None else env
    path = path or (Path(env["IMATINIB_CDS_CONFIG"]) if env.get("IMATINIB_CDS_CONFIG") else None)
    config = _from_file(path) if path else ServiceConfig()
    for each in settings():
        name = each.metadata["env"]
        if name and env.get(name):
            try:
                config = replace(config, **{each.name: each.metadata["parse"](env[name])})
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
