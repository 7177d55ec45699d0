"""The small markdown subset card details use (paragraphs, ``- `` lists, pipe tables, ``**bold**``, `` `code` ``,
``<https://...>`` links, backslash escapes such as ``\\<`` or ``\\|``), rendered to HTML with everything escaped
first: card text never becomes markup."""

from __future__ import annotations

import re

from markupsafe import Markup, escape

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")
_LINK = re.compile(r"&lt;(https?://[^\s&]+(?:&amp;[^\s&]+)*)&gt;")
_ESCAPED = re.compile(r"\\([\\`*_\[\]<>&|~])")  # what cds.fhir.request_text.escape_markdown escapes
# private-use code points stand for escaped characters while the markup is applied (one sent in the text itself
# shows as the ASCII character it stands for, HTML-escaped like every other character)
_HELD = 0xE000


def render_markdown(text: str) -> Markup:
    """HTML for card detail text.

    Examples
    --------
    >>> str(render_markdown("**Facts** <script>\\n\\n- a <https://x.org/?a=1&b=2>"))
    '<p><strong>Facts</strong> &lt;script&gt;</p>\\n<ul><li>a <a href="https://x.org/?a=1&amp;b=2" \
rel="noopener noreferrer">https://x.org/?a=1&amp;b=2</a></li></ul>'
    """
    blocks: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line.rstrip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        if all(line.lstrip().startswith("|") for line in lines):
            blocks.append(_table(lines))
        elif lines[0].startswith("- ") and all(line.startswith(("- ", "  ")) for line in lines):
            blocks.append(_list(lines))
        else:
            blocks.append(f"<p>{' '.join(inline(line) for line in lines)}</p>")
    return Markup("\n".join(blocks))


def inline(text: str) -> str:
    """Escaped text with bold, code and autolinks; a backslash-escaped character is shown as itself.

    >>> inline("a \\\\<b\\\\> \\\\*x\\\\* **y**")
    'a &lt;b&gt; *x* <strong>y</strong>'
    """
    held = _ESCAPED.sub(lambda m: chr(_HELD + ord(m.group(1))), text)
    html = str(escape(held))
    html = _CODE.sub(r"<code>\1</code>", html)
    html = _BOLD.sub(r"<strong>\1</strong>", html)
    html = _LINK.sub(r'<a href="\1" rel="noopener noreferrer">\1</a>', html)
    return re.sub("[\ue000-\ue07f]", lambda m: str(escape(chr(ord(m.group(0)) - _HELD))), html)


def _cells(line: str) -> list[str]:
    """Cells split at the pipes that are not escaped (``\\|`` stays in its cell)."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def _table(lines: list[str]) -> str:
    rows = [_cells(line) for line in lines if not re.fullmatch(r"\|?[\s:|-]+\|?", line.strip())]
    if not rows:
        return ""
    head, body = rows[0], rows[1:]
    out = ["<table><thead><tr>", *(f'<th scope="col">{inline(c)}</th>' for c in head), "</tr></thead><tbody>"]
    for row in body:
        out += ["<tr>", *(f"<td>{inline(c)}</td>" for c in row), "</tr>"]
    out.append("</tbody></table>")
    return "".join(out)


def _list(lines: list[str]) -> str:
    items: list[str] = []
    for line in lines:
        if line.startswith("- "):
            items.append(line[2:])
        else:  # a continuation line of the item above
            items[-1] += " " + line.strip()
    return "<ul>" + "".join(f"<li>{inline(item)}</li>" for item in items) + "</ul>"
