"""Request text escaped for card markdown (cds.fhir.request_text.escape_markdown) shows as itself on the page."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cds.fhir.request_text import escape_markdown
from cds.web.markdown import inline, render_markdown


def test_escaped_characters_are_shown_and_never_markup() -> None:
    assert inline(escape_markdown("<b>x</b> *y* `z`")) == "&lt;b&gt;x&lt;/b&gt; *y* `z`"
    assert inline("**bold** \\*not\\*") == "<strong>bold</strong> *not*"


def test_an_escaped_pipe_stays_in_its_table_cell() -> None:
    text = "| fact | value |\n|---|---|\n| lab.anc_unreadable | " + escape_markdown("'a | b' <i>") + " |"
    html = str(render_markdown(text))
    assert html.count("<td>") == 2
    assert "&#39;a | b&#39; &lt;i&gt;" in html


# U+E000-E07F stand for escaped characters inside the renderer (shown as the ASCII character, still escaped)
@given(st.text(st.characters(exclude_characters=[chr(c) for c in range(0xE000, 0xE080)]), max_size=60))
def test_any_escaped_text_renders_back_to_itself_without_tags(raw: str) -> None:
    html = inline(escape_markdown(raw))
    assert "<" not in html.replace("&lt;", "")  # no tag was made from request text
    expected = " ".join(raw.split())
    unescaped = html.replace("&lt;", "<").replace("&gt;", ">").replace("&#39;", "'").replace("&#34;", '"')
    assert unescaped.replace("&amp;", "&") == expected
