"""The web edition in headless Chromium: fits a phone and a desktop, and passes axe-core.

The app runs under uvicorn on 127.0.0.1; each page is loaded at 375 px and 1280 px wide.
axe-core (vendored in tests/data/axe-core, MPL-2.0) is injected into the page by the test
(the context bypasses the page's CSP only for that: the pages themselves run no script).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from newsletter.runtime import Runtime
from tests.fixtures.edition import FIRST_DAY, Edition
from tests.fixtures.web import live_server

AXE_DIR = Path(__file__).resolve().parent / "data" / "axe-core"
AXE = AXE_DIR / "axe.min.js"
WIDTHS = (375, 1280)


def _pages(edition: Edition) -> dict[str, str]:
    article = edition.articles["article-1"]
    return {
        "home": "/",
        "index": "/issues/",
        "issue": f"/issues/{FIRST_DAY.isoformat()}?lang=both",
        "issue-ja": f"/issues/{FIRST_DAY.isoformat()}?lang=ja",
        "article": f"/articles/{article}?lang=en",
        "article-both": f"/articles/{article}?lang=both",
    }


def test_the_vendored_axe_core_is_the_published_file() -> None:
    text = AXE.read_text(encoding="utf-8")
    assert text.startswith("/*! axe v4.14.1")
    assert "Mozilla Public" in text[:600]
    digest = hashlib.sha256(AXE.read_bytes()).hexdigest()
    assert digest in (AXE_DIR / "README.md").read_text(encoding="utf-8")


@pytest.fixture
def edition_site(web_runtime: Runtime, edition: Edition) -> Any:
    from tests.fixtures.web import free_port

    with live_server(web_runtime, free_port()) as base:
        yield base, _pages(edition)


def _overflow(page: Any) -> int:
    return int(
        page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    )


@pytest.mark.browser
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("web_database_url", ["sqlite"], indirect=True)
def test_edition_pages_have_no_horizontal_overflow(
    chromium_browser: Any, edition_site: Any, width: int
) -> None:
    base, pages = edition_site
    context = chromium_browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        for name, path in pages.items():
            response = page.goto(base + path)
            assert response is not None and response.status == 200, name
            assert _overflow(page) <= 0, f"{name} overflows at {width} px"
    finally:
        context.close()


@pytest.mark.browser
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("web_database_url", ["sqlite"], indirect=True)
def test_edition_pages_have_no_serious_accessibility_violations(
    chromium_browser: Any, edition_site: Any, width: int
) -> None:
    base, pages = edition_site
    context = chromium_browser.new_context(
        viewport={"width": width, "height": 900}, bypass_csp=True
    )
    page = context.new_page()
    axe = AXE.read_text(encoding="utf-8")
    try:
        for name, path in pages.items():
            page.goto(base + path)
            page.add_script_tag(content=axe)
            result = page.evaluate("async () => await axe.run(document)")
            bad = [
                f"{v['id']} ({v['impact']}): {v['nodes'][0]['html'][:120]}"
                for v in result["violations"]
                if v["impact"] in ("serious", "critical")
            ]
            assert not bad, f"{name} at {width} px: {bad}"
            assert result["passes"], name  # axe really ran its rules
    finally:
        context.close()
