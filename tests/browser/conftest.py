"""A real uvicorn server (in a thread, so the pinned clock and the PK-input shim apply) and Debian's chromium
driven by playwright. No browser is ever downloaded: without /usr/bin/chromium the browser tests are skipped."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from cds.audit import AuditStore
from cds.service.config import ServiceConfig
from cds.web.browser import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import ROOT
from tests.web.helpers import WITH_PK, WITHOUT_PK, example, explain_links, pinned_app, service_path

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
LOGGERS = ("uvicorn", "uvicorn.access", "uvicorn.error", "cds", "cds.service", "cds.web")
CAPTURED = ("uvicorn", "cds")  # every line of the server and the service ends up in these two


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives Debian's chromium through playwright (skipped without it)")


def browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (apt-get install -y chromium); browser tests skipped"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed; browser tests skipped"
    return None


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class LiveSite:
    base: str
    links: dict[str, str]  # example name -> the card's explanation URL
    requests: dict[str, dict[str, Any]]
    log: Lines
    seen_urls: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    import uvicorn

    tmp = tmp_path_factory.mktemp("live")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = ServiceConfig(
        public_base_url=base, database_url=f"sqlite:///{tmp}/audit.sqlite3", link_secret_file=tmp / "secret"
    )
    audit = AuditStore(config.database_url)
    handler = Lines()
    saved = {name: logging.getLogger(name).level for name in LOGGERS}
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    for name in CAPTURED:
        logging.getLogger(name).addHandler(handler)
    server = uvicorn.Server(
        uvicorn.Config(pinned_app(config, audit), host="127.0.0.1", port=port, log_config=None, access_log=True)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        links, requests = {}, {}
        for name in (*WITH_PK, WITHOUT_PK):
            body = example(name)
            response = httpx.post(base + service_path(body), json=body, timeout=60)
            assert response.status_code == 200, response.text
            links[name] = explain_links(response.json())[0]
            requests[name] = body
        yield LiveSite(base, links, requests, handler)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
        for name in CAPTURED:
            logging.getLogger(name).removeHandler(handler)
        audit.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def page(browser: Any, live: LiveSite) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, java_script_enabled=True)
    opened = context.new_page()
    opened.on("request", lambda request: live.seen_urls.append(request.url))
    try:
        yield opened
    finally:
        context.close()


def screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
