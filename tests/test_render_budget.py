"""Gmail clips HTML over 102,400 bytes (and the unsubscribe footer with it): every variant of
the largest realistic issue must fit, trimming visibly rather than being clipped."""

from __future__ import annotations

import pytest

from newsletter.config import Settings
from newsletter.errors import RenderError
from newsletter.render.budget import GMAIL_CLIP_BYTES, filled_size
from newsletter.render.renderer import render_issue_variants, render_variant
from newsletter.render.view import issue_view_from_dicts
from newsletter.types import SLOT_UNSUBSCRIBE_URL
from tests.fixtures.render import ISSUE_DATE, make_article


def oversized_article(n: int) -> dict:
    """Every field filled, far beyond what the site usually publishes."""
    article = make_article(n, long=True)
    for content in article["content"].values():
        content["key_points"] = content["key_points"] * 2
        content["impact_analysis"] = "\n\n".join([content["impact_analysis"]] * 2)
        content["related"] = content["related"] * 2
    return article


def test_the_largest_realistic_issue_fits_every_variant(render_settings: Settings) -> None:
    view = issue_view_from_dicts(1, ISSUE_DATE, [make_article(n, long=True) for n in range(1, 9)])
    for variant, rendered in render_issue_variants(view, render_settings).items():
        assert filled_size(rendered.html, render_settings.base_url) <= GMAIL_CLIP_BYTES, variant


def test_an_oversized_issue_is_trimmed_under_the_limit(render_settings: Settings) -> None:
    view = issue_view_from_dicts(1, ISSUE_DATE, [oversized_article(n) for n in range(1, 9)])
    rendered = render_issue_variants(view, render_settings)
    for variant in ("ja", "en", "both", "both-en"):
        html = rendered[variant].html
        assert filled_size(html, render_settings.base_url) <= GMAIL_CLIP_BYTES, variant
        assert rendered[variant].trimmed, variant
        assert SLOT_UNSUBSCRIBE_URL in html  # the footer is still inside the unclipped part


def test_trimming_is_recorded_in_order_of_least_value_first(render_settings: Settings) -> None:
    view = issue_view_from_dicts(1, ISSUE_DATE, [oversized_article(n) for n in range(1, 9)])
    trimmed = render_variant(view, "both", render_settings).trimmed
    assert trimmed[0] == "key point bodies shortened to 160 columns"
    assert "summaries shortened to 200 columns" not in trimmed[:3]


def test_a_trimmed_article_says_so_next_to_read_more(render_settings: Settings) -> None:
    view = issue_view_from_dicts(1, ISSUE_DATE, [oversized_article(n) for n in range(1, 9)])
    ja = render_variant(view, "ja", render_settings)
    en = render_variant(view, "en", render_settings)
    assert ja.html.count("メールでは一部を省略しています") == 8
    assert ja.html.count("続きを読む") >= 8
    assert "Shortened for email" in en.html and "Shortened for email" in en.text
    assert "…" in ja.html


def test_a_small_issue_is_never_trimmed(render_settings: Settings) -> None:
    view = issue_view_from_dicts(1, ISSUE_DATE, [make_article(n) for n in range(1, 4)])
    for rendered in render_issue_variants(view, render_settings).values():
        assert rendered.trimmed == ()
        assert "Shortened for email" not in rendered.html
        assert "省略" not in rendered.html


def test_the_size_is_measured_with_realistic_links_filled(render_settings: Settings) -> None:
    html = f'<a href="{SLOT_UNSUBSCRIBE_URL}">x</a>'
    assert filled_size(html, render_settings.base_url) > len(html) + 100


def test_an_issue_that_cannot_fit_is_an_error_naming_the_setting(
    render_settings: Settings,
) -> None:
    articles = [make_article(n) for n in range(1, 61)]
    for article in articles:
        for content in article["content"].values():
            content["title"] = content["title"] * 8
    view = issue_view_from_dicts(1, ISSUE_DATE, articles)
    with pytest.raises(RenderError, match="NEWSLETTER_MAX_ARTICLES"):
        render_variant(view, "both", render_settings)
