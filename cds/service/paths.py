"""Paths of an app that may be mounted under a prefix (``host.mount("/imatinib", app)``) or served behind
``uvicorn --root-path``: ASGI then puts the prefix in ``root_path`` and keeps it in ``path``.

``public_base_url`` names the app's own URL, prefix included: it is the JWT audience's start and the start of
every link the service makes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit


def route_path(scope: Mapping[str, Any]) -> str:
    """The path below the app's mount point: what follows ``public_base_url`` in the URL the client called."""
    path, root = str(scope["path"]), str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


def raw_route_path(scope: Mapping[str, Any]) -> str:
    """The same, undecoded (``raw_path``): for path segments that may themselves hold an encoded "/"."""
    raw = scope.get("raw_path")
    if not raw:
        return route_path(scope)
    text = bytes(raw).decode("latin-1").split("?", 1)[0]
    root = str(scope.get("root_path", ""))
    return text[len(root) :] if root and text.startswith(root) else text


def link_prefix(public_base_url: str) -> str:
    """The path part of the public URL ("" or "/imatinib"): what links inside pages start with."""
    return urlsplit(public_base_url).path.rstrip("/")
