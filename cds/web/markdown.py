"""Card detail markdown rendered for the explanation page with markdown-it-py in safe mode.

CommonMark plus GitHub's tables and strikethrough, as EHRs render card detail, but: raw HTML is shown as text,
images are not loaded, headings stay text (a card cannot break the page's outline), bare URLs are never linked,
and a link becomes a link only when it is http(s) and one the rule authors cited (the rule set's evidence URLs).
Card detail mixes the rule author's template with escaped request text; the allow-list means that even request
text the card builder failed to escape can never become a link on this page.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

_SAFE_SCHEMES = ("https://", "http://")


def render_markdown(text: str, links: Iterable[str] = ()) -> Markup:
    """HTML for card detail text; ``links`` are the URLs that may become links (anything else stays text).

    Examples
    --------
    >>> str(render_markdown("**Facts** <script>\\n\\n- a <https://x.org/a>", ["https://x.org/a"]))
    '<p><strong>Facts</strong> &lt;script&gt;</p>\\n<ul>\\n<li>a <a href="https://x.org/a" \
rel="noopener noreferrer">https://x.org/a</a></li>\\n</ul>\\n'
    """
    md = _parser()
    allowed = frozenset(md.normalizeLink(url) for url in links if url.startswith(_SAFE_SCHEMES))
    return Markup(md.render(text, {"allowed_links": allowed}))


@cache
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.disable(["image", "heading", "lheading"])
    md.validateLink = _scheme_is_safe  # type: ignore[method-assign]
    md.core.ruler.push("allowed_links_only", _unlink_unlisted)
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("th_open", _th_open)
    return md


def _scheme_is_safe(url: str) -> bool:
    return url.lower().startswith(_SAFE_SCHEMES)


def _unlink_unlisted(state: Any) -> None:
    """A link whose target is not on the allow-list becomes the text it was written as."""
    allowed: frozenset[str] = state.env.get("allowed_links", frozenset())
    for block in state.tokens:
        if block.type == "inline" and block.children:
            block.children = _without_unlisted(block.children, allowed)


def _without_unlisted(tokens: list[Token], allowed: frozenset[str]) -> list[Token]:
    out: list[Token] = []
    opened: list[Token | None] = []  # per open link: None when kept, else the open token (its markup restored)
    for token in tokens:
        if token.type == "link_open":
            keep = str(token.attrGet("href") or "") in allowed
            opened.append(None if keep else token)
            if keep:
                out.append(token)
            else:
                out.append(_text("<" if token.markup == "autolink" else "["))
            continue
        if token.type == "link_close":
            start = opened.pop()
            if start is None:
                out.append(token)
            elif start.markup == "autolink":
                out.append(_text(">"))
            else:
                out.append(_text(f"]({start.attrGet('href') or ''})"))
            continue
        out.append(token)
    return out


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def _link_open(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    tokens[idx].attrSet("rel", "noopener noreferrer")
    return str(renderer.renderToken(tokens, idx, options, env))


def _th_open(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    tokens[idx].attrSet("scope", "col")
    return str(renderer.renderToken(tokens, idx, options, env))
