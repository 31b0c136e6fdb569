"""Every variant in a real browser (headless Chromium) at phone width: nothing overflows, the
read-more buttons and footer links are there and visible. Screenshots go to the test's tmp dir.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from newsletter.config import Settings
from newsletter.preview import write_preview
from newsletter.render.renderer import render_issue_variants
from newsletter.render.view import issue_view_from_dicts
from tests.fixtures.render import ISSUE_DATE, make_article

pytestmark = [pytest.mark.browser]

VISIBLE = """el => {
  const r = el.getBoundingClientRect(), s = getComputedStyle(el);
  return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none';
}"""


@pytest.fixture(scope="module")
def preview_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from newsletter.config import Secret, load_settings

    root = tmp_path_factory.mktemp("browser")
    settings: Settings = load_settings(
        {},
        database_url=f"sqlite:///{root / 'unused.db'}",
        var_dir=root / "var",
        secret_keys=(Secret("test-secret-key-0123456789abcdef"),),
        base_url="https://news.example.com",
    )
    articles = [make_article(n, long=True) for n in range(1, 8)]
    articles.append(make_article(8, languages=("en",), url="https://ainippo.example/" + "z" * 300))
    # Unbreakable runs (a pasted URL, a model name) must wrap, not widen the phone layout.
    articles[0]["content"]["ja"]["summary"] += " https://example.com/" + "a" * 120
    articles[0]["content"]["en"]["key_points"][0]["heading"] = "Model-" + "X" * 90
    view = issue_view_from_dicts(
        1,
        ISSUE_DATE,
        articles,
        note_ja="本日は特集号です。 https://news.example.com/special",
        note_en="A special edition: https://news.example.com/special",
    )
    write_preview(render_issue_variants(view, settings).values(), root, settings, issue_label="x")
    return root


@pytest.mark.parametrize("variant", ["ja", "en", "both", "both-en"])
def test_variant_fits_a_phone_with_visible_buttons_and_footer(
    browser_page: Any, preview_dir: Path, variant: str, tmp_path: Path
) -> None:
    page = browser_page
    page.goto((preview_dir / f"{variant}.html").as_uri())
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    buttons = page.locator("a.nl-read-more, .nl-read-more a")
    assert buttons.count() == 8
    for i in range(buttons.count()):
        button = buttons.nth(i)
        button.scroll_into_view_if_needed()
        assert button.evaluate(VISIBLE)
        box = button.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
    footer = page.locator("a.nl-footer-link")
    assert footer.count() == 3
    for i in range(3):
        assert footer.nth(i).evaluate(VISIBLE)
    hrefs = [footer.nth(i).get_attribute("href") for i in range(3)]
    assert hrefs[:2] == ["https://news.example.com/p/preview", "https://news.example.com/u/preview"]
    shot = tmp_path / f"{variant}-375.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_desktop_width_centres_a_600px_column(browser_page: Any, preview_dir: Path) -> None:
    page = browser_page
    page.set_viewport_size({"width": 1024, "height": 800})
    page.goto((preview_dir / "both.html").as_uri())
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    box = page.locator("#article-1").bounding_box()
    assert box is not None and 200 < box["x"] < 300  # (1024 - 600) / 2 + padding


def test_summary_links_jump_to_the_article(browser_page: Any, preview_dir: Path) -> None:
    page = browser_page
    page.goto((preview_dir / "ja.html").as_uri())
    page.locator('a[href="#article-5"]').click()
    assert page.evaluate("window.scrollY") > 500
    assert page.locator("#article-5").evaluate(VISIBLE)


def test_dark_mode_readers_get_light_text_on_a_dark_page(
    chromium_browser: Any, preview_dir: Path, tmp_path: Path
) -> None:
    context = chromium_browser.new_context(
        viewport={"width": 375, "height": 800}, color_scheme="dark"
    )
    try:
        page = context.new_page()
        page.goto((preview_dir / "en.html").as_uri())
        body = page.evaluate("getComputedStyle(document.body).backgroundColor")
        title = page.locator("#article-1").evaluate("el => getComputedStyle(el).color")
        assert body == "rgb(13, 17, 23)"
        assert title == "rgb(230, 237, 243)"
        page.screenshot(path=str(tmp_path / "en-dark.png"))
    finally:
        context.close()


def _contrast_violations(chromium_browser: Any, path: Path, scheme: str) -> list[str]:
    from tests.test_web_edition_browser import AXE

    context = chromium_browser.new_context(
        viewport={"width": 375, "height": 800}, color_scheme=scheme, bypass_csp=True
    )
    try:
        page = context.new_page()
        page.goto(path.as_uri())
        page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
        result = page.evaluate("async () => await axe.run(document, {runOnly: ['color-contrast']})")
        assert result["passes"], "axe found no text to check"
        return [
            f"{node['html'][:100]}: {node['any'][0]['message'][:160]}"
            for violation in result["violations"]
            for node in violation["nodes"]
        ]
    finally:
        context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("variant", ["ja", "en", "both", "both-en"])
def test_every_text_has_at_least_4_5_to_1_contrast(
    chromium_browser: Any, preview_dir: Path, variant: str, scheme: str
) -> None:
    """WCAG AA for normal text, checked by axe-core on the rendered email, including the
    dark-mode colours Apple Mail and Outlook apply from the email's own media query."""
    assert _contrast_violations(chromium_browser, preview_dir / f"{variant}.html", scheme) == []
