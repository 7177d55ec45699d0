"""imatinib-cds: CDS Hooks decision support for imatinib TDM and dose adjustment.

The public API is what ``__all__`` lists (docs/embedding.md shows it at work); every other module and name is
private and may change between releases. ``import cds`` stays cheap: the pipeline and the web application are
imported when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cds.errors import CdsError, InvalidInput, MissingPrefetch, RuleError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from cds.pipeline import Outcome, Pipeline
    from cds.service.app import create_app
    from cds.service.config import ClientConfig, ServiceConfig, load_config
    from cds.shipped import export_rules, shipped_rules

__all__ = [
    "CdsError",
    "ClientConfig",
    "InvalidInput",
    "MissingPrefetch",
    "Outcome",
    "Pipeline",
    "RuleError",
    "ServiceConfig",
    "__version__",
    "create_app",
    "export_rules",
    "load_config",
    "shipped_rules",
]

_LAZY = {
    "Outcome": "cds.pipeline",
    "Pipeline": "cds.pipeline",
    "create_app": "cds.service.app",
    "ClientConfig": "cds.service.config",
    "ServiceConfig": "cds.service.config",
    "load_config": "cds.service.config",
    "export_rules": "cds.shipped",
    "shipped_rules": "cds.shipped",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cds' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
