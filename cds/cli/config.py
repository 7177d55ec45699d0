"""``imatinib-cds config show | reference``: the settings ``serve`` would use, and what every setting means.

``serve`` and ``config show`` take the same options (``add_service_options``); each option stands for a
setting's environment variable, which is how it reaches uvicorn's worker processes.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from cds.service.config import ServiceConfig, load_config, settings
from cds.shipped import RULES_ENV

CONFIG_ENV = "IMATINIB_CDS_CONFIG"
LOOPBACK = "127.0.0.1"
# option (argparse dest) -> the environment variable it sets, and the setting that variable feeds
OPTION_ENV = {
    "config": CONFIG_ENV,
    "host": "IMATINIB_CDS_HOST",
    "port": "IMATINIB_CDS_PORT",
    "rules": RULES_ENV,
    "db": "IMATINIB_CDS_DATABASE_URL",
    "log_format": "IMATINIB_CDS_LOG_FORMAT",
}


def register(sub: Any) -> None:
    parser = sub.add_parser("config", help="the service's settings: the effective values and the reference")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    show = commands.add_parser(
        "show", help="the configuration `serve` with the same options would use; secrets masked, key files by path"
    )
    add_service_options(show)
    show.set_defaults(func=run_show)
    reference = commands.add_parser("reference", help="every setting as the Markdown table of docs/settings.md")
    reference.add_argument(
        "--update", type=Path, metavar="FILE", help="rewrite the table between the markers of FILE instead"
    )
    reference.set_defaults(func=run_reference)


def add_service_options(parser: Any) -> Any:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"YAML configuration (default: ${CONFIG_ENV}); every setting: `imatinib-cds config reference`",
    )
    parser.add_argument("--host", help="bind address (default from the configuration: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default from the configuration: 8080)")
    parser.add_argument(
        "--rules", type=Path, metavar="DIR", help=f"rules folder (default: ${RULES_ENV}, else the shipped rules)"
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="audit database URL (default: $IMATINIB_CDS_DATABASE_URL, else sqlite:///var/audit.sqlite3)",
    )
    parser.add_argument(
        "--log-format", choices=("text", "json"), help="log lines as text or one JSON object a line (default: text)"
    )
    return parser


def option_environment(args: argparse.Namespace) -> dict[str, str]:
    """The environment variables the given options stand for (paths made absolute: workers may not share cwd)."""
    overrides = {}
    for dest, name in OPTION_ENV.items():
        value = getattr(args, dest, None)
        if value is not None:
            overrides[name] = str(value.resolve()) if isinstance(value, Path) else str(value)
    return overrides


def served_config(config: ServiceConfig) -> ServiceConfig:
    """What ``serve`` runs: without trusted clients no JWT is checked, so it binds to loopback whatever is asked."""
    if config.trusted_clients or is_loopback(config.host):
        return config
    return replace(config, host=LOOPBACK)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def setting_sources(config: ServiceConfig, env: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, str]:
    """Where each setting's value came from: an option, an environment variable, the file, or the default."""
    options = {name: "--" + dest.replace("_", "-") for dest, name in OPTION_ENV.items()}
    sources = {}
    for each in settings():
        name = each.metadata["env"]
        if name in overrides:
            sources[each.name] = options[name]
        elif name and env.get(name):
            sources[each.name] = name
        elif getattr(config, each.name) != each.default:
            sources[each.name] = "configuration file"
    return sources


def run_show(args: argparse.Namespace) -> int:
    from cds.service.settings_report import effective_settings

    overrides = option_environment(args)
    env = {**os.environ, **overrides}
    loaded = load_config(env=env)
    config = served_config(loaded)
    sources = setting_sources(loaded, env, overrides)
    if config.host != loaded.host:
        sources["host"] = f"loopback: no trusted_clients (asked for {loaded.host})"
    file = env.get(CONFIG_ENV)
    print(f"# configuration file: {file or 'none'}; secrets masked, key files by path")
    print(effective_settings(config, sources), end="")
    return 0


def run_reference(args: argparse.Namespace) -> int:
    from cds.service.settings_report import reference_table, with_current_table

    if args.update is None:
        print(reference_table(), end="")
        return 0
    try:
        args.update.write_text(with_current_table(args.update.read_text(encoding="utf-8")), encoding="utf-8")
    except (OSError, ValueError) as exc:
        print(f"imatinib-cds: config reference --update {args.update}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.update}: table of {len(settings())} settings written")
    return 0
