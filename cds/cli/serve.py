"""``imatinib-cds serve``: run the CDS Hooks service under uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import logging
import logging.config
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from cds.cli.config import LOOPBACK, add_service_options, option_environment, served_config
from cds.service.config import MULTIPROC_ENV, ServiceConfig
from cds.service.logs import logging_config

log = logging.getLogger("cds.service")


def register(sub: Any) -> None:
    parser = sub.add_parser("serve", help="run the CDS Hooks service")
    add_service_options(parser)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (share the audit database)")
    parser.add_argument(
        "--shadow-rules",
        type=Path,
        metavar="DIR",
        help="candidate rules evaluated on every live decision after it is answered, never shown; compare with "
        "`imatinib-cds audit shadow-report` (docs/governance.md)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from cds.service.config import load_config

    os.environ.update(option_environment(args))  # how the options reach uvicorn's worker processes
    asked = load_config()
    config = served_config(asked)
    if config.host != asked.host:
        print(
            f"imatinib-cds: no trusted clients configured, so client authentication is off; "
            f"binding to {LOOPBACK} instead of {asked.host}",
            file=sys.stderr,
        )
        os.environ["IMATINIB_CDS_HOST"] = LOOPBACK  # the workers' links follow the address actually bound
    elif not config.trusted_clients:
        print(
            "imatinib-cds: warning: no trusted clients configured: client JWTs are not checked (loopback only)",
            file=sys.stderr,
        )
    candidate = _checked_shadow_rules(args.shadow_rules) if args.shadow_rules is not None else None
    if candidate == "":
        return 1
    log_config = logging_config(config.log_format)
    logging.config.dictConfig(log_config)
    log_start(config)
    with metrics_folder(args.workers), _shadow(config.database_url, args.shadow_rules, candidate, log_config):
        uvicorn.run(
            "cds.service.app:app_from_environment",
            factory=True,
            host=config.host,
            port=config.port,
            workers=args.workers,
            log_level="info",
            log_config=log_config,  # applied again in each worker process
            # uvicorn's access log prints query strings and explanation links carry a token there;
            # the app writes its own access line (logger cds.access) without them
            access_log=False,
        )
    return 0


def _checked_shadow_rules(rules_dir: Path) -> str:
    """The digest of a shadow candidate that passes `rules check`; else its linter messages and "" (the
    service does not start)."""
    from cds.engine.ruleset import check_rules
    from cds.errors import RuleError

    if not rules_dir.is_dir():
        print(f"imatinib-cds: --shadow-rules: not a rule directory: {rules_dir}", file=sys.stderr)
        return ""
    try:
        rule_set, diagnostics = check_rules(rules_dir)
    except RuleError as exc:
        print(f"imatinib-cds: --shadow-rules: {exc}", file=sys.stderr)
        return ""
    errors = [d for d in diagnostics if d.severity == "error"]
    for diagnostic in errors:
        print(diagnostic, file=sys.stderr)
    if rule_set is None:
        print(
            f"imatinib-cds: --shadow-rules {rules_dir} fails `rules check` ({len(errors)} error(s)); not started",
            file=sys.stderr,
        )
        return ""
    return rule_set.digest


def _shadow(
    database_url: str, rules_dir: Path | None, candidate: str | None, log_config: dict[str, Any]
) -> AbstractContextManager[None]:
    if rules_dir is None or not candidate:
        return nullcontext()
    from cds.governance.shadow import shadow_process

    return shadow_process(database_url, rules_dir.resolve(), candidate, log_config)


@contextlib.contextmanager
def metrics_folder(workers: int) -> Iterator[None]:
    """With several workers, the folder where each writes its metrics (prometheus-client's multiprocess mode),
    set before any worker starts: a fresh temporary one, removed afterwards, unless the operator named one in
    PROMETHEUS_MULTIPROC_DIR, which is then emptied of earlier runs' files first (as that mode requires)."""
    if workers <= 1 and not os.environ.get(MULTIPROC_ENV):
        yield
        return
    given = os.environ.get(MULTIPROC_ENV)
    folder = Path(given) if given else Path(tempfile.mkdtemp(prefix="imatinib-cds-metrics-"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(folder)
    try:
        yield
    finally:
        if not given:
            del os.environ[MULTIPROC_ENV]
            shutil.rmtree(folder, ignore_errors=True)


def log_start(config: ServiceConfig) -> None:
    """What an operator checks first: which rules, which audit log, and where the cards' links point."""
    from cds.engine.ruleset import load_rules
    from cds.service.settings_report import masked_url

    rule_set = load_rules(config.rules_dir)  # invalid rules stop here, with the linter's messages
    how = "public_base_url" if config.public_base_url else "not configured: follows host and port"
    if config.trusted_clients and not config.public_base_url:
        how += "; set public_base_url to the URL the EHRs call"
    log.info("rules %s: version %s, digest %s", config.rules_dir, rule_set.version, rule_set.digest)
    log.info("audit database %s", masked_url(config.database_url))
    log.info("explanation links and JWT audience: %s (%s)", config.base, how)
