"""Card review harness: what a clinician sees for every fhir_examples/ request, in an EHR-like card panel.

Each request goes through the pipeline at the time the examples are written for (as the goldens do). Only the
CDS Hooks response is used (the cards' JSON), so the harness works whatever the card builder does. The cards are
drawn in a 400 px wide panel as an EHR shows them: indicator colour, summary, detail rendered as GitHub-flavoured
markdown WITH raw HTML (as the CDS Hooks Sandbox does, so markup injected through request text would show),
source, suggestion buttons and links. Debian's chromium draws the panel (playwright; never a downloaded browser,
scripts on, every network request refused) and the harness writes, to the output directory:

- one PNG per request (``<request>.png``, the whole panel);
- ``cards.md`` and ``cards.csv``: per request the cards, the longest detail (non-blank markdown lines), the
  suggestions, duplicated suggestion labels, the panel height in px, and active markup found in the rendered
  detail (script, iframe, image, event handler, javascript: link, or an alert that fired).

    .venv/bin/python bench/cards.py [--out build/cards-review] [--only NAME ...]    (or: make cards-review)

Asserts nothing; it is for looking at.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markdown_it import MarkdownIt

from cds.errors import CdsError
from cds.pipeline import EXAMPLES_EVALUATION_TIME, Pipeline
from cds.web.browser import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "fhir_examples"
DEFAULT_OUT = ROOT / "build" / "cards-review"
PANEL_WIDTH = 400
COLUMNS = (
    "request",
    "hook",
    "cards",
    "max detail lines",
    "suggestions",
    "duplicate suggestions",
    "panel height px",
    "active markup",
    "error",
)
# an EHR's markdown: GitHub-flavoured (tables, strikethrough) with raw HTML passed through, like the Sandbox
EHR_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
INDICATOR_COLOURS = {"info": "#1f6feb", "warning": "#d29922", "critical": "#cf222e"}
# counted in the rendered detail: what would run or load if an EHR rendered request text as markup
ACTIVE_MARKUP_JS = """() => {
  let found = 0;
  for (const el of document.querySelectorAll('.detail *')) {
    if (['SCRIPT', 'IFRAME', 'OBJECT', 'EMBED', 'IMG', 'FORM', 'STYLE', 'LINK', 'META'].includes(el.tagName)) found++;
    else if ([...el.attributes].some(a => a.name.startsWith('on'))) found++;
    else if (el.tagName === 'A' && /^\\s*javascript:/i.test(el.getAttribute('href') || '')) found++;
  }
  return found;
}"""


@dataclass
class Review:
    request: str
    hook: str
    cards: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    panel_height: int = 0
    active_markup: int = 0

    @property
    def detail_lines(self) -> list[int]:
        return [sum(1 for line in str(c.get("detail", "")).splitlines() if line.strip()) for c in self.cards]

    @property
    def suggestion_labels(self) -> list[str]:
        return [str(s.get("label", "")) for c in self.cards for s in c.get("suggestions") or []]

    def row(self) -> dict[str, str | int]:
        labels = Counter(self.suggestion_labels)
        return {
            "request": self.request,
            "hook": self.hook,
            "cards": len(self.cards),
            "max detail lines": max(self.detail_lines, default=0),
            "suggestions": len(self.suggestion_labels),
            "duplicate suggestions": sum(n - 1 for n in labels.values()),
            "panel height px": self.panel_height,
            "active markup": self.active_markup,
            "error": self.error,
        }


def evaluate(pipeline: Pipeline, path: Path) -> Review:
    """The cards the service would answer with (a bad request is shown as the error an EHR would get)."""
    raw = path.read_bytes()
    try:
        outcome = pipeline.run(raw, now=EXAMPLES_EVALUATION_TIME)
    except CdsError as exc:
        return Review(path.name, _hook_of(raw), error=" ".join(str(exc).split()))
    return Review(path.name, outcome.request.hook, list(outcome.response["cards"]))


def _hook_of(raw: bytes) -> str:
    try:
        return str(json.loads(raw).get("hook", ""))
    except (ValueError, AttributeError):
        return ""


def panel_html(review: Review) -> str:
    """One page: the request's cards in a 400 px EHR panel (card text is markup, as an EHR treats it)."""
    if review.error:
        body = f'<div class="error">The service refused the request: {html.escape(review.error)}</div>'
    elif not review.cards:
        body = '<div class="empty">No cards</div>'
    else:
        body = "\n".join(_card_html(card) for card in review.cards)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><style>{PANEL_CSS}</style></head>
<body><div class="panel"><div class="title">Decision support: {html.escape(review.request)}</div>
{body}</div></body></html>"""


def _card_html(card: dict[str, Any]) -> str:
    indicator = str(card.get("indicator", "info"))
    colour = INDICATOR_COLOURS.get(indicator, "#6e7781")
    source = card.get("source") or {}
    suggestions = "".join(
        f'<button class="suggestion">{html.escape(str(s.get("label", "")))}</button>'
        for s in card.get("suggestions") or []
    )
    links = "".join(
        f'<button class="link">{html.escape(str(link.get("label", "")))} &#8599;</button>'
        for link in card.get("links") or []
    )
    return f"""<div class="card" style="border-left-color:{colour}">
<div class="summary">{html.escape(str(card.get("summary", "")))}</div>
<div class="detail">{EHR_MARKDOWN.render(str(card.get("detail", "")))}</div>
<div class="source">Source: {html.escape(str(source.get("label", "")))}</div>
{f'<div class="actions">{suggestions}</div>' if suggestions else ""}
{f'<div class="actions">{links}</div>' if links else ""}
<div class="dismiss">Dismiss</div>
</div>"""


PANEL_CSS = f"""
body {{ margin: 0; padding: 8px; background: #eef1f4; font: 14px/1.4 "DejaVu Sans", "Liberation Sans", sans-serif;
  color: #1f2328; }}
.panel {{ width: {PANEL_WIDTH}px; background: #fff; border: 1px solid #c9d1d9; box-sizing: border-box; padding: 8px; }}
.title {{ font-weight: 700; font-size: 13px; color: #57606a; margin-bottom: 6px; overflow-wrap: anywhere; }}
.card {{ border: 1px solid #d0d7de; border-left: 6px solid; border-radius: 4px; padding: 8px 10px; margin: 0 0 8px; }}
.summary {{ font-weight: 700; font-size: 15px; margin-bottom: 4px; }}
.detail {{ overflow-wrap: anywhere; }}
.detail p {{ margin: 4px 0; }}
.detail ul, .detail ol {{ margin: 4px 0; padding-left: 20px; }}
.detail table {{ border-collapse: collapse; margin: 4px 0; font-size: 12px; }}
.detail th, .detail td {{ border: 1px solid #d0d7de; padding: 2px 4px; text-align: left; }}
.source {{ font-size: 12px; color: #57606a; margin-top: 6px; }}
.actions {{ margin-top: 6px; display: flex; flex-wrap: wrap; gap: 4px; }}
button {{ font: inherit; font-size: 13px; padding: 3px 8px; border-radius: 3px; border: 1px solid #1f6feb;
  background: #fff; color: #0550ae; text-align: left; }}
button.link {{ border-color: #8c959f; color: #24292f; }}
.dismiss {{ font-size: 12px; color: #0550ae; margin-top: 6px; }}
.empty, .error {{ color: #57606a; padding: 8px; }}
.error {{ color: #a40e26; }}
"""


def screenshot_all(reviews: Sequence[Review], out: Path, chromium: Path = CHROMIUM) -> None:
    """Draws every panel in chromium, saves ``<request>.png`` and fills in the height and active markup."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            for review in reviews:
                context = browser.new_context(viewport={"width": PANEL_WIDTH + 16, "height": 600})
                context.route("**/*", lambda route: route.abort())  # an injected image or link loads nothing
                page = context.new_page()
                alerts: list[str] = []

                def on_dialog(dialog: Any, seen: list[str] = alerts) -> None:
                    seen.append(dialog.message)  # an injected alert() fired
                    dialog.dismiss()

                page.on("dialog", on_dialog)
                page.set_content(panel_html(review), wait_until="load")
                box = page.locator(".panel").bounding_box()
                review.panel_height = round(box["height"]) if box else 0
                review.active_markup = int(page.evaluate(ACTIVE_MARKUP_JS)) + len(alerts)
                page.screenshot(path=str(out / f"{Path(review.request).stem}.png"), full_page=True)
                context.close()
        finally:
            browser.close()


def write_tables(reviews: Sequence[Review], out: Path) -> None:
    rows = [r.row() for r in reviews]
    with (out / "cards.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (out / "cards.md").write_text(markdown_table(reviews), encoding="utf-8")


def markdown_table(reviews: Sequence[Review]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in (r.row() for r in reviews):
        lines.append("| " + " | ".join(str(row[c]).replace("|", "\\|") for c in COLUMNS) + " |")
    answered = [r for r in reviews if not r.error]
    details = [n for r in answered for n in r.detail_lines]
    lines += [
        "",
        f"{len(reviews)} requests ({len(reviews) - len(answered)} refused); "
        f"cards per request: max {max((len(r.cards) for r in answered), default=0)}, "
        f"total {sum(len(r.cards) for r in answered)}; "
        f"detail lines per card: max {max(details, default=0)}, "
        f"mean {sum(details) / len(details) if details else 0:.1f}; "
        f"tallest panel {max((r.panel_height for r in reviews), default=0)} px; "
        f"duplicate suggestions {sum(int(r.row()['duplicate suggestions']) for r in reviews)}; "
        f"active markup {sum(r.active_markup for r in reviews)}.",
    ]
    return "\n".join(lines) + "\n"


def review(
    out: Path = DEFAULT_OUT,
    only: Sequence[str] = (),
    *,
    chromium: Path = CHROMIUM,
    pipeline_factory: Callable[[], Pipeline] | None = None,
) -> list[Review]:
    paths = sorted(EXAMPLES.glob("*.json"))
    if only:
        wanted = {Path(n).name for n in only}
        paths = [p for p in paths if p.name in wanted]
        missing = wanted - {p.name for p in paths}
        if missing:
            raise SystemExit(f"cards: not in fhir_examples/: {', '.join(sorted(missing))}")
    if not chromium.exists():
        raise SystemExit(f"cards: {chromium} is not installed (apt-get install -y chromium); no browser is downloaded")
    pipeline = (pipeline_factory or _pipeline)()
    reviews = [evaluate(pipeline, p) for p in paths]
    out.mkdir(parents=True, exist_ok=True)
    screenshot_all(reviews, out, chromium)
    write_tables(reviews, out)
    return reviews


def _pipeline() -> Pipeline:
    # a link like the service's (the token is a placeholder: the panel never opens it)
    return Pipeline(
        explain_url=lambda hook_instance, _client="": f"https://cds.example/explain/{quote(hook_instance)}?token=x"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default build/cards-review)")
    parser.add_argument("--only", nargs="+", default=(), metavar="NAME", help="only these fhir_examples/ files")
    parser.add_argument("--chromium", type=Path, default=CHROMIUM, help="chromium executable (default Debian's)")
    args = parser.parse_args(argv)
    reviews = review(args.out, args.only, chromium=args.chromium)
    sys.stdout.write(markdown_table(reviews))
    print(f"screenshots and tables in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
