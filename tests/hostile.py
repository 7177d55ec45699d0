"""What an attacker puts in FHIR text (issue 15 item 2), raw: every place that shows request text is tried with
all of it (the cards' escaping, the explanation page's markdown)."""

HOSTILE_BY_NAME = {
    "script": "<script>alert(1)</script>",
    "js-link": "[x](javascript:alert(1))",
    "img": "<img src=x onerror=alert(1)>",
    "autolink": "<https://evil.example/login>",
    "heading": "\n\n# STOP IMATINIB NOW",
    "link": "[login](https://evil.example/login)",
    "image": "![i](https://evil.example/pixel.png)",
    "bare-url": "see https://evil.example/login or www.evil.example",  # GFM links bare URLs by itself
    "html-link": "<a href='https://evil.example'>x</a>",
    "reference-link": "[x]: https://evil.example/ref\n\n[x]",
    "js-autolink": "<JAVASCRIPT:alert(1)>",
}
HOSTILE = tuple(HOSTILE_BY_NAME.values())
HOSTILE_IDS = tuple(HOSTILE_BY_NAME)
