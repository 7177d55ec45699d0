"""Card markdown on the explanation page (cds.web.markdown, markdown-it-py in safe mode): request text escaped for
cards (cds.fhir.request_text.escape_markdown) shows as itself, and no text, escaped or not, becomes markup or a
link the rule authors did not cite."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cds.fhir.request_text import escape_markdown
from cds.web.markdown import render_markdown
from tests.hostile import HOSTILE

CITED = "https://dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid=211ef2da"


def inert(html: str) -> bool:
    """No element an attacker wants: script, image, event handler, javascript: URL or link to evil.example."""
    lowered = html.lower()
    return (
        "<script" not in lowered
        and "<img" not in lowered
        and not re.search(r"<[^>]*\son\w+=", lowered)
        and "javascript:" not in "".join(re.findall(r'href="([^"]*)"', lowered))
        and 'href="https://evil' not in lowered
        and 'href="http://www.evil' not in lowered
        and "<h1" not in lowered
    )


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_raw_or_escaped_renders_inert(text: str) -> None:
    for form in (text, escape_markdown(text), f"**Facts used**\n\n| fact | value |\n|---|---|\n| x | {text} |"):
        html = str(render_markdown(form, [CITED]))
        assert inert(html), html
        assert "<a " not in html


def test_escaped_characters_are_shown_and_never_markup() -> None:
    html = str(render_markdown(escape_markdown("<b>x</b> *y* `z`")))
    assert html == "<p>&lt;b&gt;x&lt;/b&gt; *y* `z`</p>\n"
    assert str(render_markdown("**bold** \\*not\\*")) == "<p><strong>bold</strong> *not*</p>\n"


def test_only_cited_http_links_become_links() -> None:
    text = f"<{CITED}> [label]({CITED}) <https://x.org/uncited> [y](https://x.org/uncited)"
    html = str(render_markdown(text, [CITED, "javascript:alert(1)", "ftp://x.org/"]))
    assert html.count(f'<a href="{CITED}" rel="noopener noreferrer">') == 2
    assert "&lt;https://x.org/uncited&gt;" in html and "[y](https://x.org/uncited)" in html
    assert str(render_markdown(f"<{CITED}>")) == f"<p>&lt;{CITED}&gt;</p>\n"  # nothing cited: no link at all


def test_the_card_markdown_in_use_keeps_its_look() -> None:
    html = str(render_markdown("Intro **x**\n\n| a | b |\n|---|---|\n| 1 | `c` |\n\n- one\n  more\n- two"))
    assert "<p>Intro <strong>x</strong></p>" in html
    assert '<th scope="col">a</th>' in html and "<td><code>c</code></td>" in html
    assert re.search(r"<li>one\s+more</li>\s*<li>two</li>", html)


def test_an_escaped_pipe_stays_in_its_table_cell() -> None:
    text = "| fact | value |\n|---|---|\n| lab.anc_unreadable | " + escape_markdown("'a | b' <i>") + " |"
    html = str(render_markdown(text))
    assert html.count("<td>") == 2
    assert "'a | b' &lt;i&gt;" in html


@given(st.text(max_size=60))
def test_any_escaped_value_in_a_line_of_card_text_renders_back_to_itself(raw: str) -> None:
    html = str(render_markdown("Condition: " + escape_markdown(raw)))
    inner = re.sub(r"^<p>|</p>\n$", "", html)
    assert "<" not in inner.replace("&lt;", "")  # no tag was made from request text
    shown = inner.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
    # CommonMark shows NUL as the replacement character
    assert shown == " ".join(f"Condition: {raw}".split()).replace("\x00", "\ufffd")


@given(st.text(st.sampled_from(list("<>[]()!*_`|#-=&;:/\\ \nahijsvcrptoneg1x.'\"")), max_size=80))
def test_any_text_even_unescaped_never_makes_a_link_or_an_active_element(raw: str) -> None:
    html = str(render_markdown(raw, [CITED]))
    assert inert(html), html
    assert "<a " not in html
