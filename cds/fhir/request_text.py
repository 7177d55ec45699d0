"""Text that came from the request, made safe for cards (EHRs render card markdown with raw HTML).

Two forms, for two places: a short label for a card summary (plain text, bounded so the summary fits 139
characters), where markup characters (and what would start a bare link) become spaces; and a value shown in
detail markdown, where they are backslash-escaped so the page shows the text as written (cds/web/markdown.py
un-escapes them).
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^\w .,:;/()'+%-]|_")  # anything that markdown or HTML could read as markup
_BARE_LINK = re.compile(r"://|\bwww\.", re.IGNORECASE)  # GFM turns "scheme://" and "www." text into links
_SPACES = re.compile(r"\s+")
LABEL_MAX = 60


def plain_label(text: str) -> str:
    """Request text made safe to show in a card summary and markdown: characters that markdown or HTML read as
    markup become spaces, whitespace is collapsed and the length bounded."""
    cleaned = _SPACES.sub(" ", _BARE_LINK.sub(" ", _UNSAFE.sub(" ", text))).strip()
    return cleaned if len(cleaned) <= LABEL_MAX else cleaned[: LABEL_MAX - 3].rstrip() + "..."


def escape_markdown(text: str) -> str:
    """Request text made inert in card markdown (EHRs render raw HTML): one line, and the characters that
    start HTML, emphasis, code, links or table cells backslash-escaped."""
    flat = " ".join(text.split())
    escaped = re.sub(r"([\\`*_\[\]<>&|~#!])", r"\\\1", flat)
    # GFM links bare "scheme://" and "www." text by itself: an escaped ":" or "." is shown but not linked
    escaped = re.sub(r"(?<=[A-Za-z0-9]):(?=//)", r"\\:", escaped)
    return re.sub(r"(?i)\b(www)\.", r"\1\\.", escaped)
