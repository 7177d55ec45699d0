"""Debian's chromium as the explanation pages and the card review harness are rendered in (tests/browser,
bench/cards.py): never a browser downloaded by playwright, headless, and without background network traffic."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
